from datetime import date

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from modelops.services import register_history_model
from triage.management.staff import staff_user


class Command(BaseCommand):
    help = (
        "Fit the history + image model (logistic regression on the active model's score and the questionnaire) "
        "on lab-confirmed cases and keep it as a candidate version. It flags nothing until promoted in admin."
    )

    def add_arguments(self, parser):
        parser.add_argument("--by", help="User name of the staff member fitting it (recorded with the version).")
        parser.add_argument("--start", type=date.fromisoformat, help="First appointment date, YYYY-MM-DD.")
        parser.add_argument("--end", type=date.fromisoformat, help="Last appointment date, YYYY-MM-DD.")
        parser.add_argument("--clinic", type=int, help="Clinic site id.")

    def handle(self, *args, by=None, start=None, end=None, clinic=None, **options):
        try:
            history_model = register_history_model(fitted_by=staff_user(by), start=start, end=end, clinic_id=clinic)
        except ValidationError as error:
            raise CommandError(error.messages[0])
        self.stdout.write(
            f"{history_model.version}: fitted on {history_model.fitted_cases} lab-confirmed cases "
            f"({history_model.fitted_positives} positive), threshold {history_model.threshold:.3f}. "
            "It is compared with the image score alone on lab-confirmed cases it was not fitted on; promote it in admin."
        )
