import getpass

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from triage.services import export_training_set


class Command(BaseCommand):
    help = ("Write the photos of patients who opted in to research, with a lab result or final diagnosis, "
            "as an ml dataset (mpox/, non_mpox/<diagnosis>/, dataset.csv with pseudonymous patient ids). Audited.")

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, help="A new or empty folder.")
        parser.add_argument("--by", help="User name of the staff member asking for the export (recorded in the audit log).")

    def handle(self, *args, out, by=None, **options):
        actor = None
        if by:
            actor = get_user_model().objects.filter(username=by, is_staff=True).first()
            if actor is None:
                raise CommandError(f"No staff user {by!r}.")
        try:
            summary = export_training_set(out_dir=out, actor=actor, operator=getpass.getuser())
        except ValidationError as error:
            raise CommandError(error.messages[0])
        self.stdout.write(
            f"Exported {summary['photos']} photos ({summary['mpox']} mpox) of {summary['patients']} patients to {out}; "
            f"{summary['skipped_without_label']} consented photos had no usable label."
        )
