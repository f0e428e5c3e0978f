"""The ONNX Runtime backend of the worker (``ML_RUNTIME=onnx``): the checkpoint's exported backbone
(:mod:`ml.sidecar`) as an :data:`ml.heads.Backbone`, everything after it numpy. Nothing on this
path imports torch, so a worker using it never maps the CUDA build of torch's libraries.

    ml.ort.configure_threads(2)
    model = ml.ort.load(path)    # ml.LesionModel, from path's .onnx + .heads.npz export
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime

from .assessment import Assessor
from .differential import Differential
from .heads import Head, single_thread_blas
from .inference import LesionModel
from .sidecar import HEAD_BIAS, HEAD_CAP, HEAD_WEIGHT, read_sidecar

_threads = 1


def configure_threads(n: int) -> None:
    """Intra-op threads of the sessions this process creates from now on, numpy's BLAS to one (call
    once per worker)."""
    global _threads
    _threads = max(1, int(n))
    single_thread_blas()


class OrtBackbone:
    """An exported backbone as a :data:`ml.heads.Backbone`: (B, 3, S, S) float32 -> activation."""

    def __init__(self, onnx_path: str | Path, threads: int | None = None):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or _threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = onnxruntime.InferenceSession(
            str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"input": np.ascontiguousarray(x, dtype=np.float32)})[0]


def load(
    checkpoint_path: str | Path, auto_roi: bool = True, warmup: bool = True, directory: str | Path | None = None
) -> LesionModel:
    """The checkpoint as :func:`ml.load` gives it, run from its export (beside it, or in
    ``directory``). Raises :class:`ml.CheckpointError` when the export is missing or stale."""
    onnx_path, metadata, arrays = read_sidecar(checkpoint_path, directory)
    model = LesionModel(
        metadata,
        OrtBackbone(onnx_path),
        Head(arrays[HEAD_WEIGHT][0], float(arrays[HEAD_BIAS][0]), float(arrays[HEAD_CAP])),
        auto_roi=auto_roi,
        assessor=Assessor.from_checkpoint(metadata, arrays),
        differential=Differential.from_checkpoint(metadata, arrays),
    )
    return model.warm_up() if warmup else model
