from django.core.management.base import BaseCommand

from registry.versions import active_model_version, register_checkpoints
from triage.models import Photo
from triage.tasks import enqueue_analysis


class Command(BaseCommand):
    help = "Register the checkpoints in MODEL_DIR (or --dir) as model versions; the first becomes active."

    def add_arguments(self, parser):
        parser.add_argument("--dir", help="Folder of *.pt checkpoints (default: settings.MODEL_DIR).")

    def handle(self, *args, dir=None, **options):
        for model_version in register_checkpoints(dir):
            self.stdout.write(f"Registered {model_version.version} ({model_version.architecture})")
        active = active_model_version()
        if active is None:
            self.stdout.write(self.style.WARNING("No model installed: photos will wait as 'no model installed'."))
            return
        self.stdout.write(f"Active model: {active.version} (threshold {active.threshold:.3f})")
        waiting = Photo.objects.filter(status=Photo.Status.NO_MODEL)
        if waiting.exists():
            enqueue_analysis(waiting)
            self.stdout.write(f"Queued {waiting.count()} photos that were waiting for a model.")
