from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.booking.consent import CARE_TEXT, RESEARCH_TEXT
from portal.booking.models import Slot
from portal.booking.questionnaire import QUESTIONNAIRE_VERSION, QUESTIONS


class SignInForm(AuthenticationForm):
    """Sign in with the email address (the username of patient accounts) or a staff user name."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["username"].label = _("Email address or user name")
        self.fields["password"].label = _("Password")
        refused = _(
            "The email address and password did not match, or the account is not confirmed yet. Please try again."
        )
        # A copy: AuthenticationForm.error_messages is shared by every login form (admin's too).
        self.error_messages = {**self.error_messages, "invalid_login": refused, "inactive": refused}

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        return username.lower() if "@" in username else username


class SignupForm(forms.Form):
    email = forms.EmailField(
        label=_("Email address"),
        help_text=_("We only use it to contact you about your visit."),
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    password = forms.CharField(
        label=_("Choose a password"),
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_("At least 8 characters; not a common password."),
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("email") and cleaned.get("password"):
            try:
                password_validation.validate_password(cleaned["password"])
            except forms.ValidationError as error:
                self.add_error("password", error)
        return cleaned


class EmailLinkForm(forms.Form):
    email = forms.EmailField(label=_("Email address"), widget=forms.EmailInput(attrs={"autocomplete": "email"}))


class SiteServiceForm(forms.Form):
    """Step one (GET): where and what. Both lists come from the view."""

    service = forms.ModelChoiceField(queryset=None, label=_("What do you need?"), empty_label=None)
    site = forms.ModelChoiceField(queryset=None, label=_("Which clinic?"), empty_label=None)

    def __init__(self, *args, services, sites, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["service"].queryset = services
        self.fields["site"].queryset = sites


def _question_field(question):
    common = {"label": question.label, "required": question.required, "help_text": question.help_text}
    if question.kind == "date":
        return forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), **common)
    if question.kind == "choice":
        return forms.ChoiceField(choices=question.choices, widget=forms.RadioSelect, **common)
    if question.kind == "multi":
        return forms.MultipleChoiceField(choices=question.choices, widget=forms.CheckboxSelectMultiple, **common)
    return forms.CharField(max_length=1000, widget=forms.Textarea(attrs={"rows": 2}), **common)


class QuestionnaireAnswersForm(forms.Form):
    """The pre-visit questions (portal/booking/questionnaire.py): one check of the answers for the
    booking page and for answers sent by a clinic's system (FHIR QuestionnaireResponse)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        questions = {question.key: _question_field(question) for question in QUESTIONS}
        self.fields = {**questions, **self.fields}

    def question_fields(self):
        return [self[question.key] for question in QUESTIONS]

    def clean_onset_date(self):
        onset = self.cleaned_data["onset_date"]
        if onset and onset > timezone.localdate():
            raise forms.ValidationError(_("This date is in the future."))
        return onset

    def questionnaire(self):
        """The answers as stored in Appointment.questionnaire."""
        answers = {"version": QUESTIONNAIRE_VERSION}
        for question in QUESTIONS:
            value = self.cleaned_data.get(question.key)
            if question.kind == "date":
                value = value.isoformat() if value else None
            elif question.kind == "multi":
                value = list(value or [])
            elif value is None:
                value = ""
            answers[question.key] = value
        return answers


class QuestionnaireForm(QuestionnaireAnswersForm):
    """The pre-visit questions and the two consents."""

    consent_care = forms.BooleanField(
        label=CARE_TEXT,
        error_messages={"required": _("We need your consent to use your answers and photos for this visit.")},
    )
    consent_research = forms.BooleanField(label=RESEARCH_TEXT, required=False)


class SlotChoiceForm(forms.Form):
    slot = forms.ModelChoiceField(
        queryset=Slot.objects.none(),
        widget=forms.RadioSelect,
        error_messages={
            "required": _("Please choose a time."),
            "invalid_choice": _("That time is no longer available — please choose another."),
        },
    )

    def __init__(self, *args, slots, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["slot"].queryset = slots


class RescheduleForm(SlotChoiceForm):
    """A new time; `change_site` says the patient chose to move to another clinic (the service refuses
    a move to another site without it)."""

    change_site = forms.BooleanField(required=False)


class BookingForm(SlotChoiceForm, QuestionnaireForm):
    pass
