from django import forms
from django.utils.translation import gettext_lazy as _

from triage.images import BOX_FIELDS, MIN_ROI_SIDE, TAP_FIELDS
from triage.models import DECISION_OUTCOMES, Decision, FinalDiagnosis, LabResult, Photo
from triage.selectors import QUEUE_PERIODS, QUEUE_STATUSES

UNREADABLE_MARK = _("The position marked on the photo could not be read. Please tap the lesion or draw the box again.")


class RoiForm(forms.Form):
    """Hidden inputs filled by static/js/roi-editor.js (upright-photo pixel coordinates): a drawn
    box (roi_*) or a tap on the lesion (tap_*), or neither. Whether they lie inside the photo is
    checked against the photo itself (triage.images); every error here is a non-field error, so
    the page shows it (hidden inputs have no place to show their own)."""

    min_roi_side = MIN_ROI_SIDE  # handed to the editor: a smaller drag counts as a tap there

    roi_x0 = forms.IntegerField(required=False, widget=forms.HiddenInput)
    roi_y0 = forms.IntegerField(required=False, widget=forms.HiddenInput)
    roi_x1 = forms.IntegerField(required=False, widget=forms.HiddenInput)
    roi_y1 = forms.IntegerField(required=False, widget=forms.HiddenInput)
    tap_x = forms.IntegerField(required=False, widget=forms.HiddenInput)
    tap_y = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def clean(self):
        cleaned = super().clean()
        if any(name in self.errors for name in BOX_FIELDS + TAP_FIELDS):
            raise forms.ValidationError(UNREADABLE_MARK, code="roi")
        given_box = [cleaned.get(name) is not None for name in BOX_FIELDS]
        given_tap = [cleaned.get(name) is not None for name in TAP_FIELDS]
        if any(given_box) and not all(given_box) or any(given_tap) and not all(given_tap):
            raise forms.ValidationError(UNREADABLE_MARK, code="roi")
        if all(given_box) and all(given_tap):
            raise forms.ValidationError(_("Please either tap the lesion or draw a box, not both."), code="roi")
        return cleaned

    @property
    def roi(self):
        box = tuple(self.cleaned_data.get(name) for name in BOX_FIELDS)
        return None if None in box else box

    @property
    def tap(self):
        point = tuple(self.cleaned_data.get(name) for name in TAP_FIELDS)
        return None if None in point else point


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleImageField(forms.FileField):
    """A file field that accepts several files and returns them as a list."""

    def __init__(self, *args, **kwargs):
        # capture: phones open the back camera; .heic/.heif: iPhone photos where a browser does not map them to image/*
        kwargs.setdefault(
            "widget", MultipleFileInput(attrs={"accept": "image/*,.heic,.heif", "capture": "environment"})
        )
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = list(data) if isinstance(data, (list, tuple)) else [data]
        clean_one = super().clean
        return [clean_one(item, initial) for item in files or [None]]  # [None] raises "required"


class PhotoUploadForm(RoiForm):
    photos = MultipleImageField(
        label=_("Take or choose photos"),
        help_text=_("JPEG, PNG or HEIC (iPhone). You can send several photos; mark the lesion only when sending one."),
        error_messages={"required": _("Please choose at least one photo.")},
    )
    body_site = forms.ChoiceField(label=_("Where on the body?"), choices=[("", _("Choose…")), *Photo.BodySite.choices])
    consent_confirm = forms.BooleanField(
        label=_("I confirm these photos can be analysed and viewed by clinic staff for this visit."),
        error_messages={"required": _("Please confirm your consent before sending photos.")},
    )


class DecisionForm(forms.Form):
    """Outcome, then an action that fits it (Decision.ACTIONS_FOR_OUTCOME, also enforced by the service)."""

    outcome = forms.ChoiceField(choices=DECISION_OUTCOMES, widget=forms.RadioSelect)
    action = forms.ChoiceField(
        choices=Decision.Action.choices,
        widget=forms.RadioSelect,
        required=False,
        help_text="Suspected mpox: isolation room, telehealth or PPE. Not suspected: standard waiting room. "
        "New photo: no action.",
    )
    patient_instructions = forms.CharField(
        label="Message to the patient",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Shown to the patient and emailed. Required when asking for a new photo: say why. "
        "Left empty, the patient gets the standard text for the action.",
    )
    note = forms.CharField(
        label="Note for staff", required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 3})
    )

    @property
    def actions_for_outcome(self):
        """The allowed pairs, for the page's script that offers only fitting actions."""
        return {outcome: list(actions) for outcome, actions in Decision.ACTIONS_FOR_OUTCOME.items()}

    def clean(self):
        cleaned = super().clean()
        if "outcome" in cleaned:
            problems = Decision.problems(
                outcome=cleaned["outcome"],
                action=cleaned.get("action", ""),
                patient_instructions=cleaned.get("patient_instructions", ""),
            )
            for field, message in problems.items():
                self.add_error(field, message)
        return cleaned


class QueueFilterForm(forms.Form):
    """The queue's filters, from the query string; anything unreadable falls back to the default."""

    status = forms.ChoiceField(choices=[(key, label) for key, (label, _) in QUEUE_STATUSES.items()], required=False)
    period = forms.ChoiceField(label="When", choices=list(QUEUE_PERIODS.items()), required=False)
    site = forms.TypedChoiceField(label="Site", coerce=int, required=False, empty_value=None)
    mine = forms.BooleanField(label="Assigned to me", required=False)
    q = forms.CharField(
        label="Search",
        required=False,
        max_length=100,
        widget=forms.TextInput(attrs={"placeholder": "Reference or patient name", "type": "search"}),
    )

    def __init__(self, data, *, sites):
        super().__init__(data)
        self.fields["site"].choices = [("", "All my sites"), *sites]

    def filters(self):
        """Keyword arguments for `selectors.case_queue` (defaults where a value did not validate)."""
        data = self.cleaned_data if self.is_valid() else {}
        return {
            "status": data.get("status") or "all",
            "period": data.get("period") or "any",
            "site": data.get("site"),
            "mine": bool(data.get("mine")),
            "search": (data.get("q") or "").strip(),
        }


class GroundTruthForm(forms.Form):
    """Lab result and final diagnosis of a case; a blank choice keeps what is recorded."""

    result = forms.ChoiceField(
        label="Mpox PCR",
        required=False,
        choices=[("", "Keep as recorded"), *LabResult.Result.choices],
    )
    result_date = forms.DateField(
        label="Date of result",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    diagnosis = forms.ChoiceField(
        label="Final diagnosis",
        required=False,
        choices=[("", "Keep as recorded"), *FinalDiagnosis.Diagnosis.choices],
    )
    note = forms.CharField(
        label="Reason for a correction",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Needed when you change a recorded value.",
    )

    confirm_contradiction = forms.BooleanField(
        label="I confirm: the PCR is negative and the final diagnosis is mpox",
        required=False,
    )

    def service_arguments(self):
        data = self.cleaned_data
        return {
            "result": data["result"] or None,
            "result_date": data["result_date"],
            "diagnosis": data["diagnosis"] or None,
            "note": data["note"],
            "confirm_contradiction": data["confirm_contradiction"],
        }

    def add_service_error(self, error):
        """A contradiction is shown at its confirmation box (which then appears); other refusals at the top."""
        self.add_error("confirm_contradiction" if error.code == "contradiction" else None, error)
