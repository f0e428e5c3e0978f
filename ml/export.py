"""Exports a checkpoint for the ONNX Runtime worker (``ml.ort``); PyTorch side. The files and
their tie to the checkpoint: :mod:`ml.sidecar`."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from .checkpoint import EXTRA_STATE_PREFIXES, build_network, read_checkpoint
from .errors import CheckpointError
from .sidecar import FORMAT_TAG, HEAD_BIAS, HEAD_CAP, HEAD_WEIGHT, HEADER_KEY, read_sidecar, sha256, sidecar_paths
from .torch_runtime import network_head

OPSET = 18


def export_onnx(checkpoint: str | Path, directory: str | Path | None = None) -> tuple[Path, Path]:
    """Writes the checkpoint's backbone as ONNX and its heads + metadata as ``.npz`` (beside it, or
    in ``directory``); returns the two paths. Each file is written under a temporary name and
    renamed into place, the ``.npz`` (which vouches for the ``.onnx``) last."""
    metadata, state = read_checkpoint(checkpoint)
    net = build_network(metadata, state)
    onnx_path, heads_path = sidecar_paths(checkpoint, directory)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    size = int(metadata["input_size"])
    graph = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        # dynamo=False: the TorchScript exporter traces this plain convolutional network in about a
        # second and keeps height and width dynamic without shape guards.
        torch.onnx.export(
            net.features,
            (torch.zeros(1, 3, size, size),),
            graph,
            input_names=["input"],
            output_names=["activation"],
            dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"}, "activation": {0: "batch", 2: "h", 3: "w"}},
            opset_version=OPSET,
            dynamo=False,
        )
    _write(onnx_path, graph.getvalue())
    arrays = {key: value.numpy() for key, value in state.items() if key.startswith(EXTRA_STATE_PREFIXES)}
    arrays.update({HEAD_WEIGHT: state[HEAD_WEIGHT].numpy(), HEAD_BIAS: state[HEAD_BIAS].numpy()})
    arrays[HEAD_CAP] = np.float32(network_head(net).cap)
    header = {
        "format": FORMAT_TAG,
        "checkpoint_sha256": sha256(checkpoint),
        "onnx_sha256": sha256(onnx_path),
        "metadata": metadata,
    }
    heads = io.BytesIO()
    np.savez(heads, **{HEADER_KEY: np.array(json.dumps(header))}, **arrays)
    _write(heads_path, heads.getvalue())
    return onnx_path, heads_path


def _write(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    partial.replace(path)


def export_if_stale(checkpoint: str | Path) -> bool:
    """Exports the checkpoint beside it unless its export there is current; True if it wrote one."""
    try:
        read_sidecar(checkpoint)
    except CheckpointError:
        export_onnx(checkpoint)
        return True
    return False
