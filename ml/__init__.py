"""Mpox lesion classifier, plain PyTorch and numpy (no Django): the runtime the worker imports.

    model = ml.load(path)            # ml.LesionModel on PyTorch (ml.torch_runtime)
    model = ml.ort.load(path)        # the same on ONNX Runtime, from the checkpoint's export (no torch)
    analysis = model.analyse(image, roi=None)   # probability, differential, assessability, heatmap

The research bench (training, studies, evaluation commands) lives in ``ml.research`` and runs as
``python -m ml``; the runtime never imports it (an import-linter contract).

The names below load on first use, so ``ml.boxes`` (plain geometry) imports without torch.
"""

from importlib import import_module

_EXPORTS = {
    "ARCHITECTURES": "architectures",
    "ArchSpec": "architectures",
    "LesionNet": "architectures",
    "CheckpointError": "errors",
    "Analysis": "inference",
    "LesionModel": "inference",
    "Score": "inference",
    "configure_threads": "torch_runtime",
    "display_copy": "inference",
    "heatmap_overlay": "inference",
    "load": "torch_runtime",
    "overlay": "inference",
}
__all__ = sorted([*_EXPORTS, "testing"])


def __getattr__(name):
    """``ml.load`` etc. and submodules such as ``ml.testing``, imported when first used."""
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    try:
        return import_module(f".{name}", __name__)
    except ModuleNotFoundError as error:
        if error.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
