"""Writes of model operations: challengers, promotion on evidence, and fitting history + image models."""

from django.core.exceptions import ValidationError
from django.db import transaction

from core.services import audit
from modelops import performance
from modelops.tasks import refresh_stored_figures_on_commit
from registry import versions
from registry.models import HistoryModel, ModelPromotion


def register_challenger(*, checkpoint_path, actor=None):
    """Register a trained checkpoint and make it the challenger (see `versions.make_challenger`)."""
    model_version, _ = versions.register_checkpoint(checkpoint_path)
    versions.make_challenger(model_version)
    audit(actor=actor, action="register_challenger", obj=model_version, checkpoint=str(checkpoint_path))
    refresh_stored_figures_on_commit()
    return model_version


def make_challenger(*, model_version, actor):
    versions.make_challenger(model_version)
    audit(actor=actor, action="make_challenger", obj=model_version)
    refresh_stored_figures_on_commit()
    return model_version


def model_version_promotion_check(model_version) -> tuple[str | None, dict | None]:
    """(why promoting it would be refused, or None; the comparison figures, when measured)."""
    if not model_version.is_challenger:
        return (
            f"{model_version.version} is not the challenger: register it as challenger so it is measured first.",
            None,
        )
    active = versions.active_model_version()
    if active is None:
        return None, None
    figures = performance.compare_models(active, model_version).figures
    return figures["promotion_refusal"], figures


def history_model_promotion_check(history_model) -> tuple[str | None, dict | None]:
    """As `model_version_promotion_check`, for a history + image model against the image score alone."""
    image_model = history_model.image_model
    if not image_model.is_active:
        return (
            f"{history_model.version} was fitted on the scores of {image_model.version}, which is not the "
            "active model: fit one on the active model's scores."
        ), None
    figures = performance.compare_history_model(history_model).figures
    return figures["promotion_refusal"], figures


def promote_model_version(*, model_version, promoted_by, reason, request=None) -> ModelPromotion:
    """Make the challenger the active model, on evidence: refused (ValidationError, audited) unless it
    has enough confirmed cases shared with the active model and flags no fewer of their mpox cases."""
    return _promote(
        subject=model_version,
        promoted_by=promoted_by,
        reason=reason,
        request=request,
        check=model_version_promotion_check,
        activate=versions.activate_model_version,
        model_version=model_version,
        replaced=versions.active_model_version(),
    )


def promote_history_model(*, history_model, promoted_by, reason, request=None) -> ModelPromotion:
    """Let a history + image model's combined score flag new cases, by the challenger's rule: refused
    (ValidationError, audited) unless, on enough confirmed cases it was not fitted on, it flags no
    fewer mpox cases than the image score alone."""
    return _promote(
        subject=history_model,
        promoted_by=promoted_by,
        reason=reason,
        request=request,
        check=history_model_promotion_check,
        activate=versions.activate_history_model,
        model_version=history_model.image_model,
        history_model=history_model,
        replaced_history_model=versions.active_history_model(),
    )


def _promote(*, subject, promoted_by, reason, request, check, activate, **promotion) -> ModelPromotion:
    """The one promotion procedure: a reason, then `check(subject)` -> (refusal or None, figures or
    None); a refusal is audited and raised, else the promotion is recorded with its evidence and
    `activate(subject)` makes it count."""
    refusal, figures = ("Please say why this model is being promoted.", None) if not reason.strip() else check(subject)
    if refusal:
        audit(actor=promoted_by, action="promote_model", obj=subject, allowed=False, request=request, refusal=refusal)
        raise ValidationError(refusal, code="promotion_refused")
    evidence = performance.json_ready({k: v for k, v in figures.items() if k != "challenger_scores"}) if figures else {}
    with transaction.atomic():
        record = ModelPromotion.objects.create(promoted_by=promoted_by, reason=reason, evidence=evidence, **promotion)
        activate(subject)
        replaced = promotion.get("replaced_history_model") or promotion.get("replaced")
        audit(
            actor=promoted_by,
            action="promote_model",
            obj=subject,
            request=request,
            replaced=replaced.version if replaced else None,
            reason=reason,
        )
        refresh_stored_figures_on_commit()
    return record


def register_history_model(*, fitted_by=None, start=None, end=None, clinic_id=None) -> HistoryModel:
    """Fit the history + image model on the active image model's lab-confirmed cases (optionally
    filtered) and keep it as a candidate version: coefficients, features, the cases it was fitted
    on, who and when. It flags nothing until promoted (`promote_history_model`)."""
    image_model = versions.active_model_version()
    if image_model is None:
        raise ValidationError("No image model is active: there is no image score to build on.", code="no_model")
    fit = performance.history_model(image_model, start=start, end=end, clinic_id=clinic_id)
    if not fit["fitted"]:
        raise ValidationError(
            f"The history + image model needs {fit['needed']} lab-confirmed cases scored by {image_model.version} "
            f"(at least two of each result); there are {fit['have']}.",
            code="too_few_cases",
        )
    history_model = HistoryModel.objects.create(
        version=f"history-{HistoryModel.objects.count() + 1} on {image_model.version}"[:120],
        image_model=image_model,
        features=[row["feature"] for row in fit["coefficients"]],
        coefficients=[row["coefficient"] for row in fit["coefficients"]],
        intercept=fit["intercept"],
        threshold=fit["threshold"],
        fitted_cases=fit["n"],
        fitted_positives=fit["positives"],
        fitted_case_ids=fit["case_ids"],
        oof_auc=performance.json_ready(fit["oof_auc"]),
        fitted_by=fitted_by,
    )
    audit(
        actor=fitted_by,
        action="register_history_model",
        obj=history_model,
        cases=fit["n"],
        filters={"start": start and start.isoformat(), "end": end and end.isoformat(), "clinic_id": clinic_id},
    )
    refresh_stored_figures_on_commit()
    return history_model
