"""Reads of model operations: which versions to measure and list, and a version's model card."""

from pathlib import Path

from django.db.models import Q

from registry.models import ModelVersion


def model_card_text(model_version):
    """The model card shipped beside a version's checkpoint (MODEL_CARD.md), or None."""
    card = Path(model_version.checkpoint_path).with_name("MODEL_CARD.md")
    return card.read_text(encoding="utf-8") if card.is_file() else None


def model_versions_to_measure():
    """The active model, the challenger, then retired versions that made predictions (newest first)."""
    versions = ModelVersion.objects.filter(
        Q(predictions__isnull=False) | Q(is_active=True) | Q(is_challenger=True)
    ).distinct()
    return sorted(versions, key=lambda version: (not version.is_active, not version.is_challenger, -version.pk))


def model_versions():
    return ModelVersion.objects.order_by("-installed_at", "-pk")
