from django.core.management.base import BaseCommand, CommandError

from modelops.services import register_challenger


class Command(BaseCommand):
    help = "Register a trained checkpoint as the challenger: it runs in shadow on every new photo until promoted."

    def add_arguments(self, parser):
        parser.add_argument("checkpoint", help="Path of a checkpoint written by `python -m ml train`.")

    def handle(self, *args, checkpoint, **options):
        import ml

        try:
            model_version = register_challenger(checkpoint_path=checkpoint)
        except (ml.CheckpointError, ValueError) as error:
            raise CommandError(str(error))
        self.stdout.write(f"{model_version.version} (threshold {model_version.threshold:.3f}) is the challenger.")
