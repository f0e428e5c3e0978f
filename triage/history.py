"""The history + image model's features: what a case's questionnaire answers and photos say, beside
its image score. The clinical pipeline scores new cases with them (`triage.analysis`); model
operations fit and measure on them (`modelops.performance`)."""

from ml.history import combined_probability, image_logit
from triage.models import Photo

# History + image model features, from the answers booking reads for it (`Appointment.history_answers`,
# portal/booking/questionnaire.py: missing or unknown answers count as "no") and the photos' body sites.
HISTORY_SYMPTOMS = ("close_contact", "fever", "swollen_lymph_nodes")
ANOGENITAL_SITES = {Photo.BodySite.GENITAL, Photo.BodySite.PERIANAL}
RECENT_ONSET_DAYS = 7
HISTORY_FEATURES = (
    "image score (log-odds)",
    *HISTORY_SYMPTOMS,
    "vaccinated",
    "anogenital lesion",
    "lesion sites",
    "onset within 7 days",
)


def history_features(case, image_score) -> list[float]:
    appointment = case.appointment
    answers = appointment.history_answers()
    sites = answers["lesion_sites"] | {photo.body_site for photo in case.photos.all()}
    onset, visit = answers["onset_date"], appointment.starts_at.date()
    recent = onset is not None and 0 <= (visit - onset).days <= RECENT_ONSET_DAYS
    return [
        float(image_logit([image_score])[0]),
        *(float(answers[key]) for key in HISTORY_SYMPTOMS),
        float(answers["vaccinated"]),
        float(bool(sites & ANOGENITAL_SITES)),
        float(len(sites)),
        float(recent),
    ]


def history_probability(history_model, case, image_score) -> float:
    """A stored history + image model's combined probability for a case with this image score."""
    if list(history_model.features) != list(HISTORY_FEATURES):
        raise ValueError(f"{history_model.version} was fitted on other features than this code computes: fit it again.")
    return combined_probability(
        history_model.intercept, history_model.coefficients, history_features(case, image_score)
    )
