from django import forms

from triage.models import Decision


class RoiForm(forms.Form):
    """Hidden inputs filled by static/js/roi-editor.js (upright-photo pixel coordinates)."""

    roi_x0 = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)
    roi_y0 = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)
    roi_x1 = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)
    roi_y1 = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    @property
    def roi(self):
        box = tuple(self.cleaned_data.get(name) for name in ("roi_x0", "roi_y0", "roi_x1", "roi_y1"))
        return None if None in box else box


class DecisionForm(forms.Form):
    outcome = forms.ChoiceField(choices=Decision.Outcome.choices, widget=forms.RadioSelect)
    action = forms.ChoiceField(choices=Decision.Action.choices, widget=forms.RadioSelect)
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), max_length=4000)
