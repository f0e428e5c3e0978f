"""Errors shared by the torch and ONNX Runtime loaders (no imports, so neither pulls in the other)."""


class CheckpointError(ValueError):
    """The file is not a usable checkpoint of this format (or its ONNX export is missing or stale)."""
