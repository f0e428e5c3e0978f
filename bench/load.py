"""``python -m bench load``: many uploads at once against a running stack (gunicorn + one Celery
worker on PostgreSQL and Redis), then waits for the worker to drain the queue.

Prints: accepted (HTTP 302), HTTP errors (any other answer, or none), upload latency p50/p95,
analysed (photos with a prediction), lost (accepted but never stored, or never settled before the
drain timeout), duplicated (photos with more than one prediction), orphan files, originals left
(uploads as sent, with their metadata, that the worker did not delete), and drain time (last upload
answered -> every stored photo settled); with --no-drain, the upload figures only.
"""

import argparse
import math
import os
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.stack import _percentile

UPLOADS_PER_PATIENT = 25  # under PHOTO_MAX_PER_APPOINTMENT
PHOTO_SIZE = (640, 480)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m bench load", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--uploads", type=int, default=500, help="one-photo uploads in all (default 500)")
    parser.add_argument("--concurrency", type=int, default=16, help="uploads in flight at once (default 16)")
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
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--web-threads", type=int, default=4, help="threads per gunicorn worker (default 4)")
    parser.add_argument(
        "--phone-photos",
        action="store_true",
        help=f"12 MP phone-camera JPEGs of about 1.35 MB (issue 26) instead of {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]}",
    )
    parser.add_argument("--drain-timeout", type=float, default=1800, help="seconds to wait for the worker")
    parser.add_argument(
        "--no-drain",
        action="store_true",
        help="stop once every upload is answered: upload figures only (the worker still runs meanwhile)",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    import django

    from bench.report import Report
    from bench.run import ROOT, _terminate, configure_environment

    args = parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _terminate)
    var_dir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    report = Report()
    stack = None
    try:
        postgres_admin_url = configure_environment(var_dir, args)
        django.setup()
        import redis
        from django.db import connections

        from bench.stack import Stack

        redis.Redis.from_url(args.broker_url).flushdb()  # a queue of this run's own
        checkpoint = args.model or sorted((ROOT / "ml" / "checkpoints").glob("*.pt"))[0]
        model_dir = var_dir / "models"
        model_dir.mkdir()
        (model_dir / checkpoint.name).symlink_to(checkpoint.resolve())
        stack = Stack(
            var_dir,
            model_dir,
            postgres_admin_url,
            f"bench_{os.getpid()}",
            web_workers=args.web_workers,
            web_threads=args.web_threads,
        )
        stack.start()
        report.info.update(
            uploads=args.uploads,
            concurrency=args.concurrency,
            model=str(checkpoint),
            gunicorn=f"{args.web_workers} workers x {args.web_threads} threads",
            worker="1 Celery worker, concurrency 1",
            cpus=os.cpu_count(),
            load_average_start=os.getloadavg(),
        )
        run_load(stack, args, report)
        report.info["load_average_end"] = os.getloadavg()
        connections.close_all()
    finally:
        if stack is not None:
            stack.stop()
        shutil.rmtree(var_dir, ignore_errors=True)
        print(report.table())
    return 0


def run_load(stack, args, report) -> None:
    from django.conf import settings

    from bench.photos import jpeg_bytes, make_photo, phone_jpeg
    from bench.stack import Patient
    from triage.models import Photo, Prediction

    patients = [Patient(stack.port) for _ in range(math.ceil(args.uploads / UPLOADS_PER_PATIENT))]
    if args.phone_photos:
        blobs = [phone_jpeg(seed) for seed in range(8)]
    else:
        blobs = [jpeg_bytes(make_photo(seed)[0].resize(PHOTO_SIZE)) for seed in range(8)]
    report.info["photo_bytes_mean"] = sum(map(len, blobs)) // len(blobs)
    statuses, latencies_ms, lock = Counter(), [], threading.Lock()

    def upload(number):
        started = time.monotonic()
        try:
            status, _ = patients[number % len(patients)].post([blobs[number % len(blobs)]])
        except OSError as error:
            status = type(error).__name__
        with lock:
            statuses[status] += 1
            latencies_ms.append((time.monotonic() - started) * 1000)

    started = time.monotonic()
    with ThreadPoolExecutor(args.concurrency) as pool:
        list(pool.map(upload, range(args.uploads)))
    uploads_done = time.monotonic()

    accepted = statuses[302]
    latencies_ms.sort()
    errors = {str(status): count for status, count in statuses.items() if status != 302}
    report.add("load_accepted", "uploads accepted (HTTP 302)", accepted, "", note=f"of {args.uploads}")
    report.add(
        "load_http_errors",
        "HTTP errors (any other answer)",
        sum(errors.values()),
        "",
        0,
        note=", ".join(f"{status}: {count}" for status, count in errors.items()) or "none",
    )
    report.add("load_upload_p50_ms", "upload latency p50", _percentile(latencies_ms, 50), "ms")
    report.add("load_upload_p95_ms", "upload latency p95", _percentile(latencies_ms, 95), "ms")
    report.add("load_upload_s", "time to send every upload", uploads_done - started, "s")
    if args.no_drain:
        return

    ours = Photo.objects.filter(case__appointment__reference__in=[patient.reference for patient in patients])
    deadline = uploads_done + args.drain_timeout
    while ours.filter(status__in=Photo.WAITING_STATUSES).exists() and time.monotonic() < deadline:
        time.sleep(0.25)
    drained = time.monotonic()

    stored = ours.count()
    unsettled = ours.filter(status__in=Photo.WAITING_STATUSES).count()
    per_photo = Counter(Prediction.objects.active().filter(photo__in=ours).values_list("photo_id", flat=True))
    failed = ours.filter(status__in=Photo.PROBLEM_STATUSES).count()
    media_root = Path(settings.PRIVATE_MEDIA_ROOT)
    stored_files = {str(path.relative_to(media_root)) for path in (media_root / "photos").rglob("*") if path.is_file()}
    row_files = set(Photo.objects.exclude(image="").values_list("image", flat=True))
    originals_left = [path for path in (media_root / "originals").rglob("*") if path.is_file()]

    report.add(
        "load_analysed",
        "photos analysed (a prediction each)",
        len(per_photo),
        "",
        note=f"{failed} refused by the quality check or failed",
    )
    report.add(
        "load_lost", "lost (accepted, not stored or never settled)", max(accepted - stored, 0) + unsettled, "", 0
    )
    report.add(
        "load_duplicated",
        "duplicated (more than one prediction)",
        sum(1 for count in per_photo.values() if count > 1),
        "",
        0,
    )
    report.add(
        "load_orphans",
        "files without a row + rows without a file",
        len(stored_files - row_files) + len(row_files - stored_files),
        "",
        0,
    )
    report.add("load_originals_left", "originals not deleted once settled (metadata kept)", len(originals_left), "", 0)
    report.add("load_drain_s", "drain time (last upload answered -> all settled)", drained - uploads_done, "s")
    report.add("load_throughput", "photos analysed per second (whole run)", len(per_photo) / (drained - started), "/s")
