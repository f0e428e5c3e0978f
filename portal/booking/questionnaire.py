"""The pre-visit questionnaire: one definition used by the booking form, the stored JSON and the
answers shown to clinicians.

`Appointment.questionnaire` holds (version QUESTIONNAIRE_VERSION; keys are stable, other helpers
and models read them):

    version              int, 1
    onset_date           "YYYY-MM-DD" or null (not sure)
    fever                "yes" | "no" | "unsure"
    swollen_lymph_nodes  "yes" | "no" | "unsure"
    lesion_sites         list of triage.models.Photo.BodySite values (may be empty)
    lesion_count         "1" | "2_5" | "6_20" | "over_20"
    pain_itch            "none" | "pain" | "itch" | "both"
    close_contact        "yes" | "no" | "unsure"   (with someone who has or may have mpox, 21 days)
    travel               "yes" | "no"              (outside the country, 21 days)
    travel_where         free text, "" when not given
    vaccination          "none" | "one_dose" | "two_doses" | "unsure"
    notes                free text, "" when not given
"""

from dataclasses import dataclass
from datetime import date

from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _

from triage.models import Photo

QUESTIONNAIRE_VERSION = 1

YES_NO_UNSURE = [("yes", _("Yes")), ("no", _("No")), ("unsure", _("Not sure"))]


@dataclass(frozen=True)
class Question:
    key: str
    label: str
    kind: str  # "date", "choice", "multi", "text"
    choices: tuple = ()
    help_text: str = ""
    required: bool = True


QUESTIONS = (
    Question(
        "onset_date",
        _("When did the first spot, sore or other symptom appear?"),
        "date",
        help_text=_("Leave empty if you are not sure."),
        required=False,
    ),
    Question("fever", _("Have you had a fever or felt hot and shivery?"), "choice", tuple(YES_NO_UNSURE)),
    Question(
        "swollen_lymph_nodes",
        _("Have you noticed swollen glands (in the neck, armpits or groin)?"),
        "choice",
        tuple(YES_NO_UNSURE),
    ),
    Question(
        "lesion_sites",
        _("Where are the spots or sores?"),
        "multi",
        tuple(Photo.BodySite.choices),
        help_text=_("Tick all that apply."),
        required=False,
    ),
    Question(
        "lesion_count",
        _("How many spots or sores are there?"),
        "choice",
        (("1", _("One")), ("2_5", _("2 to 5")), ("6_20", _("6 to 20")), ("over_20", _("More than 20"))),
    ),
    Question(
        "pain_itch",
        _("Are they painful or itchy?"),
        "choice",
        (("none", _("Neither")), ("pain", _("Painful")), ("itch", _("Itchy")), ("both", _("Painful and itchy"))),
    ),
    Question(
        "close_contact",
        _("In the last 21 days, have you had close contact (including sex) with someone who has or may have mpox?"),
        "choice",
        tuple(YES_NO_UNSURE),
    ),
    Question(
        "travel",
        _("In the last 21 days, have you travelled outside the country?"),
        "choice",
        (("yes", _("Yes")), ("no", _("No"))),
    ),
    Question("travel_where", _("If you travelled, where to?"), "text", required=False),
    Question(
        "vaccination",
        _("Have you had an mpox (smallpox) vaccine?"),
        "choice",
        (
            ("none", _("No")),
            ("one_dose", _("Yes, one dose")),
            ("two_doses", _("Yes, two doses")),
            ("unsure", _("Not sure")),
        ),
    ),
    Question("notes", _("Anything else the clinic should know? (optional)"), "text", required=False),
)

NOT_ANSWERED = _("Not answered")


def answers_as_text(answers):
    """[(label, answer)] for every question, in order, in the active language."""
    rows = []
    for question in QUESTIONS:
        value = answers.get(question.key)
        rows.append((str(question.label), _answer_text(question, value)))
    return rows


def _answer_text(question, value):
    if value in (None, "", []):
        return str(_("Not sure") if question.key == "onset_date" else NOT_ANSWERED)
    if question.kind == "date":
        return date_format(date.fromisoformat(value), "j F Y")
    labels = {key: str(label) for key, label in question.choices}
    if question.kind == "multi":
        return ", ".join(labels.get(item, item) for item in value)
    if question.kind == "choice":
        return labels.get(value, value)
    return value


# What the history + image model reads of the answers (`Appointment.history_answers`), read
# defensively: a missing, unknown or malformed answer counts as "no" (or no date).
HISTORY_SYMPTOMS = ("close_contact", "fever", "swollen_lymph_nodes")
VACCINATED_ANSWERS = {"one_dose", "two_doses"}


def history_answers(answers) -> dict:
    """{"close_contact", "fever", "swollen_lymph_nodes", "vaccinated": bool; "lesion_sites": set of
    body sites; "onset_date": date or None} from stored answers (any JSON value)."""
    answers = answers if isinstance(answers, dict) else {}
    sites = answers.get("lesion_sites")
    return {
        **{key: _yes(answers.get(key)) for key in HISTORY_SYMPTOMS},
        "vaccinated": answers.get("vaccination") in VACCINATED_ANSWERS,
        "lesion_sites": {str(site) for site in sites} if isinstance(sites, (list, tuple)) else set(),
        "onset_date": _date(answers.get("onset_date")),
    }


def _yes(value) -> bool:
    return (
        value is True or (isinstance(value, str) and value.strip().lower() in {"yes", "y", "true", "1"}) or value == 1
    )


def _date(value):
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
