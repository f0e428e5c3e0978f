"""The history + image model's features: what a case's questionnaire answers and photos say, beside
its image score. The clinical pipeline scores new cases with them (`triage.analysis`); model
operations fit and measure on them (`modelops.performance`)."""
from datetime import date

from ml.history import combined_probability, image_logit
from triage.models import Photo

# History + image model. Questionnaire keys read (Appointment.questionnaire, documented in
# portal/booking/questionnaire.py; missing or unknown answers count as "no"):
#   close_contact, fever, swollen_lymph_nodes: "yes" / "no" / "unsure";
#   vaccination: "one_dose" or "two_doses" count as vaccinated;
#   lesion_sites: list of body sites (Photo.BodySite values), with the photos' body sites;
#   onset_date: ISO date, within 7 days of the appointment.
HISTORY_BOOLEAN_KEYS = ("close_contact", "fever", "swollen_lymph_nodes")
VACCINATED_ANSWERS = {"one_dose", "two_doses"}
ANOGENITAL_SITES = {Photo.BodySite.GENITAL, Photo.BodySite.PERIANAL}
RECENT_ONSET_DAYS = 7
HISTORY_FEATURES = ("image score (log-odds)", *HISTORY_BOOLEAN_KEYS, "vaccinated", "anogenital lesion", "lesion sites",
                    "onset within 7 days")


def _yes(value) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in {"yes", "y", "true", "1"}) or value == 1


def _onset(value):
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def history_features(case, image_score) -> list[float]:
    appointment = case.appointment
    answers = getattr(appointment, "questionnaire", None)
    answers = answers if isinstance(answers, dict) else {}
    reported_sites = answers.get("lesion_sites")
    sites = {str(site) for site in reported_sites} if isinstance(reported_sites, (list, tuple)) else set()
    sites |= {photo.body_site for photo in case.photos.all()}
    onset, visit = _onset(answers.get("onset_date")), appointment.slot.starts_at.date()
    recent = onset is not None and 0 <= (visit - onset).days <= RECENT_ONSET_DAYS
    return [
        float(image_logit([image_score])[0]),
        *(float(_yes(answers.get(key))) for key in HISTORY_BOOLEAN_KEYS),
        float(answers.get("vaccination") in VACCINATED_ANSWERS),
        float(bool(sites & ANOGENITAL_SITES)),
        float(len(sites)),
        float(recent),
    ]


def history_probability(history_model, case, image_score) -> float:
    """A stored history + image model's combined probability for a case with this image score."""
    if list(history_model.features) != list(HISTORY_FEATURES):
        raise ValueError(f"{history_model.version} was fitted on other features than this code computes: fit it again.")
    return combined_probability(history_model.intercept, history_model.coefficients, history_features(case, image_score))


