"""Moving a model to another app by state alone (its table kept): its content type moves with it, so
the permissions granted on it and the admin log entries about it stay attached."""

from django.db import migrations


def move_content_types(model_names, *, source, target):
    """A migration operation that gives the content types of `model_names` the app label `target`
    instead of `source` (and back when unapplied)."""

    def move(apps, from_label, to_label):
        ContentType = apps.get_model("contenttypes", "ContentType")
        for model in model_names:
            if ContentType.objects.filter(app_label=from_label, model=model).exists():
                ContentType.objects.filter(app_label=to_label, model=model).delete()
                ContentType.objects.filter(app_label=from_label, model=model).update(app_label=to_label)

    return migrations.RunPython(
        lambda apps, schema_editor: move(apps, source, target),
        lambda apps, schema_editor: move(apps, target, source),
    )
