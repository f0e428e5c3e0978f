"""Protected media and the staff dashboard: queue, case page, decisions, claims, export."""
import csv
import mimetypes

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.views.decorators.http import require_GET, require_POST

from triage import charts, performance
from triage.forms import DecisionForm, GroundTruthForm, PerformanceFilterForm, QueueFilterForm, RoiForm
from triage.images import box_for_tap
from triage.models import Outcome
from triage.permissions import (
    can_export, can_view_case, can_view_photo, clinician_required, is_clinician, staff_required, staff_site_ids,
)
from triage.registry import active_model_version, challenger_model_version, history_model_to_measure
from triage.selectors import (
    case_for_review, case_queue, clinic_sites, decisions_on_day, ground_truth_history, latest_outcome_counts,
    model_card_text,
    model_versions_to_measure, photo_for_access, prediction_for_access, queue_sites, site_changes,
)
from triage.services import (
    audit, claim_case, countersign_decision, record_decision, record_ground_truth, release_case, request_reanalysis,
)


@require_GET
def photo_image(request, photo_id):
    """The normalised photo, for its patient or staff of its site. Every attempt is audited."""
    photo = photo_for_access(photo_id)
    allowed = photo is not None and can_view_photo(request.user, photo)
    audit(
        actor=request.user, action="view_photo", obj=photo, allowed=allowed, request=request, photo_id=photo_id,
        case_id=photo.case_id if photo else None,
    )
    if not allowed:
        return _deny(request)
    return _private_file_response(photo.image, photo)


@require_GET
def prediction_heatmap(request, photo_id, prediction_id):
    """A prediction's heatmap: clinical output, so staff of the case's site only."""
    prediction = prediction_for_access(photo_id, prediction_id)
    allowed = prediction is not None and can_view_case(request.user, prediction.photo.case)
    audit(
        actor=request.user, action="view_heatmap", obj=prediction, allowed=allowed, request=request,
        photo_id=photo_id, prediction_id=prediction_id, case_id=prediction.photo.case_id if prediction else None,
    )
    if not allowed:
        return _deny(request)
    return _private_file_response(prediction.heatmap, prediction.photo)


@require_GET
@login_required
def roi_tap_box(request):
    """The box a tap on the lesion stands for, so the ROI editor can show it before anything is
    sent (`?x=&y=&width=&height=`, upright-photo pixels). Computes only; no photo is involved."""
    try:
        x, y, width, height = (int(request.GET[name]) for name in ("x", "y", "width", "height"))
        if width < 1 or height < 1:
            raise ValueError
        box = box_for_tap((x, y), width, height)
    except (KeyError, ValueError):
        return JsonResponse({"error": "Give whole numbers x, y, width and height."}, status=400)
    except ValidationError as error:
        return JsonResponse({"error": error.messages[0]}, status=400)
    return JsonResponse({"box": list(box)})


@staff_required
def queue(request):
    site_ids = staff_site_ids(request.user)
    form = QueueFilterForm(request.GET, sites=queue_sites(site_ids=site_ids))
    filters = form.filters()
    cases = case_queue(
        site_ids=site_ids, status=filters["status"], period=filters["period"], site=filters["site"],
        claimed_by=request.user if filters["mine"] else None, search=filters["search"],
    )
    page = Paginator(cases, settings.QUEUE_PAGE_SIZE).get_page(request.GET.get("page"))
    outcomes = latest_outcome_counts(cases=page.object_list)
    for case in page.object_list:
        case.photo_outcomes = outcomes.get(case.pk, [])
    audit(actor=request.user, action="view_queue", obj=None, request=request, filters=filters,
          shown=[case.pk for case in page.object_list])
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "triage/queue.html", {
        "page": page, "form": form, "filters": filters, "query": query.urlencode(), "now": timezone.now(),
    })


@staff_required
@require_GET
def flagged_badge(request):
    """The header's count of undecided flagged cases, re-fetched by htmx polling on every staff page."""
    if not request.htmx:
        return redirect("staff-queue")
    response = render(request, "triage/flagged_badge_response.html")
    response["Cache-Control"] = "private, no-store"
    return response


@staff_required
def model_card(request):
    """The active model's card (MODEL_CARD.md beside its checkpoint): what its scores mean and where they fail."""
    model_version = active_model_version()
    card = model_card_text(model_version) if model_version is not None else None
    return render(request, "triage/model_card.html", {"model_version": model_version, "card": card})


@staff_required
def case_detail(request, case_id):
    """The case page. A clinician opening an undecided case nobody holds claims it; their running
    claim is renewed."""
    case = _case_or_404(request, case_id)
    audit(actor=request.user, action="view_case", obj=case, request=request)
    if is_clinician(request.user) and case.is_open and case.outcome == Outcome.PENDING:
        try:
            claim_case(case=case, clinician=request.user)
        except ValidationError:
            pass  # another clinician holds it: the page says who, and offers to take it over
    return render(request, "triage/case.html", _case_context(request, case, DecisionForm()))


@clinician_required
@require_POST
def decide(request, case_id):
    case = _case_or_404(request, case_id)
    form = DecisionForm(request.POST)
    if form.is_valid():
        try:
            record_decision(case=case, clinician=request.user, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, "Decision recorded. The patient has been sent the instructions.")
            return redirect("staff-case", case_id=case.pk)
    return render(request, "triage/case.html", _case_context(request, case, form), status=400)


@clinician_required
@require_POST
def claim(request, case_id):
    """Take over a case another clinician holds (their claim has not run out)."""
    case = _case_or_404(request, case_id)
    claim_case(case=case, clinician=request.user, take_over=True)
    messages.success(request, "You are now working on this case.")
    return redirect("staff-case", case_id=case.pk)


@clinician_required
@require_POST
def release(request, case_id):
    case = _case_or_404(request, case_id)
    release_case(case=case, clinician=request.user)
    messages.success(request, f"Case {case.appointment.reference} released for another clinician.")
    return redirect("staff-queue")


@clinician_required
@require_POST
def countersign(request, case_id, decision_id):
    case = _case_or_404(request, case_id)
    decision = next((decision for decision in case.decisions.all() if decision.pk == decision_id), None)
    if decision is None:
        raise Http404
    try:
        countersign_decision(decision=decision, clinician=request.user)
    except ValidationError as error:
        messages.error(request, error.messages[0])
    else:
        messages.success(request, "Decision countersigned.")
    return redirect("staff-case", case_id=case.pk)


@clinician_required
@require_POST
def reanalyse(request, case_id, photo_id):
    case = _case_or_404(request, case_id)
    photo = next((photo for photo in case.photos.all() if photo.pk == photo_id), None)
    if photo is None:
        raise Http404
    form = RoiForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError(form.non_field_errors())
        request_reanalysis(photo=photo, clinician=request.user, roi=form.roi, tap=form.tap)
    except ValidationError as error:
        messages.error(request, error.messages[0])
    else:
        messages.success(request, f"Photo {photo.pk} queued for a new analysis. Earlier results are kept below.")
    return redirect("staff-case", case_id=case.pk)


@clinician_required
def lab_result(request, case_id):
    """Record or correct a case's lab result and final diagnosis; the history stays visible."""
    case = _case_or_404(request, case_id)
    form = GroundTruthForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            record_ground_truth(case=case, entered_by=request.user, **form.service_arguments())
        except ValidationError as error:
            form.add_service_error(error)
        else:
            messages.success(request, "Lab result and diagnosis saved.")
            return redirect("staff-lab-result", case_id=case.pk)
    elif request.method != "POST":
        audit(actor=request.user, action="view_ground_truth", obj=case, request=request)
    status = 400 if form.errors else 200
    return render(request, "triage/lab_result.html", {"case": case, "form": form, **ground_truth_history(case)}, status=status)


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
            reports.append({"version": model_version, "figures": report.figures, "charts": _charts(model_version, report)})
    active = active_model_version()
    history = performance.history_model(active, **form.filters) if active and (not form.is_bound or form.is_valid()) else None
    audit(actor=request.user, action="view_model_performance", obj=None, request=request, filters=request.GET.dict())
    return render(request, "triage/performance.html", {
        "form": form, "reports": reports, "history": history, "history_features": performance.HISTORY_FEATURES,
        "history_version": history_model_to_measure(),
        "min_cases": settings.PERFORMANCE_MIN_CONFIRMED_CASES,
    })


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
    return render(request, "triage/comparison.html", {
        "form": form, "active": active, "challenger": challenger, "comparison": comparison,
        "history_model": history_model, "history_comparison": history_comparison,
    })


def _paired(result):
    """A paired comparison's figures and its ROC chart (None without both lab results)."""
    figures, chart = result.figures, None
    if result.labels.any() and not result.labels.all():
        chart = charts.roc_chart(
            [(figures["active"], result.labels, result.scores),
             (figures["challenger"], result.labels, figures["challenger_scores"])],
            title=f"Same {figures['paired_cases']} lab-confirmed cases",
        )
    return {"figures": figures, "roc_chart": chart}


def _charts(model_version, report):
    if not report.figures["enough"]:
        return None
    labels, scores = report.labels, report.scores
    title = f"{len(labels)} lab-confirmed cases"  # the section's heading names the version
    return {
        "roc": charts.roc_chart([(model_version.version, labels, scores)], title=title),
        "calibration": charts.calibration_chart(labels, scores, n_bins=performance.calibration_bin_count(len(labels)), title=title),
        "distribution": charts.score_distribution_chart(labels, scores, model_version.threshold, title=title),
    }


CSV_COLUMNS = [
    "decided_at", "reference", "site", "appointment", "outcome", "action", "clinician", "countersigned_by",
    "countersigned_at", "patient_instructions", "note",
]


@staff_required
@require_GET
def export_decisions(request):
    """A day's decisions at the lead's sites as CSV (`?day=YYYY-MM-DD`, default today). Audited."""
    if not can_export(request.user):
        raise PermissionDenied
    day = parse_date(request.GET.get("day", "")) if request.GET.get("day") else timezone.localdate()
    if day is None:
        return HttpResponse("day must be a date written YYYY-MM-DD.", status=400, content_type="text/plain")
    site_ids = staff_site_ids(request.user)
    decisions = decisions_on_day(day=day, site_ids=site_ids)
    audit(actor=request.user, action="export_decisions", obj=None, request=request, day=day.isoformat())
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="decisions-{day.isoformat()}.csv"'
    response["Cache-Control"] = "private, no-store"
    writer = csv.writer(response)
    writer.writerow(CSV_COLUMNS)
    for decision in decisions:
        appointment = decision.case.appointment
        writer.writerow([_csv_safe(value) for value in [
            _local(decision.created_at), appointment.reference, appointment.slot.clinic.name,
            _local(appointment.slot.starts_at), decision.get_outcome_display(), decision.get_action_display(),
            decision.clinician.get_username(), decision.countersigned_by.get_username() if decision.countersigned_by else "",
            _local(decision.countersigned_at), decision.patient_instructions, decision.note,
        ]])
    return response


def _csv_safe(value):
    """Free text starting with = + - @ would run as a formula in a spreadsheet: quote it."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _local(moment):
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else ""


def _case_or_404(request, case_id):
    """The case if it exists at a site the user works at; otherwise 404 (never a hint it exists)."""
    case = case_for_review(case_id, site_ids=staff_site_ids(request.user))
    if case is None:
        raise Http404
    return case


def _case_context(request, case, decision_form):
    photos = []
    for photo in case.photos.all():
        latest = photo.prediction_history[0] if photo.prediction_history else None
        # Show the box the latest analysis actually used; before any analysis, the stored one.
        shown = latest if latest and latest.roi else photo
        photos.append({
            "photo": photo,
            "latest": latest,
            "history": photo.prediction_history,
            "shown": shown,  # the editor starts from this box too, so the clinician can move it
            "roi_style": _roi_style(shown.roi, photo.width, photo.height),
            "crop": _crop_styles(shown.roi, photo.width, photo.height),
            "focus": _zoom_focus(shown.roi, photo.width, photo.height),
            "roi_source": shown.get_roi_source_display(),
            "editor_id": f"roi-editor-{photo.pk}",
        })
    holder = case.claim_holder
    return {
        "case": case, "appointment": case.appointment, "photos": photos, "decision_form": decision_form,
        "roi_form": RoiForm(), "can_decide": case.is_open and is_clinician(request.user),
        "claim_holder": holder, "held_by_other": holder is not None and holder.pk != request.user.pk,
        "ground_truth_form": GroundTruthForm(), "site_changes": site_changes(case=case), **ground_truth_history(case),
    }


def _crop_styles(roi, width, height):
    """CSS showing only the box of the photo: the frame has the box's shape, the photo is scaled and
    shifted so the box fills it. None without a box."""
    if roi is None:
        return None
    x0, y0, x1, y1 = roi
    box_w, box_h = x1 - x0, y1 - y0
    return {
        "frame": f"aspect-ratio:{box_w}/{box_h}",
        "image": f"width:{100 * width / box_w:.2f}%;left:{100 * -x0 / box_w:.2f}%;top:{100 * -y0 / box_h:.2f}%",
    }


def _zoom_focus(roi, width, height):
    """Where zooming in centres, as fractions of the photo: the box's centre, else the photo's."""
    if roi is None:
        return {"x": 0.5, "y": 0.5}
    x0, y0, x1, y1 = roi
    return {"x": f"{(x0 + x1) / 2 / width:.4f}", "y": f"{(y0 + y1) / 2 / height:.4f}"}


def _roi_style(roi, width, height):
    """CSS placing the box over the photo in percentages, so it scales with the image."""
    if roi is None:
        return ""
    x0, y0, x1, y1 = roi
    return (
        f"left:{100 * x0 / width:.2f}%;top:{100 * y0 / height:.2f}%;"
        f"width:{100 * (x1 - x0) / width:.2f}%;height:{100 * (y1 - y0) / height:.2f}%"
    )


def _private_file_response(field_file, photo):
    """Streams the file from private storage (local folder or bucket), never via a public URL."""
    if photo.files_deleted_at is not None:
        return HttpResponse(
            f"This file was deleted on {photo.files_deleted_at:%d %b %Y} ({photo.get_files_deleted_reason_display().lower()}).",
            status=410, content_type="text/plain; charset=utf-8",
        )
    content_type = mimetypes.guess_type(field_file.name)[0] or "application/octet-stream"
    response = FileResponse(field_file.open("rb"), content_type=content_type)
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _deny(request):
    """Anonymous users are sent to log in; anyone else learns nothing (404)."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    raise Http404
