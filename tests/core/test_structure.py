"""Structural rules the import contracts cannot see, checked on the source itself."""

import ast
import re
from pathlib import Path

import pytest

from portal.booking.models import Appointment
from triage.models import Case, Photo
from triage.photo_status import TransitionRefused, change_status

ROOT = Path(__file__).resolve().parents[2]


def _source_lines(*packages):
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                yield f"{path.relative_to(ROOT)}:{number}", line


def test_triage_and_model_operations_name_no_booking_table():
    """Where an appointment's clinic and time are kept is booking's to say (Appointment.PATHS and its
    clinic / starts_at / history_answers): triage and modelops name no slot, in a query or an attribute."""
    in_code, in_templates = re.compile(r"\bslot\b|slot__|__slot"), re.compile(r"\.slot\b|slot__")
    offenders = [
        where for where, line in _source_lines("triage", "modelops", "registry", "core") if in_code.search(line)
    ]
    offenders += [
        f"{path.relative_to(ROOT)}"
        for path in sorted((ROOT / "templates").rglob("*.html"))
        if "booking" not in path.parts and in_templates.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_case_paths_into_booking_come_from_the_appointment_model():
    assert Case.booking_path("clinic") == f"appointment__{Appointment.PATHS['clinic']}"
    assert Case.booking_path("starts_at", via="case__") == f"case__appointment__{Appointment.PATHS['starts_at']}"


PHOTO_STATUS_FIELDS = {"status", "status_reason"}


def _photo_status_writes(tree):
    """(line, what) of each place that writes a photo's status: `<photo>.status = …`, or `status=` in an
    `update(…)`, `create(…)` or `Photo(…)` call on photos. Names are judged by their text, as a reader would."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for element in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if (
                        isinstance(element, ast.Attribute)
                        and element.attr in PHOTO_STATUS_FIELDS
                        and "photo" in ast.unparse(element.value).lower()
                    ):
                        yield node.lineno, ast.unparse(element)
        elif isinstance(node, ast.Call) and any(keyword.arg in PHOTO_STATUS_FIELDS for keyword in node.keywords):
            function = ast.unparse(node.func)
            writes = (
                function.endswith((".update", ".create", ".update_or_create", ".get_or_create")) or function == "Photo"
            )
            if writes and "photo" in function.lower():
                yield node.lineno, function


def test_every_photo_status_write_goes_through_the_transition_function():
    """Only triage/photo_status.py writes Photo.status (its table says which changes are allowed)."""
    allowed = ROOT / "triage" / "photo_status.py"
    offenders = []
    for package in ("triage", "modelops", "registry", "core", "portal", "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts or path == allowed:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            offenders += [f"{path.relative_to(ROOT)}:{line} {what}" for line, what in _photo_status_writes(tree)]
    assert offenders == []


def test_the_scan_sees_a_bypassing_write():
    """The scan above catches each way of writing the status around the transition function."""
    bypasses = ast.parse(
        "photo.status = Photo.Status.ANALYSED\n"
        "Photo.objects.filter(pk=1).update(status=Photo.Status.FAILED)\n"
        "photos.update(status_reason='blurred')\n"
        "Photo(case=case, status=Photo.Status.ANALYSED)\n"
    )
    assert [line for line, _ in _photo_status_writes(bypasses)] == [1, 2, 3, 4]


def test_the_transition_table_refuses_what_it_does_not_list(photo):
    photo.status = Photo.Status.ANALYSED  # as loaded from the database
    with pytest.raises(TransitionRefused):
        change_status(photo, Photo.Status.NO_MODEL)
    assert change_status(Photo.objects.filter(pk=photo.pk), Photo.Status.NO_MODEL) == 0  # RECEIVED cannot either
    assert change_status(Photo.objects.filter(pk=photo.pk), Photo.Status.ANALYSING) == 1
    photo.refresh_from_db()
    assert photo.status == Photo.Status.ANALYSING and photo.status_reason == ""
