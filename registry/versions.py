"""The model registry: which checkpoints are installed, which one is active, and the
per-process cache of loaded models.

Imports `ml` (and so torch) lazily: the web process registers and activates versions from
checkpoint metadata, but only a worker process ever keeps a model in memory. The worker's runtime
is settings.ML_RUNTIME: `ml.ort` (ONNX Runtime on the export registration makes; no torch) or
`ml.torch_runtime` (PyTorch).
"""

import logging
import os
from importlib import import_module
from pathlib import Path

from django.conf import settings
from django.db import transaction

from registry.models import HistoryModel, ModelVersion

logger = logging.getLogger(__name__)

MAX_MODELS_IN_MEMORY = 2

_models_by_version = {}


def register_checkpoints(directory=None) -> list[ModelVersion]:
    """Register every checkpoint in `directory` (default settings.MODEL_DIR) as a model version.

    Returns the versions newly registered. If no version is active yet, the newest
    registered one becomes active, so a fresh install serves its shipped model. If the active
    version's file now holds a newly registered version (a release shipped a new checkpoint under
    the same name), the old version can never run again: the new one takes its place, and the
    switch is logged.
    """
    directory = Path(directory or settings.MODEL_DIR)
    registered = []
    for path in sorted(directory.glob("*.pt")):
        model_version, created = register_checkpoint(path)
        if created:
            registered.append(model_version)
    active = active_model_version()
    replacing = [version for version in registered if active and version.checkpoint_path == active.checkpoint_path]
    if replacing:
        logger.warning(
            "%s was replaced in place by %s: it is now the active model", active.version, replacing[-1].version
        )
        activate_model_version(replacing[-1])
    elif registered and active is None:
        activate_model_version(registered[-1])
    return registered


def runtime():
    """The module that loads and runs models in this process (settings.ML_RUNTIME); both have
    `load(path)` and `configure_threads(n)`."""
    return import_module("ml.ort" if settings.ML_RUNTIME == "onnx" else "ml.torch_runtime")


def register_checkpoint(path) -> tuple[ModelVersion, bool]:
    """(version, created) for one checkpoint file, described by its own metadata. With
    ML_RUNTIME=onnx its ONNX export is written beside it unless a current one is there."""
    import ml
    from ml.export import export_if_stale

    path = Path(path)
    metadata = ml.load(path, warmup=False).metadata
    if settings.ML_RUNTIME == "onnx" and export_if_stale(path):
        logger.info("Exported %s for ONNX Runtime", path)
    return ModelVersion.objects.get_or_create(
        version=metadata["version"],
        defaults={
            "architecture": metadata["arch"],
            "checkpoint_path": str(path.resolve()),
            "threshold": metadata["threshold"],
            "operating_point": str(metadata.get("operating_point", ""))[:200],
            "metadata": metadata,
        },
    )


@transaction.atomic
def activate_model_version(model_version) -> ModelVersion:
    """Make this the one active model (the others are deactivated first: one_active_model).

    Admins do this through `modelops.services.promote_model_version`, which checks the evidence first; this
    is the bare switch (a fresh install's first model, tests)."""
    ModelVersion.objects.filter(is_active=True).exclude(pk=model_version.pk).update(is_active=False)
    ModelVersion.objects.filter(pk=model_version.pk).update(is_active=True, is_challenger=False)
    # A history + image model was fitted on its image model's scores: it cannot flag with another's.
    HistoryModel.objects.filter(is_active=True).exclude(image_model=model_version).update(is_active=False)
    model_version.is_active, model_version.is_challenger = True, False
    return model_version


@transaction.atomic
def make_challenger(model_version) -> ModelVersion:
    """Run this version in shadow on every new photo; a previous challenger is retired."""
    if model_version.is_active:
        raise ValueError(f"{model_version.version} is the active model; it cannot also be its challenger.")
    ModelVersion.objects.filter(is_challenger=True).exclude(pk=model_version.pk).update(is_challenger=False)
    ModelVersion.objects.filter(pk=model_version.pk).update(is_challenger=True)
    model_version.is_challenger = True
    return model_version


@transaction.atomic
def activate_history_model(history_model) -> HistoryModel:
    """Let this history + image model's combined score flag new cases (the bare switch: admins do
    it through `modelops.services.promote_history_model`, which checks the evidence first)."""
    if not history_model.image_model.is_active:
        raise ValueError(
            f"{history_model.version} builds on {history_model.image_model.version}, which is not the active model."
        )
    HistoryModel.objects.filter(is_active=True).exclude(pk=history_model.pk).update(is_active=False)
    HistoryModel.objects.filter(pk=history_model.pk).update(is_active=True)
    history_model.is_active = True
    return history_model


def active_history_model() -> HistoryModel | None:
    return HistoryModel.objects.filter(is_active=True).select_related("image_model").first()


def history_model_to_measure() -> HistoryModel | None:
    """The active history + image model, else the newest candidate built on the active image model."""
    return (
        active_history_model()
        or HistoryModel.objects.filter(image_model__is_active=True).select_related("image_model").first()
    )


def active_model_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def challenger_model_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_challenger=True).first()


class CheckpointReplaced(RuntimeError):
    """A version's checkpoint file now holds other weights (a new checkpoint shipped under the same name)."""


def loaded_model(model_version):
    """The `ml.LesionModel` for a version, loaded once per process (by `runtime()`) and kept for later
    tasks. Refuses a file whose own version is another: a result must never be recorded under a model
    that did not make it."""
    model = _models_by_version.get(model_version.version)
    if model is None:
        while len(_models_by_version) >= MAX_MODELS_IN_MEMORY:
            _models_by_version.pop(next(iter(_models_by_version)))
        model = runtime().load(model_version.checkpoint_path)
        if model.metadata["version"] != model_version.version:
            raise CheckpointReplaced(
                f"{model_version.checkpoint_path} now holds {model.metadata['version']}, not {model_version.version}: "
                "register it (manage.py register_models) and promote it, so every result names the model that made it."
            )
        _models_by_version[model_version.version] = model
        logger.info("Loaded model %s in process %d", model_version.version, os.getpid())
    return model


def preload_active_model() -> ModelVersion | None:
    model_version = active_model_version()
    if model_version is not None:
        loaded_model(model_version)
    return model_version
