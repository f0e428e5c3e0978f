"""The ONNX export of a checkpoint (written by ``ml.export``, read by ``ml.ort``): file names, the
tie to the checkpoint, reading. numpy only, no torch.

Two files, by default beside the checkpoint ``STEM.pt``:

- ``STEM.onnx``: the backbone (``net.features``): normalised float32 NCHW batch (dynamic batch,
  height and width: the automatic ROI's locating pass runs at its own size) -> the activation at
  the Grad-CAM target layer, before the head's activation.
- ``STEM.heads.npz``: everything after the backbone as arrays under their state-dict keys (the
  linear head, the differential head, the assessor's bank and lesion unit), the head activation's
  cap (``head.cap``: 6 for ReLU6, inf for ReLU) and a JSON header: the checkpoint's metadata and
  the SHA-256 of the checkpoint and of the ``.onnx`` file.

A sidecar whose recorded hashes are not those of the files beside it (a checkpoint replaced in
place, a half-copied export) is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from .errors import CheckpointError

FORMAT_TAG = "mpox-lesion-onnx/1"
ONNX_SUFFIX = ".onnx"
HEADS_SUFFIX = ".heads.npz"
HEADER_KEY = "header"
HEAD_WEIGHT, HEAD_BIAS, HEAD_CAP = "head.fc.weight", "head.fc.bias", "head.cap"


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sidecar_paths(checkpoint: str | Path, directory: str | Path | None = None) -> tuple[Path, Path]:
    """(``.onnx``, ``.heads.npz``) of a checkpoint: beside it, or in ``directory``."""
    checkpoint = Path(checkpoint)
    stem = checkpoint.stem
    folder = Path(directory) if directory else checkpoint.parent
    return folder / f"{stem}{ONNX_SUFFIX}", folder / f"{stem}{HEADS_SUFFIX}"


def read_sidecar(checkpoint: str | Path, directory: str | Path | None = None) -> tuple[Path, dict, dict]:
    """(``.onnx`` path, checkpoint metadata, {state-dict key: float32 array}) of a checkpoint's
    export, or :class:`CheckpointError` when it is missing or not the export of this checkpoint."""
    checkpoint = Path(checkpoint)
    onnx_path, heads_path = sidecar_paths(checkpoint, directory)
    if not checkpoint.is_file():
        raise CheckpointError(f"checkpoint not found: {checkpoint}")
    if not (onnx_path.is_file() and heads_path.is_file()):
        raise CheckpointError(f"{checkpoint} has no ONNX export ({onnx_path.name}, {heads_path.name})")
    try:
        with np.load(heads_path, allow_pickle=False) as blob:
            header = json.loads(str(blob[HEADER_KEY]))
            arrays = {key: blob[key].astype(np.float32) for key in blob.files if key != HEADER_KEY}
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{heads_path} is not readable ({type(exc).__name__}: {str(exc)[:200]})") from exc
    if header.get("format") != FORMAT_TAG:
        raise CheckpointError(f"{heads_path} is not a {FORMAT_TAG} export")
    if header.get("checkpoint_sha256") != sha256(checkpoint):
        raise CheckpointError(f"{heads_path} is stale: it was exported from another {checkpoint.name}")
    if header.get("onnx_sha256") != sha256(onnx_path):
        raise CheckpointError(f"{onnx_path} does not match {heads_path.name}: export the checkpoint again")
    return onnx_path, header["metadata"], arrays
