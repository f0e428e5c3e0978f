"""Mpox lesion classifier: training, evaluation and the inference API (plain PyTorch, no Django).

    model = ml.load(path)            # ml.LesionModel
    analysis = model.analyse(image, roi=None)
"""
from . import testing
from .architectures import ARCHITECTURES, ArchSpec, LesionNet
from .checkpoint import CheckpointError
from .inference import (Analysis, LesionModel, Score, configure_threads, display_copy, heatmap_overlay,
                        load, overlay)

__all__ = ["ARCHITECTURES", "Analysis", "ArchSpec", "CheckpointError", "LesionModel", "LesionNet", "Score",
           "configure_threads", "display_copy", "heatmap_overlay", "load", "overlay", "testing"]
