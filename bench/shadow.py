"""Cost of a shadow challenger: the active model's result latency in the worker's analysis task,
with and without a registered challenger, timed round-robin in one run (the run without is the
baseline).

Run as ``python -m bench.shadow CHECKPOINT THREADS REPS WARMUP`` in a fresh interpreter whose
PORTAL_VAR_DIR is an empty folder: it migrates a SQLite database there, registers the checkpoint
as the active model and again (another version, same weights) as the challenger, uploads photos
through `triage.services.accept_photo` and calls `triage.analysis.analyse_photos`, what the Celery
task runs. Prints JSON with the per-arm medians (ms).
"""

import itertools
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ARMS = ("without", "with")


def main(checkpoint: str, threads: int, reps: int, warmup: int) -> dict:
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command
    from django.utils import timezone

    from bench.photos import jpeg_bytes, make_photos
    from portal.booking.models import Clinic, Service, Slot
    from portal.booking.services import book_appointment
    from registry import versions
    from registry.models import ModelVersion
    from triage import analysis
    from triage.services import accept_photo

    versions.runtime().configure_threads(threads)
    call_command("migrate", verbosity=0)
    active, _ = versions.register_checkpoint(checkpoint)
    versions.activate_model_version(active)
    challenger = ModelVersion.objects.create(
        version=f"{active.version}-shadow",
        architecture=active.architecture,
        checkpoint_path=active.checkpoint_path,
        threshold=active.threshold,
        metadata=active.metadata,
    )
    patient = User.objects.create_user("bench-shadow")
    clinic, service = Clinic.objects.create(name="Bench clinic"), Service.objects.create(name="Bench service")
    blobs = [jpeg_bytes(image) for image in make_photos(4)[0]]

    stamps, minutes = {}, itertools.count()
    run_challenger = analysis.run_challenger_in_shadow

    def stamped_challenger(*args, **kwargs):
        """Entered once the active results are stored and committed; left when the shadow is done."""
        stamps["active_stored"] = time.perf_counter()
        result = run_challenger(*args, **kwargs)
        stamps["shadow_done"] = time.perf_counter()
        return result

    analysis.run_challenger_in_shadow = stamped_challenger

    def one_task(arm, index):
        if arm == "with":
            versions.make_challenger(challenger)
        else:
            ModelVersion.objects.filter(pk=challenger.pk).update(is_challenger=False)
        slot = Slot.objects.create(
            clinic=clinic, service=service, starts_at=timezone.now() + timezone.timedelta(days=2, minutes=next(minutes))
        )
        case = book_appointment(patient=patient, slot=slot, consent_care=True, questionnaire={}).case
        upload = SimpleUploadedFile(f"bench{index}.jpg", blobs[index % len(blobs)], "image/jpeg")
        photo = accept_photo(case=case, uploaded_by=patient, uploaded_file=upload, body_site="hands")
        started = time.perf_counter()
        analysis.analyse_photos([photo.pk])
        finished = time.perf_counter()
        return {
            "active_result": (stamps["active_stored"] - started) * 1000,
            "shadow": (stamps["shadow_done"] - stamps["active_stored"]) * 1000,
            "task": (finished - started) * 1000,
        }

    for index in range(warmup):
        for arm in ARMS:
            one_task(arm, index)
    samples = {arm: [] for arm in ARMS}
    for index in range(reps):
        for arm in ARMS if index % 2 == 0 else ARMS[::-1]:
            samples[arm].append(one_task(arm, warmup + index))
    return {
        arm: {key: statistics.median(run[key] for run in runs) for key in ("active_result", "shadow", "task")}
        for arm, runs in samples.items()
    }


def measure(checkpoint, threads: int, reps: int, warmup: int, var_dir: Path, report) -> dict:
    """Runs this module in a fresh interpreter on its own SQLite database; adds the figures."""
    import os

    folder = var_dir / "shadow"
    folder.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env["PORTAL_VAR_DIR"] = str(folder)
    result = subprocess.run(
        [sys.executable, "-m", "bench.shadow", str(checkpoint), str(threads), str(reps), str(warmup)],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
        env=env,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    without, with_ = figures["without"], figures["with"]
    report.add(
        "shadow_active_result_ms",
        "active result in the task, no challenger (baseline)",
        without["active_result"],
        "ms/photo",
    )
    report.add(
        "shadow_active_result_with_ms", "  the same with a challenger registered", with_["active_result"], "ms/photo"
    )
    report.add(
        "shadow_active_result_ratio",
        "  with / without challenger",
        with_["active_result"] / without["active_result"],
        "x",
    )
    report.add(
        "shadow_challenger_ms",
        "challenger in shadow, after the active result (its own time)",
        with_["shadow"],
        "ms/photo",
    )
    report.add(
        "shadow_active_delay_ratio",
        "  active result delay / challenger's own time",
        (with_["active_result"] - without["active_result"]) / with_["shadow"],
        "x",
        1.0,
    )
    report.add("shadow_task_ratio", "whole task with / without challenger", with_["task"] / without["task"], "x")
    return figures


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))))
