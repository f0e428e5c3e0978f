"""Patient pages: accounts, booking, the appointment (photos, consent, changes), information page."""

from datetime import date

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.translation import get_language, ngettext
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django_ratelimit.decorators import ratelimit

from core.access import deny
from portal.booking import accounts, signin
from portal.booking.forms import BookingForm, EmailLinkForm, RescheduleForm, SignInForm, SignupForm, SiteServiceForm
from portal.booking.models import Clinic
from portal.booking.selectors import (
    active_services,
    can_change,
    clinics_offering,
    free_days,
    free_slots,
    free_times,
    patient_appointments,
    patient_information,
)
from portal.booking.services import book_appointment, cancel_appointment, reschedule_appointment, set_research_consent
from triage.forms import PhotoUploadForm
from triage.permissions import is_clinician
from triage.services import accept_photos

ACCOUNT_RATE = settings.ACCOUNT_RATE_LIMIT
rate_limited_by_ip = ratelimit(key="ip", rate=ACCOUNT_RATE, method="POST", block=False)
rate_limited_by_email = ratelimit(key="post:email", rate=ACCOUNT_RATE, method="POST", block=False)


def _too_many(request, template, context):
    context["rate_limited"] = True
    return render(request, template, context, status=429)


# Accounts ------------------------------------------------------------------------------------


@method_decorator(ratelimit(key="ip", rate=settings.SIGN_IN_RATE_LIMIT, method="POST", block=False), name="post")
class SignInView(auth_views.LoginView):
    """Sign-in with a per-address rate limit in front of django-axes' per-user lockout."""

    authentication_form = SignInForm

    def post(self, request, *args, **kwargs):
        if getattr(request, "limited", False):
            return _too_many(request, self.template_name, self.get_context_data(form=self.get_form()))
        return super().post(request, *args, **kwargs)


@method_decorator([rate_limited_by_ip, rate_limited_by_email], name="post")
class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset (which never says whether the address is known), rate-limited."""

    def post(self, request, *args, **kwargs):
        if getattr(request, "limited", False):
            return _too_many(request, self.template_name, self.get_context_data(form=self.get_form()))
        return super().post(request, *args, **kwargs)


@rate_limited_by_ip
@rate_limited_by_email
def signup(request):
    form = SignupForm(request.POST or None)
    if request.method == "POST" and getattr(request, "limited", False):
        return _too_many(request, "registration/signup.html", {"form": form})
    if request.method == "POST" and form.is_valid():
        accounts.register_patient(
            email=form.cleaned_data["email"], password=form.cleaned_data["password"], language=get_language()
        )
        return render(request, "registration/check_email.html", {"email": form.cleaned_data["email"]})
    return render(request, "registration/signup.html", {"form": form})


def verify_email(request, uidb64, token):
    user = accounts.verify_email(uidb64=uidb64, token=token)
    if user is None:
        return render(request, "registration/link_invalid.html", status=400)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    messages.success(request, _("Thank you: your email address is confirmed. You can now book an appointment."))
    return redirect("home")


@rate_limited_by_ip
@rate_limited_by_email
def request_sign_in_link(request):
    form = EmailLinkForm(request.POST or None)
    if request.method == "POST" and getattr(request, "limited", False):
        return _too_many(request, "registration/sign_in_link_request.html", {"form": form})
    if request.method == "POST" and form.is_valid():
        accounts.send_sign_in_link(email=form.cleaned_data["email"], language=get_language())
        return render(request, "registration/check_email.html", {"email": form.cleaned_data["email"], "link": True})
    return render(request, "registration/sign_in_link_request.html", {"form": form})


def sign_in_link(request, token):
    """GET shows a button (mail scanners that open links do not use them up); POST signs in."""
    if request.method != "POST":
        if signin.usable_link(token) is None:
            return render(request, "registration/link_invalid.html", status=400)
        return render(request, "registration/sign_in_link_confirm.html")
    link = signin.redeem(token)
    if link is None:
        return render(request, "registration/link_invalid.html", status=400)
    login(request, link.user, backend="django.contrib.auth.backends.ModelBackend")
    return redirect(link.next_url or "home")


# Booking -------------------------------------------------------------------------------------


@login_required
def home(request):
    return render(
        request,
        "booking/home.html",
        {"appointments": patient_appointments(patient=request.user), "is_clinician": is_clinician(request.user)},
    )


def _picker(request, *, service=None, site=None):
    """Service, site and day from the query string. Defaults: the first service, `site` (the booked
    one, when changing a booking) or else the first site that offers it, its first day with free
    times. A site that does not offer the chosen service is swapped for one that does, with a note."""
    services = active_services() if service is None else active_services().filter(pk=service.pk)
    chooser = SiteServiceForm(request.GET or None, services=services, sites=clinics_offering(service))
    valid = chooser.is_bound and chooser.is_valid()
    chosen_service = chooser.cleaned_data["service"] if valid else (service or services.first())
    asked_site = chooser.cleaned_data["site"] if valid else None
    offering = clinics_offering(chosen_service) if chosen_service else Clinic.objects.none()
    default_site = site if site is not None and site in offering else offering.first()
    chosen_site = asked_site if asked_site in offering else default_site
    note = None
    if asked_site is not None and chosen_site != asked_site:
        note = (
            _("%(site)s does not offer %(service)s online; here are the times at %(other)s.")
            % {
                "site": asked_site,
                "service": chosen_service,
                "other": chosen_site,
            }
            if chosen_site
            else _("No clinic offers %(service)s online at the moment.") % {"service": chosen_service}
        )
    chooser = SiteServiceForm(
        initial={"service": chosen_service, "site": chosen_site}, services=services, sites=clinics_offering(service)
    )
    days = free_days(clinic=chosen_site, service=chosen_service) if chosen_site and chosen_service else []
    try:
        day = date.fromisoformat(request.GET.get("day", ""))
    except ValueError:
        day = None
    if day not in {free_day for free_day, _count in days}:
        day = days[0][0] if days else None
    return {
        "chooser": chooser,
        "picker_note": note,
        "service": chosen_service,
        "site": chosen_site,
        "days": days,
        "day": day,
        "times": free_times(clinic=chosen_site, service=chosen_service, day=day) if day else [],
        "slots": free_slots(clinic=chosen_site, service=chosen_service),
    }


@login_required
def book(request):
    picker = _picker(request)
    form = BookingForm(request.POST or None, slots=picker["slots"])
    if request.method == "POST" and form.is_valid():
        try:
            appointment = book_appointment(
                patient=request.user,
                slot=form.cleaned_data["slot"],
                consent_care=form.cleaned_data["consent_care"],
                consent_research=form.cleaned_data["consent_research"],
                questionnaire=form.questionnaire(),
                language=get_language(),
                request=request,
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(
                request,
                _("Booked. Your reference is %(reference)s. We have emailed you the details.")
                % {"reference": appointment.reference},
            )
            return redirect("appointment", reference=appointment.reference)
    return render(request, "booking/book.html", {**picker, "form": form, "chosen_slot": form["slot"].value()})


@login_required
def appointment_detail(request, reference):
    appointment = _own_appointment(request, reference)
    wants_json = request.headers.get("Accept") == "application/json"
    form = PhotoUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        if appointment.status != appointment.Status.BOOKED:
            raise Http404
        photos, errors = _accept_upload(request, appointment, form)
        if wants_json:
            return JsonResponse(
                {"photos": [photo.pk for photo in photos], "errors": errors}, status=400 if errors else 201
            )
        if photos:
            count = len(photos)
            messages.success(
                request,
                ngettext("Thank you: %(count)d photo received.", "Thank you: %(count)d photos received.", count)
                % {"count": count},
            )
            return redirect("appointment", reference=reference)
    retake_id = request.GET.get("retake", "")
    retake = appointment.case.photos.filter(pk=retake_id).first() if retake_id.isdigit() else None
    if retake is not None and not form.is_bound:
        form = PhotoUploadForm(initial={"body_site": retake.body_site})
    return render(
        request,
        "booking/appointment.html",
        {
            "appointment": appointment,
            "form": form,
            "photos": appointment.case.photos.all(),
            "retake": retake,
            "can_change": can_change(appointment),
            "cutoff_hours": settings.BOOKING_CHANGE_CUTOFF_HOURS,
            "sent": int(request.GET["sent"]) if request.GET.get("sent", "").isdigit() else None,
        },
        # A POST that reaches this point was refused; the form says why, the status lets scripts tell.
        status=400 if request.method == "POST" else 200,
    )


def _accept_upload(request, appointment, form):
    """([photos], []) when stored, ([], [messages]) when refused; the form carries the errors too."""
    if not form.is_valid():
        return [], [str(message) for messages_ in form.errors.values() for message in messages_]
    try:
        photos = accept_photos(
            case=appointment.case,
            uploaded_by=request.user,
            uploaded_files=form.cleaned_data["photos"],
            body_site=form.cleaned_data["body_site"],
            roi=form.roi,
            tap=form.tap,
        )
    except ValidationError as error:
        form.add_error(None, error)
        return [], error.messages
    return photos, []


@login_required
def reschedule(request, reference):
    appointment = _own_appointment(request, reference)
    if not can_change(appointment):
        messages.error(request, _("This appointment can no longer be changed online. Please call the clinic."))
        return redirect("appointment", reference=reference)
    picker = _picker(request, service=appointment.slot.service, site=appointment.slot.clinic)
    form = RescheduleForm(request.POST or None, slots=picker["slots"])
    if request.method == "POST" and form.is_valid():
        try:
            reschedule_appointment(
                appointment=appointment,
                slot=form.cleaned_data["slot"],
                actor=request.user,
                change_site=form.cleaned_data["change_site"],
                request=request,
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, _("Your appointment has moved. We have emailed you the new time."))
            return redirect("appointment", reference=reference)
    return render(
        request,
        "booking/reschedule.html",
        {
            **picker,
            "form": form,
            "appointment": appointment,
            "chosen_slot": form["slot"].value(),
            "changes_site": picker["site"] is not None and picker["site"] != appointment.slot.clinic,
        },
        status=400 if request.method == "POST" else 200,
    )


@login_required
def cancel(request, reference):
    """GET asks "are you sure?" (what is cancelled, and that the photos will not be reviewed); POST cancels."""
    appointment = _own_appointment(request, reference)
    if request.method != "POST":
        if not can_change(appointment):
            return redirect("appointment", reference=reference)
        return render(request, "booking/cancel.html", {"appointment": appointment})
    try:
        cancel_appointment(appointment=appointment, actor=request.user, request=request)
    except ValidationError as error:
        messages.error(request, error.messages[0])
        return redirect("appointment", reference=reference)
    messages.success(request, _("Appointment %(reference)s is cancelled.") % {"reference": reference})
    return redirect("home")


@login_required
@require_POST
def research_consent(request, reference):
    appointment = _own_appointment(request, reference)
    given = request.POST.get("given") == "yes"
    set_research_consent(appointment=appointment, given=given, actor=request.user)
    messages.success(
        request,
        _("Thank you: you have agreed to research use of your photos.")
        if given
        else _("Your photos will not be used for research. This does not change your care."),
    )
    return redirect(reverse("appointment", args=[reference]) + "#consent")


def information(request):
    return render(request, "booking/information.html", {"page": patient_information(language=get_language())})


def _own_appointment(request, reference):
    """The signed-in patient's appointment; anyone else's (or none) is an audited denial and a 404, never a 403."""
    appointment = patient_appointments(patient=request.user).filter(reference=reference).first()
    if appointment is None:
        deny(
            request,
            action="view_appointment",
            asked_for=f"appointment {reference}",
            rule="own_appointment",
            reference=reference,
        )
    return appointment
