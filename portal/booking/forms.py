from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User
from django.utils import timezone

from portal.booking.models import Slot
from portal.booking.selectors import bookable_slots


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
