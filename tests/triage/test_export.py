"""Consented training export: only research opt-ins with a label, the ml layout, no identities, audited."""

import csv

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from PIL import Image

import ml.testing
from core.models import AuditEvent
from ml.diagnoses import class_of
from ml.research.data import discover
from portal.booking.models import Appointment
from tests.clinic_history import book_past_case, record_score
from triage.models import FinalDiagnosis, LabResult
from triage.services import record_ground_truth

pytestmark = pytest.mark.django_db


@pytest.fixture
def consented_history(
    patient, other_patient, clinician, clinic, model_version, private_storage, enqueued, make_image_bytes
):
    """Six cases: (patient, research opt-in, lab result, diagnosis)."""
    rows = [
        (patient, True, LabResult.Result.POSITIVE, None),  # mpox/
        (other_patient, True, LabResult.Result.NEGATIVE, FinalDiagnosis.Diagnosis.HERPES),  # non_mpox/genital_herpes/
        (other_patient, True, None, FinalDiagnosis.Diagnosis.SYPHILIS),  # non_mpox/syphilis/ (no PCR)
        (other_patient, False, LabResult.Result.POSITIVE, None),  # no research opt-in
        (patient, True, LabResult.Result.NOT_TESTED, None),  # no label
        (patient, True, None, None),  # nothing recorded
    ]
    photos = []
    for index, (owner, research, lab, diagnosis) in enumerate(rows):
        case, photo = book_past_case(patient=owner, clinic=clinic, days_ago=5, consent_research=research, seed=index)
        record_score(photo, model_version, 0.5, make_image_bytes(size=(64, 64)))
        record_ground_truth(
            case=case, entered_by=clinician, result=lab, result_date=timezone.localdate(), diagnosis=diagnosis
        ) if lab or diagnosis else None
        photos.append(photo)
    return photos


def read_rows(out):
    with open(out / "dataset.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_exports_only_consented_labelled_photos_in_the_ml_layout(
    consented_history, tmp_path, patient, other_patient, capsys
):
    out = tmp_path / "export"
    call_command("export_training_set", "--out", str(out), "--by", "clinician")
    assert "Exported 3 photos (1 mpox) of 2 patients" in capsys.readouterr().out

    rows = read_rows(out)
    folders = sorted(row["path"].rsplit("/", 1)[0] for row in rows)
    assert folders == ["mpox", "non_mpox/genital_herpes", "non_mpox/syphilis"]
    # `python -m ml train` reads the differential classes back from the folders (ml.diagnoses)
    assert sorted(class_of(row["path"]) for row in rows) == ["genital_herpes", "mpox", "syphilis"]
    assert [row["label_source"] for row in sorted(rows, key=lambda r: r["path"])] == ["lab", "lab", "diagnosis"]
    # Automatic boxes from the active model's prediction (20, 10, 120, 90), source "auto".
    assert {(row["x0"], row["y0"], row["x1"], row["y1"], row["box_source"]) for row in rows} == {
        ("20", "10", "120", "90", "auto")
    }
    patient_ids = {row["patient_id"] for row in rows}
    assert len(patient_ids) == 2 and all(len(pid) == 12 for pid in patient_ids)

    # Pseudonymous: no user names, emails, ids or booking references anywhere in the export.
    text = " ".join(value for row in rows for value in row.values()) + " ".join(
        str(path.relative_to(out)) for path in out.rglob("*")
    )
    identities = [
        patient.username,
        other_patient.username,
        patient.email,
        other_patient.email,
        *Appointment.objects.values_list("reference", flat=True),
    ]
    assert not [identity for identity in identities if identity in text]

    # The ml package reads it as a dataset: labels from the folders, patients from the CSV.
    samples = discover(out)
    assert sorted(sample.label for sample in samples) == [0, 0, 1]
    assert {sample.patient_id for sample in samples} == patient_ids
    assert all(Image.open(sample.path).size == (160, 120) for sample in samples)

    event = AuditEvent.objects.get(action="export_training_set")
    assert (
        event.actor.username == "clinician"
        and event.detail["photos"] == 3
        and event.detail["skipped_without_label"] == 1
    )


def test_withdrawn_consent_removes_photos_from_later_exports(consented_history, tmp_path):
    call_command("export_training_set", "--out", str(tmp_path / "first"))
    assert len(read_rows(tmp_path / "first")) == 3
    Appointment.objects.filter(case__photos=consented_history[1]).update(consent_research=False)
    call_command("export_training_set", "--out", str(tmp_path / "second"))
    rows = read_rows(tmp_path / "second")
    assert sorted(row["path"].rsplit("/", 1)[0] for row in rows) == ["mpox", "non_mpox/syphilis"]
    assert AuditEvent.objects.filter(action="export_training_set").count() == 2


def test_export_refuses_a_folder_that_is_not_empty(consented_history, tmp_path):
    (tmp_path / "old.jpg").write_bytes(b"x")
    with pytest.raises(CommandError, match="is not empty"):
        call_command("export_training_set", "--out", str(tmp_path))
    assert not AuditEvent.objects.filter(action="export_training_set").exists()


def test_patient_ids_are_stable_across_exports(consented_history, tmp_path):
    call_command("export_training_set", "--out", str(tmp_path / "a"))
    call_command("export_training_set", "--out", str(tmp_path / "b"))
    assert [r["patient_id"] for r in read_rows(tmp_path / "a")] == [r["patient_id"] for r in read_rows(tmp_path / "b")]


@pytest.mark.slow
def test_an_export_trains_a_challenger_that_runs_in_shadow(
    tmp_path, settings, patient, other_patient, clinician, clinic, private_storage, enqueued, make_image_bytes
):
    """The learning loop's path end to end (docs/learning-loop.md): export -> `python -m ml train` (tiny model, one epoch) ->
    `register_challenger` -> the new checkpoint scores the next photo in shadow."""
    from ml.research.cli import main as ml_main
    from registry import versions
    from tests.clinic_history import jpeg_upload
    from triage import analysis
    from triage.models import Prediction
    from triage.services import accept_photo

    settings.MODEL_DIR = tmp_path / "models"
    settings.MODEL_DIR.mkdir()
    ml.testing.make_random_checkpoint(
        settings.MODEL_DIR / "active.pt", arch="efficientnet_lite0", input_size=64, version="tiny-active"
    )
    (active,) = versions.register_checkpoints()
    for index in range(8):
        owner = (patient, other_patient)[index % 2]
        case, photo = book_past_case(patient=owner, clinic=clinic, days_ago=5, consent_research=True, seed=index)
        record_score(photo, active, 0.5, make_image_bytes(size=(64, 64)))
        record_ground_truth(
            case=case,
            entered_by=clinician,
            result_date=timezone.localdate(),
            result=LabResult.Result.POSITIVE if index < 4 else LabResult.Result.NEGATIVE,
            diagnosis=FinalDiagnosis.Diagnosis.MPOX if index < 4 else FinalDiagnosis.Diagnosis.WARTS,
        )
    export, checkpoint = tmp_path / "export", tmp_path / "challenger.pt"
    call_command("export_training_set", "--out", str(export))

    ml_main(
        [
            "train",
            "--data",
            str(export),
            "--arch",
            "efficientnet_lite0",
            "--init",
            "imagenet",
            "--input-size",
            "32",
            "--views",
            "1",
            "--epochs",
            "2",
            "--finetune-epochs",
            "0",
            "--val-fraction",
            "0",
            "--version",
            "clinic-1",
            "--out",
            str(checkpoint),
        ]
    )
    call_command("register_challenger", str(checkpoint))

    challenger = versions.challenger_model_version()
    assert challenger.version == "clinic-1"
    # the clinic's confirmed cases train a differential over the classes their diagnoses map to
    assert challenger.metadata["differential"]["classes"] == ["mpox", "genital_warts"]
    photo = accept_photo(
        case=book_past_case(patient=patient, clinic=clinic, days_ago=1, seed=20)[0],
        uploaded_by=patient,
        uploaded_file=jpeg_upload(21),
        body_site="genital",
    )
    analysis.analyse_photos([photo.pk])
    shadow = Prediction.objects.get(photo=photo, role=Prediction.Role.CHALLENGER)
    assert shadow.model_version.version == "clinic-1" and 0 <= shadow.probability <= 1
