"""Structural rules the import contracts cannot see, checked on the source itself."""
import re
from pathlib import Path

from portal.booking.models import Appointment
from triage.models import Case

ROOT = Path(__file__).resolve().parent.parent


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
    offenders = [where for where, line in _source_lines("triage", "modelops", "registry", "core") if in_code.search(line)]
    offenders += [f"{path.relative_to(ROOT)}" for path in sorted((ROOT / "templates").rglob("*.html"))
                  if "booking" not in path.parts and in_templates.search(path.read_text(encoding="utf-8"))]
    assert offenders == []


def test_case_paths_into_booking_come_from_the_appointment_model():
    assert Case.booking_path("clinic") == f"appointment__{Appointment.PATHS['clinic']}"
    assert Case.booking_path("starts_at", via="case__") == f"case__appointment__{Appointment.PATHS['starts_at']}"
