"""Protected media and the staff dashboard: queue, case page, decisions, claims, export."""

import csv
import mimetypes
import unicodedata

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.views.decorators.http import require_GET, require_POST

from core.access import deny, record_denial
from core.services import audit
from triage.forms import DecisionForm, GroundTruthForm, QueueFilterForm, RoiForm
from triage.images import box_for_tap
from triage.models import Outcome
from triage.permissions import (
    can_export,
    can_view_case,
    can_view_photo,
    clinician_required,
    is_clinician,
    staff_required,
    staff_site_ids,
)
from triage.selectors import (
    case_for_review,
    case_queue,
    decisions_on_day,
    ground_truth_history,
    latest_outcome_counts,
    photo_for_access,
    prediction_for_access,
    queue_sites,
    site_changes,
)
from triage.services import (
    claim_case,
    countersign_decision,
    record_decision,
    record_ground_truth,
    release_case,
    request_reanalysis,
)


@require_GET
def photo_image(request, photo_id):
    """The normalised photo, for its patient or staff of its site. Every attempt is audited."""
    photo = photo_for_access(photo_id)
    details = {"photo_id": photo_id, "case_id": photo.case_id if photo else None}
    if photo is None or not can_view_photo(request.user, photo):
        return _refuse(
            request,
            action="view_photo",
            asked_for=f"photo {photo_id}",
            rule="own_photo_or_staff_site",
            obj=photo,
            **details,
        )
    audit(actor=request.user, action="view_photo", obj=photo, request=request, **details)
    return _private_file_response(photo.image, photo)


@require_GET
def prediction_heatmap(request, photo_id, prediction_id):
    """A prediction's heatmap: clinical output, so staff of the case's site only."""
    prediction = prediction_for_access(photo_id, prediction_id)
    details = {
        "photo_id": photo_id,
        "prediction_id": prediction_id,
        "case_id": prediction.photo.case_id if prediction else None,
    }
    if prediction is None or not can_view_case(request.user, prediction.photo.case):
        return _refuse(
            request,
            action="view_heatmap",
            asked_for=f"heatmap {prediction_id} of photo {photo_id}",
            rule="staff_site",
            obj=prediction,
            **details,
        )
    audit(actor=request.user, action="view_heatmap", obj=prediction, request=request, **details)
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
        site_ids=site_ids,
        status=filters["status"],
        period=filters["period"],
        site=filters["site"],
        claimed_by=request.user if filters["mine"] else None,
        search=filters["search"],
    )
    page = Paginator(cases, settings.QUEUE_PAGE_SIZE).get_page(request.GET.get("page"))
    outcomes = latest_outcome_counts(cases=page.object_list)
    for case in page.object_list:
        case.photo_outcomes = outcomes.get(case.pk, [])
    audit(
        actor=request.user,
        action="view_queue",
        obj=None,
        request=request,
        filters=filters,
        shown=[case.pk for case in page.object_list],
    )
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "triage/queue.html",
        {
            "page": page,
            "form": form,
            "filters": filters,
            "query": query.urlencode(),
            "now": timezone.now(),
        },
    )


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
        deny(
            request,
            action="countersign_decision",
            asked_for=f"decision {decision_id} of case {case.pk}",
            rule="decision_of_case",
            reference=case.audit_reference,
        )
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
        deny(
            request,
            action="reanalyse_photo",
            asked_for=f"photo {photo_id} of case {case.pk}",
            rule="photo_of_case",
            reference=case.audit_reference,
        )
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


@staff_required
def lab_result(request, case_id):
    """A case's lab result and final diagnosis with their history, for every staff role that sees the
    case; clinicians record or correct them here (auditors read only)."""
    if request.method == "POST" and not is_clinician(request.user):
        raise PermissionDenied
    case = _case_or_404(request, case_id)
    if not is_clinician(request.user):
        audit(actor=request.user, action="view_ground_truth", obj=case, request=request)
        return render(request, "triage/lab_result.html", {"case": case, "form": None, **ground_truth_history(case)})
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
    return render(
        request, "triage/lab_result.html", {"case": case, "form": form, **ground_truth_history(case)}, status=status
    )


CSV_COLUMNS = [
    "decided_at",
    "reference",
    "site",
    "appointment",
    "outcome",
    "action",
    "clinician",
    "countersigned_by",
    "countersigned_at",
    "patient_instructions",
    "note",
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
        writer.writerow(
            [
                _csv_safe(value)
                for value in [
                    _local(decision.created_at),
                    appointment.reference,
                    appointment.clinic.name,
                    _local(appointment.starts_at),
                    decision.get_outcome_display(),
                    decision.get_action_display(),
                    decision.clinician.get_username(),
                    decision.countersigned_by.get_username() if decision.countersigned_by else "",
                    _local(decision.countersigned_at),
                    decision.patient_instructions,
                    decision.note,
                ]
            ]
        )
    return response


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_safe(value):
    """Free text starting with = + - @ would run as a formula in a spreadsheet: quote it. Checked on the
    text as a spreadsheet may read it: full-width forms folded (NFKC: ＝ is =) and invisible format
    characters (zero-width spaces, joiners, direction marks) and leading spaces skipped."""
    text = "" if value is None else str(value)
    seen = "".join(char for char in unicodedata.normalize("NFKC", text) if unicodedata.category(char) != "Cf")
    return "'" + text if seen.lstrip(" ")[:1] in FORMULA_STARTS else text


def _local(moment):
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else ""


def _case_or_404(request, case_id):
    """The case if it exists at a site the user works at; otherwise an audited 404 (never a hint it exists)."""
    case = case_for_review(case_id, site_ids=staff_site_ids(request.user))
    if case is None:
        deny(request, action="view_case", asked_for=f"case {case_id}", rule="staff_site")
    return case


def _case_context(request, case, decision_form):
    photos = []
    for photo in case.photos.all():
        latest = photo.prediction_history[0] if photo.prediction_history else None
        # Show the box the latest analysis actually used; before any analysis, the stored one.
        shown = latest if latest and latest.roi else photo
        photos.append(
            {
                "photo": photo,
                "latest": latest,
                "history": photo.prediction_history,
                "shown": shown,  # the editor starts from this box too, so the clinician can move it
                "roi_style": _roi_style(shown.roi, photo.width, photo.height),
                "crop": _crop_styles(shown.roi, photo.width, photo.height),
                "focus": _zoom_focus(shown.roi, photo.width, photo.height),
                "roi_source": shown.get_roi_source_display(),
                "roi_scored": getattr(shown, "roi_scored", True),  # a photo's own box is scored when analysed
                "editor_id": f"roi-editor-{photo.pk}",
            }
        )
    holder = case.claim_holder
    return {
        "case": case,
        "appointment": case.appointment,
        "photos": photos,
        "decision_form": decision_form,
        "roi_form": RoiForm(),
        "can_decide": case.is_open and is_clinician(request.user),
        "claim_holder": holder,
        "held_by_other": holder is not None and holder.pk != request.user.pk,
        "ground_truth_form": GroundTruthForm(),
        "site_changes": site_changes(case=case),
        **ground_truth_history(case),
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
            status=410,
            content_type="text/plain; charset=utf-8",
        )
    if not field_file.name:  # a photo the worker has not yet normalised (its original is never served)
        return HttpResponse(
            "This photo is being prepared: its metadata is removed first. Try again in a minute.",
            status=404,
            content_type="text/plain; charset=utf-8",
        )
    content_type = mimetypes.guess_type(field_file.name)[0] or "application/octet-stream"
    response = FileResponse(field_file.open("rb"), content_type=content_type)
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _refuse(request, **denial):
    """Anonymous users are sent to log in; anyone else learns nothing (404). Both are audited."""
    if not request.user.is_authenticated:
        record_denial(request, **denial)
        return redirect_to_login(request.get_full_path())
    deny(request, **denial)
