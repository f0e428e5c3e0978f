"""Patient pages: sign up, appointments, booking, photo upload and status."""
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from portal.booking.forms import BookingForm, SignupForm
from portal.booking.selectors import open_slots_by_day, patient_appointments
from portal.booking.services import book_appointment, cancel_appointment
from triage.forms import PhotoUploadForm
from triage.permissions import is_clinician
from triage.services import accept_photos


def signup(request):
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, "Your account is ready. You can now book an appointment.")
        return redirect("home")
    return render(request, "registration/signup.html", {"form": form})


@login_required
def home(request):
    return render(
        request,
        "booking/home.html",
        {"appointments": patient_appointments(patient=request.user), "is_clinician": is_clinician(request.user)},
    )


@login_required
def book(request):
    form = BookingForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            appointment = book_appointment(patient=request.user, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Booked. Your reference is {appointment.reference}. You can now add photos.")
            return redirect("appointment", reference=appointment.reference)
    return render(
        request,
        "booking/book.html",
        {"form": form, "slots_by_day": open_slots_by_day(), "chosen_slot": form["slot"].value()},
    )


@login_required
def appointment_detail(request, reference):
    appointment = _own_appointment(request, reference)
    form = PhotoUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
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
        else:
            messages.success(request, f"Thank you: {len(photos)} photo(s) received.")
            return redirect("appointment", reference=reference)
    return render(
        request,
        "booking/appointment.html",
        {"appointment": appointment, "form": form, "photos": appointment.case.photos.all()},
    )


@login_required
@require_POST
def cancel(request, reference):
    appointment = _own_appointment(request, reference)
    try:
        cancel_appointment(appointment=appointment)
    except ValidationError as error:
        messages.error(request, error.messages[0])
    else:
        messages.success(request, f"Appointment {reference} is cancelled.")
    return redirect("home")


def _own_appointment(request, reference):
    """The signed-in patient's appointment; anyone else's is a 404, never a 403."""
    return get_object_or_404(patient_appointments(patient=request.user), reference=reference)
