"""Checkpoint file format: metadata (plain JSON-able types) + state dict, loadable with weights_only=True."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

import torch

from .architectures import ARCHITECTURES, LesionNet, get_arch
from .errors import CheckpointError

FORMAT_TAG = "mpox-lesion-classifier/1"
CLASS_NAMES = ("non_mpox", "mpox")
POSITIVE_CLASS = "mpox"

# State-dict entries under these prefixes are not network weights (the assessability check's
# feature bank, see ml.assessment; the differential head, see ml.differential) and are kept out of
# ``load_state_dict``.
EXTRA_STATE_PREFIXES = ("assessment.", "differential.")

REQUIRED_METADATA = (
    "arch",
    "class_names",
    "positive_class",
    "input_size",
    "mean",
    "std",
    "threshold",
    "operating_point",
    "version",
    "init",
    "training_data",
    "cv_metrics",
    "created",
)


def make_metadata(
    *,
    arch: str,
    input_size: int,
    threshold: float,
    version: str,
    init: str,
    operating_point: str = "",
    training_data: str = "",
    cv_metrics: dict | None = None,
    **extra: Any,
) -> dict:
    spec = get_arch(arch)
    metadata = {
        "arch": arch,
        "class_names": list(CLASS_NAMES),
        "positive_class": POSITIVE_CLASS,
        "input_size": int(input_size),
        "mean": list(spec.mean),
        "std": list(spec.std),
        "threshold": float(threshold),
        "operating_point": operating_point,
        "version": version,
        "init": init,
        "training_data": training_data,
        "cv_metrics": cv_metrics or {},
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **extra,
    }
    json.dumps(metadata)  # fail early on anything not JSON-serialisable
    return metadata


def save_checkpoint(
    path: str | Path,
    net: LesionNet,
    metadata: dict,
    half: bool = True,
    extra_state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Writes ``{"format", "metadata", "state_dict"}``; floating weights stored as fp16 if ``half``.
    ``extra_state`` keys must start with one of ``EXTRA_STATE_PREFIXES``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra_state = extra_state or {}
    if any(not k.startswith(EXTRA_STATE_PREFIXES) for k in extra_state):
        raise ValueError(f"extra state keys must start with one of {EXTRA_STATE_PREFIXES}")
    state = {
        k: (v.half() if half and v.is_floating_point() else v).detach().clone().contiguous()
        for k, v in {**net.state_dict(), **extra_state}.items()
    }
    torch.save({"format": FORMAT_TAG, "metadata": metadata, "state_dict": state}, path)
    return path


def read_checkpoint(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """Returns (metadata, state_dict) or raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT_TAG:
        raise CheckpointError(f"{path} is not a {FORMAT_TAG} checkpoint (missing or unknown 'format' tag)")
    metadata, state = blob.get("metadata"), blob.get("state_dict")
    if not isinstance(metadata, dict) or not isinstance(state, dict):
        raise CheckpointError(f"{path}: checkpoint lacks 'metadata' or 'state_dict'")
    missing = [k for k in REQUIRED_METADATA if k not in metadata]
    if missing:
        raise CheckpointError(f"{path}: metadata lacks {', '.join(missing)}")
    if metadata["arch"] not in ARCHITECTURES:
        raise CheckpointError(f"{path}: unknown architecture {metadata['arch']!r} (known: {', '.join(ARCHITECTURES)})")
    return metadata, state


def build_network(metadata: dict, state: dict[str, torch.Tensor]) -> LesionNet:
    """Randomly initialised network of the checkpoint's architecture with its weights loaded (fp32)."""
    net = get_arch(metadata["arch"]).build("none")
    weights = {k: v for k, v in state.items() if not k.startswith(EXTRA_STATE_PREFIXES)}
    try:
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in weights.items()})
    except RuntimeError as exc:
        raise CheckpointError(f"weights do not fit architecture {metadata['arch']!r}: {str(exc)[:300]}") from exc
    return net.eval()


def update_metadata(path: str | Path, **entries: Any) -> dict:
    """Rewrites a checkpoint with ``entries`` added to its metadata (weights untouched, stored as
    they are); returns the new metadata. For research commands that add fitted rules to a
    checkpoint without refitting it."""
    metadata, state = read_checkpoint(path)
    metadata = {**metadata, **entries}
    json.dumps(metadata)
    torch.save({"format": FORMAT_TAG, "metadata": metadata, "state_dict": state}, Path(path))
    return metadata
