"""``python -m bench capacity``: throughput and cost as a clinic plans capacity.

1. Drain: a burst of ``--burst`` one-photo uploads is queued (HTTP POSTs to gunicorn while the
   Celery worker's inference consumer is paused), then the worker is let go and timed until every
   photo is settled: photos per second and drain time, for each ``--workers`` setting PxT (P prefork
   pool processes, T torch threads each), on PostgreSQL + Redis; with the worker's resident memory.
2. Cost per photo at 1, 4, 12 and 24 MP: decode + model + overlay + encode, the worker's path for
   one photo, in this process with one torch thread (so ms are core-milliseconds).
3. Cost per appointment with 1-10 photos: one upload of N photos is one Celery task; its run time in
   the real worker (one process, one thread), per appointment and per photo.
4. What a clinic needs per 1,000 uploads a day, derived from 1 and 3 (see ``derive``).
"""

import argparse
import math
import os
import shutil
import signal
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.stack import Patient, _percentile
from bench.worker import MEGAPIXEL_SIZES, megapixel_costs

UPLOADS_PER_PATIENT = 25  # under PHOTO_MAX_PER_APPOINTMENT
UPLOAD_THREADS = 4
WORKING_DAY_H = 10  # a clinic's upload day, for the average load
HEADROOM = 2.0  # run the peak hour at half the cores' capacity


def workers_setting(text: str) -> list[tuple[int, int]]:
    """'1x1,2x1' -> [(1, 1), (2, 1)]: (pool processes, torch threads per process)."""
    return [tuple(int(part) for part in item.split("x")) for item in text.split(",")]


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m bench capacity", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--burst", type=int, help="queued uploads per drain (default 100, quick 4)")
    parser.add_argument(
        "--workers",
        type=workers_setting,
        help="pool processes x torch threads to drain with (default 1x1,1x2,2x1,2x2; quick 1x1,2x1)",
    )
    parser.add_argument(
        "--burst-megapixels",
        type=int,
        choices=sorted(MEGAPIXEL_SIZES),
        default=12,
        help="size of the burst's photos (default 12: a phone camera)",
    )
    parser.add_argument("--appointment-sizes", help="photos per appointment, e.g. 1,2,5,10 (default 1..10, quick 1,3)")
    parser.add_argument("--reps", type=int, help="timed photos per size for the cost per MP (default 5, quick 1)")
    parser.add_argument(
        "--uploads-per-day", default="1000,5000,20000", help="daily volumes to size for (default 1000,5000,20000)"
    )
    parser.add_argument(
        "--peak-hour-share",
        type=float,
        default=0.25,
        help="share of a day's uploads that arrive in its busiest hour (default 0.25)",
    )
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL server; a throwaway database is made on it and dropped",
    )
    parser.add_argument(
        "--broker-url",
        default="redis://127.0.0.1:6379/9",
        help="Redis broker; this database is emptied first (a queue of the run's own)",
    )
    parser.add_argument("--model", type=Path, help="checkpoint (default: first ml/checkpoints/*.pt)")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--quick", action="store_true", help="tiny counts (smoke test)")
    parser.add_argument("--skip-stack", action="store_true", help="only the in-process cost per MP")
    args = parser.parse_args(argv)
    args.burst = args.burst or (4 if args.quick else 100)
    args.workers = args.workers or ([(1, 1), (2, 1)] if args.quick else [(1, 1), (1, 2), (2, 1), (2, 2)])
    sizes = args.appointment_sizes or ("1,3" if args.quick else ",".join(map(str, range(1, 11))))
    args.appointment_sizes = [int(size) for size in sizes.split(",")]
    args.reps = args.reps or (1 if args.quick else 5)
    args.uploads_per_day = [int(count) for count in args.uploads_per_day.split(",")]
    return args


def main(argv=None) -> int:
    import django

    from bench.report import Report
    from bench.run import _terminate, configure_environment

    args = parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _terminate)
    var_dir = Path(tempfile.mkdtemp(prefix="bench-capacity-"))
    report = Report()
    stack = None
    try:
        postgres_admin_url = configure_environment(var_dir, args)
        os.environ["EMAIL_URL"] = "memorymail://"  # booking emails of the made-up patients: not printed
        django.setup()
        checkpoint = _checkpoint(args)
        report.info.update(
            command=f"python -m bench capacity {' '.join(argv or [])}".strip(),
            model=str(checkpoint),
            cpus=os.cpu_count(),
            load_average_start=os.getloadavg(),
        )
        import ml

        megapixel_costs(ml.load(checkpoint), args.reps, report)
        if not args.skip_stack:
            stack = _stack(var_dir, checkpoint, postgres_admin_url, args)
            drains = {
                setting: drain(stack, setting, args.burst, args.burst_megapixels, report) for setting in args.workers
            }
            appointment_costs(stack, args.appointment_sizes, report)
            derive(drains, args, report)
        report.info["load_average_end"] = os.getloadavg()
    finally:
        if stack is not None:
            from django.db import connections

            connections.close_all()
            stack.stop()
        shutil.rmtree(var_dir, ignore_errors=True)
        print(report.table())
        if args.json:
            report.write_json(args.json)
    return 0


def _checkpoint(args) -> Path:
    from bench.run import ROOT

    return args.model or sorted((ROOT / "ml" / "checkpoints").glob("*.pt"))[0]


def _stack(var_dir: Path, checkpoint: Path, postgres_admin_url, args):
    """A prepared stack (database migrated, model registered) with gunicorn running and no worker."""
    import redis

    from bench.stack import Stack

    if not args.broker_url.startswith("redis"):
        raise SystemExit("--broker-url must be Redis: pausing a worker's consumer needs broadcast control")
    redis.Redis.from_url(args.broker_url).flushdb()  # a queue of this run's own
    model_dir = var_dir / "models"
    model_dir.mkdir()
    (model_dir / checkpoint.name).symlink_to(checkpoint.resolve())
    stack = Stack(var_dir, model_dir, postgres_admin_url, f"bench_{os.getpid()}", web_workers=2, web_threads=2)
    stack.prepare()
    stack.start_web()
    return stack


def queue_burst(stack, hostnames: list[str], count: int, megapixels: int) -> list[int]:
    """Pauses the workers' inference consumers, uploads ``count`` one-photo appointments over HTTP
    (they queue in Redis) and returns the photo ids; the caller resumes with :func:`resume`."""
    from bench.photos import jpeg_bytes, make_photo
    from portal.celery import app
    from triage.models import Photo

    _control(app.control.cancel_consumer, hostnames)
    patients = [Patient(stack.port) for _ in range(math.ceil(count / UPLOADS_PER_PATIENT))]
    blobs = [jpeg_bytes(make_photo(seed)[0].resize(MEGAPIXEL_SIZES[megapixels])) for seed in range(4)]
    refused, lock = [], threading.Lock()

    def upload(number):
        status, _ = patients[number % len(patients)].post([blobs[number % len(blobs)]])
        if status != 302:
            with lock:
                refused.append(status)

    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        list(pool.map(upload, range(count)))
    if refused:
        raise RuntimeError(f"{len(refused)} uploads refused: {refused[:5]}")
    return list(
        Photo.objects.filter(case__appointment__reference__in=[p.reference for p in patients]).values_list(
            "pk", flat=True
        )
    )


def resume(hostnames: list[str]) -> None:
    from portal.celery import app

    _control(app.control.add_consumer, hostnames)


def _control(command, hostnames: list[str]) -> None:
    from django.conf import settings

    replies = command(settings.INFERENCE_QUEUE, destination=hostnames, reply=True, timeout=30)
    answered = {name for reply in replies for name in reply}
    if answered != set(hostnames):
        raise RuntimeError(f"{command.__name__}: no answer from {set(hostnames) - answered}")


def wait_settled(photo_ids: list[int], timeout_s: float) -> float:
    """Polls until no photo of ``photo_ids`` is waiting; returns the monotonic time it saw that."""
    from triage.models import Photo

    deadline = time.monotonic() + timeout_s
    waiting = Photo.objects.filter(pk__in=photo_ids, status__in=Photo.WAITING_STATUSES)
    while waiting.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{waiting.count()} of {len(photo_ids)} photos still waiting after {timeout_s:.0f} s")
        time.sleep(0.1)
    return time.monotonic()


def outcome(photo_ids: list[int]) -> dict:
    """How the photos settled: with a result (of which refused by the quality check, with the
    reasons), failed, still waiting; analysed twice; photos per worker hostname."""
    from collections import Counter

    from triage.models import Photo, Prediction

    per_photo = Counter(Prediction.objects.filter(photo_id__in=photo_ids).values_list("photo_id", flat=True))
    photos = Photo.objects.filter(pk__in=photo_ids)
    refused = photos.filter(status=Photo.Status.REJECTED)
    return {
        "analysed": len(per_photo),
        "refused": refused.count(),
        "reasons": dict(Counter(refused.values_list("status_reason", flat=True))),
        "failed": photos.filter(status=Photo.Status.FAILED).count(),
        "waiting": photos.filter(status__in=Photo.WAITING_STATUSES).count(),
        "twice": sum(1 for count in per_photo.values() if count > 1) + photos.filter(attempts__gt=1).count(),
        "by_worker": Counter(photos.values_list("analysis_worker", flat=True)),
    }


def describe(result: dict) -> str:
    """'20 analysed (20 refused by the quality check: blurred 20), 0 failed, 0 twice'."""
    reasons = ", ".join(f"{reason} {count}" for reason, count in result["reasons"].items())
    refused = f" ({result['refused']} refused by the quality check: {reasons})" if result["refused"] else ""
    return f"{result['analysed']} analysed{refused}, {result['failed']} failed, {result['twice']} twice"


def drain(stack, setting: tuple[int, int], burst: int, megapixels: int, report) -> dict:
    """Time for one worker with ``setting`` (processes, threads) to drain a queued burst."""
    processes, threads = setting
    name = f"{processes}x{threads}"
    hostname = stack.start_worker(name, concurrency=processes, torch_threads=threads)
    try:
        photo_ids = queue_burst(stack, [hostname], burst, megapixels)
        cpu_before = stack.worker_cpu_seconds(name)
        started = time.monotonic()
        resume([hostname])
        drain_s = wait_settled(photo_ids, timeout_s=600 + 60 * burst) - started
        cpu_s = stack.worker_cpu_seconds(name) - cpu_before
        rss_mb = stack.worker_total_rss_mb(name)
        child_mb = stack.worker_child_memory(name)["rss_mb"]
        task_ms = [s * 1000 for s in stack.task_seconds(name)]
    finally:
        stack.stop_worker(name)
    result = outcome(photo_ids)
    cores = min(processes * threads, os.cpu_count() or 1)
    figures = {
        "drain_s": drain_s,
        "photos_per_s": result["analysed"] / drain_s,
        "processes": processes,
        "threads": threads,
        "core_s_per_photo": cores * drain_s / burst,
        "cpu_s_per_photo": cpu_s / burst,
        "rss_mb": rss_mb,
        "child_rss_mb": child_mb,
    }
    note = f"{burst} x {megapixels} MP; {describe(result)}; task p50 {_percentile(sorted(task_ms), 50) or 0:.0f} ms"
    report.add(
        f"drain_{name}_s", f"drain {burst} queued uploads, {processes} proc x {threads} thread", drain_s, "s", note=note
    )
    report.add(f"drain_{name}_photos_per_s", "  photos per second", figures["photos_per_s"], "/s")
    report.add(
        f"drain_{name}_core_s_per_photo",
        "  core-seconds per photo",
        figures["core_s_per_photo"],
        "s",
        note=f"{cores} cores busy",
    )
    report.add(
        f"drain_{name}_cpu_s_per_photo",
        "  worker CPU seconds per photo (measured)",
        figures["cpu_s_per_photo"],
        "s",
        note="user + system time of the worker's processes, /proc",
    )
    report.add(f"drain_{name}_twice", "  photos analysed twice", float(result["twice"]), "", 0)
    report.add(
        f"drain_{name}_rss_mb",
        "  worker RSS, main + pool processes",
        rss_mb,
        "MB",
        note=f"largest pool process {child_mb:.0f} MB",
    )
    return figures


def appointment_costs(stack, sizes: list[int], report) -> None:
    """One appointment of N photos = one upload = one task, run by a 1-process, 1-thread worker."""
    from bench.photos import jpeg_bytes, make_photo
    from triage.models import Photo

    name = "appointments"
    stack.start_worker(name, concurrency=1, torch_threads=1)
    try:
        blobs = [jpeg_bytes(make_photo(seed)[0].resize(MEGAPIXEL_SIZES[12])) for seed in range(max(sizes))]
        for number, size in enumerate([1, *sizes]):  # the first, one photo, is a warm-up not counted
            patient = Patient(stack.port)
            done_before = len(stack.task_seconds(name))
            status, _ = patient.post(blobs[:size])
            if status != 302:
                raise RuntimeError(f"upload of {size} photos answered {status}")
            ids = list(
                Photo.objects.filter(case__appointment__reference=patient.reference).values_list("pk", flat=True)
            )
            wait_settled(ids, timeout_s=120 + 60 * size)
            # The log line follows the commit by a moment; the warm-up's too, or it would be counted
            # with the next appointment.
            deadline = time.monotonic() + 30
            while len(stack.task_seconds(name)) == done_before and time.monotonic() < deadline:
                time.sleep(0.1)
            if number == 0:
                continue
            tasks = stack.task_seconds(name)[done_before:]
            task_ms = sum(tasks) * 1000
            report.add(
                f"appointment_{size}_photos_ms",
                f"appointment of {size} x 12 MP photos: task time",
                task_ms,
                "ms",
                note=f"{len(tasks)} task(s), {len(ids)} photos",
            )
            report.add(f"appointment_{size}_per_photo_ms", "  per photo", task_ms / size, "ms")
    finally:
        stack.stop_worker(name)


def derive(drains: dict, args, report) -> None:
    """Cores and memory per daily upload volume, from the drains.

    CPU: the worker CPU seconds per photo of the setting that spends the fewest (decode, model,
    overlay, encode, storage and database calls, Celery; measured from /proc, so other load on the
    machine does not inflate it as it does wall time) x uploads. Cores: the busiest hour
    (``--peak-hour-share`` of the day) served at half the cores' capacity (HEADROOM), at least one.
    Memory: one worker, that setting's threads per process, as many pool processes as the cores
    need: its main process plus that many pool processes as measured.
    """
    cheapest = min(drains.values(), key=lambda figures: figures["cpu_s_per_photo"])
    fastest = max(drains.values(), key=lambda figures: figures["photos_per_s"])
    per_photo, threads = cheapest["cpu_s_per_photo"], cheapest["threads"]
    main_mb = cheapest["rss_mb"] - cheapest["processes"] * cheapest["child_rss_mb"]
    report.add(
        "capacity_cpu_s_per_photo",
        f"CPU seconds per photo (cheapest setting: {cheapest['processes']}x{threads})",
        per_photo,
        "s",
    )
    report.add(
        "capacity_burst_100_s",
        f"  a burst of 100 with the fastest ({fastest['processes']}x{fastest['threads']})",
        100 / fastest["photos_per_s"],
        "s",
    )
    for uploads in args.uploads_per_day:
        core_hours = uploads * per_photo / 3600
        peak_cores = HEADROOM * uploads * args.peak_hour_share * per_photo / 3600
        cores = max(1, math.ceil(peak_cores))
        processes = max(1, math.ceil(cores / threads))
        report.add(
            f"capacity_{uploads}_core_hours",
            f"{uploads} uploads/day: CPU core-hours a day",
            core_hours,
            "h",
            note=f"{core_hours / WORKING_DAY_H:.2f} cores busy over a {WORKING_DAY_H} h day",
        )
        report.add(
            f"capacity_{uploads}_cores",
            "  inference cores to provision",
            float(cores),
            "",
            note=f"peak hour {args.peak_hour_share:.0%} of the day needs {peak_cores:.2f} at 50% load",
        )
        report.add(
            f"capacity_{uploads}_memory_mb",
            "  inference worker memory",
            main_mb + processes * cheapest["child_rss_mb"],
            "MB",
            note=f"{processes} pool process(es) x {threads} thread(s)",
        )
