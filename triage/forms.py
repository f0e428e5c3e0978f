from django import forms

from triage.images import MIN_ROI_SIDE
from triage.models import DECISION_OUTCOMES, Decision, Photo


class RoiForm(forms.Form):
    """Hidden inputs filled by static/js/roi-editor.js (upright-photo pixel coordinates)."""

    min_roi_side = MIN_ROI_SIDE  # handed to the editor, which drops smaller boxes as the server does

    roi_x0 = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)
    roi_y0 = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)
    roi_x1 = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)
    roi_y1 = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    @property
    def roi(self):
        box = tuple(self.cleaned_data.get(name) for name in ("roi_x0", "roi_y0", "roi_x1", "roi_y1"))
        return None if None in box else box


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


class DecisionForm(forms.Form):
    outcome = forms.ChoiceField(choices=DECISION_OUTCOMES, widget=forms.RadioSelect)
    action = forms.ChoiceField(choices=Decision.Action.choices, widget=forms.RadioSelect)
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), max_length=4000)
