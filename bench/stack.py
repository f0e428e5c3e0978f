"""Upload-to-result latency against a running stack: migrate, register, gunicorn, a Celery worker.

Everything runs on loopback in a temporary directory; :meth:`Stack.stop` ends every process this
module started (by process group) and drops the throwaway PostgreSQL database, if one was made.
"""

import http.client
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.photos import jpeg_bytes
from bench.procinfo import children, cpu_seconds, memory_mb
from bench.worker import rss_figures

ROOT = Path(__file__).resolve().parent.parent
POLL_S = 0.025
START_TIMEOUT_S = 120
RESULT_TIMEOUT_S = 180
TASK_DONE = re.compile(r"analyse_photos_task\[[^\]]+\] succeeded in ([0-9.]+)s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_urls(server_url: str, name: str) -> tuple[str, str]:
    """(admin URL on the server's 'postgres' database, URL of the throwaway database ``name``)."""
    parts = urlsplit(server_url)
    return (urlunsplit(parts._replace(path="/postgres")), urlunsplit(parts._replace(path=f"/{name}")))


def _postgres(admin_url: str, sql: str) -> None:
    import psycopg2

    connection = psycopg2.connect(admin_url, connect_timeout=10)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


class Stack:
    """The portal's processes, run from ``var_dir`` with the settings already in os.environ."""

    def __init__(
        self,
        var_dir: Path,
        model_dir: Path,
        postgres_admin_url: str | None,
        database: str | None,
        web_workers: int = 1,
        web_threads: int = 1,
    ):
        self.var_dir, self.model_dir = var_dir, model_dir
        self.web_workers, self.web_threads = web_workers, web_threads
        self.postgres_admin_url, self.database = postgres_admin_url, database
        self.processes: dict[str, subprocess.Popen] = {}
        self.port = free_port()
        self.database_created = False

    def start(self) -> None:
        self.prepare()
        self.start_worker()
        self.start_web()

    def prepare(self) -> None:
        """The throwaway database (if PostgreSQL), migrated, with the model registered."""
        if self.postgres_admin_url:
            _postgres(self.postgres_admin_url, f'CREATE DATABASE "{self.database}"')
            self.database_created = True
        self._manage("migrate", "--noinput")
        self._manage("register_models", "--dir", str(self.model_dir))

    def start_web(self) -> None:
        """gunicorn on a free loopback port; returns once it accepts connections."""
        self._spawn(
            "web",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "portal.wsgi",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.web_workers),
                "--threads",
                str(self.web_threads),
                "--timeout",
                "60",
            ],
        )
        self._wait_for_port()

    def start_worker(
        self, name: str = "worker", concurrency: int = 1, torch_threads: int | None = None, netns: str | None = None
    ) -> str:
        """A Celery prefork worker on both queues, started inside network namespace ``netns`` if given;
        returns its hostname once it is ready and each pool process has loaded the model."""
        hostname = f"bench-{os.getpid()}-{name}@{netns or '127.0.0.1'}"
        # INFO: the readiness and 'succeeded in' lines this module reads from the worker's log.
        worker_env = {**os.environ, "CELERY_WORKER_CONCURRENCY": str(concurrency), "LOG_LEVEL": "INFO"}
        if torch_threads is not None:
            worker_env["WORKER_TORCH_THREADS"] = str(torch_threads)
        self._spawn(
            name,
            [
                *(["ip", "netns", "exec", netns] if netns else []),
                sys.executable,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "--concurrency",
                str(concurrency),
                "--pool",
                "prefork",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--queues",
                "inference,default",
                "--hostname",
                hostname,
            ],
            env=worker_env,
        )
        self._wait_for_log(name, " ready.")
        self._wait_for_log(name, "Worker process ready with model", count=concurrency)
        return hostname

    def stop_worker(self, name: str = "worker") -> None:
        _stop_group(self.processes.pop(name))

    def stop(self) -> None:
        for process in reversed(self.processes.values()):
            _stop_group(process)
        self.processes.clear()
        if self.database_created:
            from django.db import connections

            connections.close_all()
            _postgres(self.postgres_admin_url, f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            self.database_created = False

    def task_seconds(self, name: str = "worker") -> list[float]:
        """Run times of the analysis tasks, from the worker's 'succeeded in' log lines."""
        return [float(t) for t in TASK_DONE.findall(self._log(name))]

    def worker_child_memory(self, name: str = "worker") -> dict[str, float]:
        """RSS of the (largest) prefork pool child of the Celery worker."""
        pool = children(self.processes[name].pid)
        if not pool:
            raise RuntimeError("Celery worker has no pool child")
        return max((memory_mb(pid) for pid in pool), key=lambda m: m["rss_mb"])

    def worker_cpu_seconds(self, name: str = "worker") -> float:
        """CPU seconds a Celery worker has used so far: its main process and every pool child."""
        pid = self.processes[name].pid
        return sum(cpu_seconds(process) for process in (pid, *children(pid)))

    def worker_total_rss_mb(self, name: str = "worker") -> float:
        """Resident MB of a Celery worker: its main process and every pool child together."""
        pid = self.processes[name].pid
        return sum(memory_mb(process)["rss_mb"] for process in (pid, *children(pid)))

    def _manage(self, *args: str) -> None:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, timeout=300, capture_output=True, text=True
        )
        if result.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{result.stderr[-2000:]}")

    def _spawn(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.var_dir / f"{name}.log", "wb")
        with log:
            process = subprocess.Popen(
                argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self.processes[name] = process
        return process

    def _log(self, name: str) -> str:
        return (self.var_dir / f"{name}.log").read_text(errors="replace")

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited ({process.returncode}):\n{self._log(name)[-2000:]}")

    def _wait_for_port(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"gunicorn did not start listening:\n{self._log('web')[-2000:]}")

    def _wait_for_log(self, name: str, text: str, count: int = 1) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while self._log(name).count(text) < count:
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not log {text!r}:\n{self._log(name)[-2000:]}")
            time.sleep(0.2)


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the process group started for ``process``; SIGKILL it after 20 s."""
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def new_patient_session() -> dict:
    """A patient with a booked appointment and a signed-in session, made in this process's database:
    {"reference", "cookie", "csrf"} for HTTP requests as that patient."""
    from django.contrib.auth.models import User
    from django.test import Client
    from django.utils import timezone

    from portal.booking.models import Clinic, Service, Slot
    from portal.booking.services import book_appointment

    user = User.objects.create_user(f"bench-{uuid.uuid4().hex[:8]}", f"bench-{uuid.uuid4().hex[:8]}@example.org")
    slot = Slot.objects.create(
        clinic=Clinic.objects.create(name="Bench clinic"),
        service=Service.objects.get_or_create(name="Bench service")[0],
        starts_at=timezone.now() + timezone.timedelta(days=2),
    )
    appointment = book_appointment(patient=user, slot=slot, consent_care=True, questionnaire={"notes": "bench"})
    client = Client()
    client.force_login(user)  # a real session row, read by gunicorn like a login form's
    csrf = uuid.uuid4().hex  # 32 characters: an unmasked CSRF secret Django accepts
    return {
        "reference": appointment.reference,
        "csrf": csrf,
        "cookie": f"sessionid={client.cookies['sessionid'].value}; csrftoken={csrf}",
    }


class Patient:
    """A signed-in patient with one booked appointment, uploading through the HTTP view."""

    def __init__(self, port: int, session: dict | None = None):
        session = session or new_patient_session()
        self.reference, self.cookie, self.csrf = session["reference"], session["cookie"], session["csrf"]
        self.port = port
        self.last_photo_id = 0

    def post(self, blobs: list[bytes], timeout: float = 60) -> tuple[int, bytes]:
        """POSTs photos in one upload; returns (HTTP status, body)."""
        body, content_type = _multipart(
            {"body_site": "trunk", "consent_confirm": "on", "csrfmiddlewaretoken": self.csrf}, "photos", blobs
        )
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(
                "POST", f"/appointments/{self.reference}/", body, {"Content-Type": content_type, "Cookie": self.cookie}
            )
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def get(self, timeout: float = 60) -> tuple[int, bytes]:
        """GETs the appointment page; returns (HTTP status, body)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", f"/appointments/{self.reference}/", headers={"Cookie": self.cookie})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def upload(self, data: bytes) -> tuple[int, float]:
        """POSTs one photo; returns (photo id, monotonic time the response arrived)."""
        from triage.models import Photo

        status, answer = self.post([data])
        received = time.monotonic()
        if status != 302:
            raise RuntimeError(f"upload answered {status}: {answer[:300]!r}")
        photo = (
            Photo.objects.filter(case__appointment__reference=self.reference, pk__gt=self.last_photo_id)
            .order_by("pk")
            .first()
        )
        if photo is None:
            raise RuntimeError("upload answered 302 but stored no photo")
        self.last_photo_id = photo.pk
        return photo.pk, received


def _multipart(fields: dict[str, str], file_field: str, blobs: list[bytes]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    for number, data in enumerate(blobs):
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
            f'filename="photo-{number}.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _finished(photo_ids) -> dict[int, bool]:
    """Photos among ``photo_ids`` that are done: True with a Prediction, False if rejected/failed."""
    from triage.models import Photo, Prediction

    done = {
        pk: True for pk in Prediction.objects.active().filter(photo_id__in=photo_ids).values_list("photo_id", flat=True)
    }
    failed = Photo.objects.filter(pk__in=photo_ids, status__in=[Photo.Status.REJECTED, Photo.Status.FAILED])
    done.update({pk: False for pk in failed.values_list("pk", flat=True) if pk not in done})
    return done


def steady_uploads(patient: Patient, blobs: list[bytes], interval_s: float) -> dict:
    """Uploads one photo every ``interval_s``; latency = upload response -> Prediction row visible."""
    pending, latencies, failures = {}, [], 0
    start = time.monotonic()
    deadline = start + interval_s * len(blobs) + RESULT_TIMEOUT_S
    sent = 0
    while (sent < len(blobs) or pending) and time.monotonic() < deadline:
        if sent < len(blobs) and time.monotonic() >= start + sent * interval_s:
            photo_id, received = patient.upload(blobs[sent])
            pending[photo_id] = received
            sent += 1
        for photo_id, ok in _finished(list(pending)).items():
            seen = time.monotonic()
            received = pending.pop(photo_id)
            if ok:
                latencies.append((seen - received) * 1000)
            else:
                failures += 1
        time.sleep(POLL_S)
    return {"latencies_ms": latencies, "failed": failures, "timed_out": len(pending) + len(blobs) - sent}


def upload_figures(stack: Stack, photos: list, count: int, interval_s: float, report) -> None:
    """Warm-up upload, then ``count`` uploads at a steady rate; adds latency and worker RSS figures."""
    from triage.models import Prediction

    patient = Patient(stack.port)
    blobs = [jpeg_bytes(photo) for photo in photos]
    warm = steady_uploads(patient, blobs[:1], interval_s)
    if not warm["latencies_ms"]:
        raise RuntimeError(f"warm-up upload got no result: {warm}")
    run = steady_uploads(patient, [blobs[i % len(blobs)] for i in range(count)], interval_s)
    latencies = sorted(run["latencies_ms"])
    note = f"{len(latencies)} ok, {run['failed']} failed, {run['timed_out']} timed out, 1 every {interval_s:g}s"
    report.add("upload_result_p50_ms", "upload -> result latency p50", _percentile(latencies, 50), "ms", note=note)
    report.add("upload_result_p95_ms", "upload -> result latency p95", _percentile(latencies, 95), "ms")
    report.add("upload_result_count", "  uploads measured", float(len(latencies)), "")
    _worker_figures(
        stack, Prediction.objects.active().filter(photo__case__appointment__reference=patient.reference), report
    )
    rss_figures(stack.worker_child_memory(), "Celery pool child", report)


def _worker_figures(stack: Stack, predictions, report) -> None:
    """What the real worker recorded: stage medians, and its whole task time against ml's share."""
    timings = [p.timings_ms for p in predictions]
    medians = {
        key: statistics.median(t[key] for t in timings)
        for key in ("read", "roi", "model", "heatmap", "render", "total")
    }
    for key, value in medians.items():
        report.add(
            f"stack_worker_{key}_ms",
            f"  in the Celery worker: {key} (median)",
            value,
            "ms",
            note="Prediction.timings_ms",
        )
    seconds = stack.task_seconds()
    task_ms = statistics.median(seconds) * 1000 if seconds else None
    report.add("stack_task_ms", "  Celery task time (median)", task_ms, "ms", note="worker log 'succeeded in'")
    report.add(
        "stack_outside_ratio",
        "  task time outside ml / ml time (real worker)",
        None if task_ms is None else (task_ms - medians["total"]) / medians["total"],
        "x",
        0.5,
    )


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return None
    rank = max(1, -(-len(values) * q // 100))
    return values[int(rank) - 1]
