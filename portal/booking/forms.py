from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User
from django.utils import timezone

from portal.booking.models import Slot
from portal.booking.selectors import bookable_slots
from triage.forms import RoiForm
from triage.models import Photo


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=True, help_text="We only use it to contact you about your visit.")

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")


class BookingForm(forms.Form):
    slot = forms.ModelChoiceField(
        queryset=Slot.objects.none(),
        widget=forms.RadioSelect,
        error_messages={"required": "Please choose a time.", "invalid_choice": "That time is no longer available — please choose another."},
    )
    symptoms = forms.CharField(
        label="What have you noticed?",
        help_text="For example: spots, blisters or sores, where they are, fever, swollen glands.",
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=2000,
    )
    lesion_onset = forms.DateField(
        label="When did the first spot or sore appear?",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    consent_care = forms.BooleanField(
        label="I agree that my photos and answers can be analysed and viewed by clinic staff for this visit.",
        error_messages={"required": "We need your consent to use your photos for this visit."},
    )
    consent_research = forms.BooleanField(
        label="Optional: my anonymised photos may also be used for research to improve this service.",
        required=False,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["slot"].queryset = bookable_slots()

    def clean_lesion_onset(self):
        onset = self.cleaned_data["lesion_onset"]
        if onset and onset > timezone.localdate():
            raise forms.ValidationError("This date is in the future.")
        return onset


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleImageField(forms.FileField):
    """A file field that accepts several files and returns them as a list."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "image/*"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = list(data) if isinstance(data, (list, tuple)) else [data]
        clean_one = super().clean
        return [clean_one(item, initial) for item in files or [None]]  # [None] raises "required"


class PhotoUploadForm(RoiForm):
    photos = MultipleImageField(
        label="Photos",
        help_text="JPEG or PNG. You can choose several photos; draw a box only when sending one.",
        error_messages={"required": "Please choose at least one photo."},
    )
    body_site = forms.ChoiceField(label="Where on the body?", choices=[("", "Choose…"), *Photo.BodySite.choices])
    consent_confirm = forms.BooleanField(
        label="I confirm these photos can be analysed and viewed by clinic staff for this visit.",
        error_messages={"required": "Please confirm your consent before sending photos."},
    )
