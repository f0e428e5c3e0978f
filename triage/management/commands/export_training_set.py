import getpass

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from triage.management.staff import staff_user
from triage.services import export_training_set


class Command(BaseCommand):
    help = (
        "Write the photos of patients who opted in to research, with a lab result or final diagnosis, "
        "as an ml dataset (mpox/, non_mpox/<diagnosis>/, dataset.csv with pseudonymous patient ids). Audited."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, help="A new or empty folder.")
        parser.add_argument(
            "--by", help="User name of the staff member asking for the export (recorded in the audit log)."
        )

    def handle(self, *args, out, by=None, **options):
        try:
            summary = export_training_set(out_dir=out, actor=staff_user(by), operator=getpass.getuser())
        except ValidationError as error:
            raise CommandError(error.messages[0])
        self.stdout.write(
            f"Exported {summary['photos']} photos ({summary['mpox']} mpox) of {summary['patients']} patients to {out}; "
            f"{summary['skipped_without_label']} consented photos had no usable label."
        )
