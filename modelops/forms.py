from django import forms


class PerformanceFilterForm(forms.Form):
    """Date range (appointment dates, inclusive) and clinic site for the performance pages."""

    start = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    clinic = forms.TypedChoiceField(label="Clinic site", required=False, coerce=int, empty_value=None)

    def __init__(self, *args, clinics=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["clinic"].choices = [("", "All sites"), *clinics]

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            raise forms.ValidationError("The start date is after the end date.")
        return data

    @property
    def filters(self):
        """Keyword arguments for modelops.performance (empty when the form is invalid)."""
        if not self.is_valid():
            return {}
        return {
            "start": self.cleaned_data["start"],
            "end": self.cleaned_data["end"],
            "clinic_id": self.cleaned_data["clinic"],
        }
