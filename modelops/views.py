"""Model operations' staff pages: the active model's card, live performance, and the comparisons
behind promotion (promotion itself is an admin action)."""

from django.conf import settings
from django.shortcuts import render

from core.services import audit
from modelops import charts, performance
from modelops.forms import PerformanceFilterForm
from modelops.selectors import model_card_text, model_versions_to_measure
from registry.versions import active_model_version, challenger_model_version, history_model_to_measure
from triage.history import HISTORY_FEATURES
from triage.permissions import clinician_required, staff_required
from triage.selectors import clinic_sites


@staff_required
def model_card(request):
    """The active model's card (MODEL_CARD.md beside its checkpoint): what its scores mean and where they fail."""
    model_version = active_model_version()
    card = model_card_text(model_version) if model_version is not None else None
    return render(request, "triage/model_card.html", {"model_version": model_version, "card": card})


@clinician_required
def model_performance(request):
    """Live performance of each model version on lab-confirmed cases, with plots and tables."""
    form = PerformanceFilterForm(request.GET or None, clinics=clinic_sites())
    versions = model_versions_to_measure()
    selected = request.GET.get("version")
    if selected:
        versions = [version for version in versions if version.version == selected]
    reports = []
    if not form.is_bound or form.is_valid():
        for model_version in versions:
            report = performance.model_performance(model_version, **form.filters)
            reports.append(
                {
                    "version": model_version,
                    "figures": report.figures,
                    "charts": charts.performance_charts(model_version, report),
                }
            )
    active = active_model_version()
    history = (
        performance.history_model(active, **form.filters) if active and (not form.is_bound or form.is_valid()) else None
    )
    audit(actor=request.user, action="view_model_performance", obj=None, request=request, filters=request.GET.dict())
    return render(
        request,
        "triage/performance.html",
        {
            "form": form,
            "reports": reports,
            "history": history,
            "history_features": HISTORY_FEATURES,
            "history_version": history_model_to_measure(),
            "min_cases": settings.PERFORMANCE_MIN_CONFIRMED_CASES,
        },
    )


@clinician_required
def model_comparison(request):
    """Active model vs challenger, and the image score alone vs the history + image model, each pair
    on the same confirmed cases; promotion itself is an admin action."""
    form = PerformanceFilterForm(request.GET or None, clinics=clinic_sites())
    active, challenger, history_model = active_model_version(), challenger_model_version(), history_model_to_measure()
    comparison = history_comparison = None
    if not form.is_bound or form.is_valid():
        if active and challenger:
            comparison = _paired(performance.compare_models(active, challenger, **form.filters))
        if history_model:
            history_comparison = _paired(performance.compare_history_model(history_model, **form.filters))
    audit(actor=request.user, action="view_model_comparison", obj=None, request=request, filters=request.GET.dict())
    return render(
        request,
        "triage/comparison.html",
        {
            "form": form,
            "active": active,
            "challenger": challenger,
            "comparison": comparison,
            "history_model": history_model,
            "history_comparison": history_comparison,
        },
    )


def _paired(result):
    """A paired comparison's figures and its ROC chart (None without both lab results)."""
    return {"figures": result.figures, "roc_chart": charts.paired_roc_chart(result)}
