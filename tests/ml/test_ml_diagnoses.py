"""The one table from final diagnoses to differential classes: every diagnosis mapped, and an exported
folder reads back as the class it was written for."""

import pytest

from ml.diagnoses import DIFFERENTIAL_CLASS, MPOX, class_of, training_folder
from ml.research.sources import CLASSES
from triage.models import FinalDiagnosis


def test_every_final_diagnosis_has_an_entry():
    assert set(DIFFERENTIAL_CLASS) == set(FinalDiagnosis.Diagnosis.values)


def test_the_public_classes_the_clinic_can_diagnose_share_their_names():
    mapped = {cls for cls in DIFFERENTIAL_CLASS.values() if cls}
    assert set(CLASSES) - mapped == {"chickenpox_or_measles"}  # no clinic diagnosis for it


@pytest.mark.parametrize("diagnosis", [*FinalDiagnosis.Diagnosis.values, None])
def test_export_folder_round_trip(diagnosis):
    folder = training_folder(mpox=False, diagnosis=diagnosis)
    expected = DIFFERENTIAL_CLASS.get(diagnosis or "")
    assert class_of(f"{folder}/p_1.jpg") == (expected if expected != MPOX else None)
    assert folder.startswith("non_mpox/")


def test_a_positive_label_is_mpox_whatever_the_diagnosis():
    assert training_folder(mpox=True, diagnosis="herpes") == "mpox"
    assert class_of("mpox/p_1.jpg") == MPOX
