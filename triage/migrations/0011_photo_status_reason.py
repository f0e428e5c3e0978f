"""Photo reasons become codes (`Photo.status_reason`), put into words in the reader's language when
shown; `status_detail` keeps only the technical cause of a failure, for staff.

The texts stored so far (every wording the worker has used) are mapped to codes by a phrase each
contains; the exception name of a failure stays as its detail. Going back leaves the codes unused.
"""

import re

from django.db import migrations, models

# (phrase in the stored English text, reason code), first match wins.
PHRASES = [
    ("too dark", "too_dark"),
    ("too bright", "too_bright"),
    ("looks blank", "blank"),
    ("blurred", "blurred"),
    ("could not see skin", "not_skin"),
    ("skin spot or sore", "no_lesion"),
    ("took too long", "timed_out"),
    ("analysis failed", "failed"),
]
FALLBACK = {"rejected": "not_assessable", "failed": "failed"}


def reasons_from_texts(apps, schema_editor):
    Photo = apps.get_model("triage", "Photo")
    for photo in Photo.objects.exclude(status_detail=""):
        text = photo.status_detail
        photo.status_reason = ""
        photo.status_detail = ""
        if photo.status in FALLBACK:
            photo.status_reason = next(
                (code for phrase, code in PHRASES if phrase in text.lower()), FALLBACK[photo.status]
            )
            cause = re.search(r"analysis failed \((\w+)\)", text)
            photo.status_detail = cause.group(1) if cause else ""
        photo.save(update_fields=["status_reason", "status_detail"])


class Migration(migrations.Migration):
    dependencies = [
        ("triage", "0010_history_model_versions"),
    ]

    operations = [
        migrations.AddField(
            model_name="photo",
            name="status_reason",
            field=models.CharField(
                blank=True,
                choices=[
                    ("too_dark", "Too dark"),
                    ("too_bright", "Too bright"),
                    ("blank", "Blank"),
                    ("blurred", "Blurred"),
                    ("not_skin", "Not skin"),
                    ("no_lesion", "No lesion recognised"),
                    ("not_assessable", "Not assessable"),
                    ("timed_out", "Analysis timed out"),
                    ("failed", "Analysis failed"),
                ],
                help_text="Why it must be taken again or why its analysis failed; put into words when shown.",
                max_length=20,
            ),
        ),
        migrations.AlterField(
            model_name="photo",
            name="status_detail",
            field=models.CharField(
                blank=True, help_text="Staff only: the technical cause of a failed analysis.", max_length=300
            ),
        ),
        migrations.RunPython(reasons_from_texts, migrations.RunPython.noop),
    ]
