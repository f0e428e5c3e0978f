"""Fault injection on a stack of the test's own: a PostgreSQL cluster (initdb) and a redis-server on
spare ports, a real Celery worker (with beat) and gunicorn. For each fault — the worker's pool process
SIGKILLed, the whole worker SIGKILLed and restarted, Redis stopped 10 s, PostgreSQL restarted — every
photo ends analysed exactly once (or failed with a reason) within RECOVERY_BOUND_S, no request answers
500, and every stored file has its row and every row its file.

The recovery bounds are the portal's settings (docs/recovery.md gives the production
figures): the sweep (ANALYSIS_REQUEUE_INTERVAL_SECONDS) is made short here; the lease
(CELERY_TASK_TIME_LIMIT) is made longer than RECOVERY_BOUND_S, so that the whole-worker kill can only
be recovered in time by the restarted worker's start-up (tests/ops/test_ops.py covers the lease rule).
Never touches the shared PostgreSQL or Redis.
"""

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from glob import glob
from pathlib import Path

import psycopg2
import pytest

import ml.testing
from bench.photos import jpeg_bytes, make_photo
from bench.stack import Patient
from tests.ops.test_worker_e2e import answers_ping, free_port, pool_children
from tests.workers import stop_process_group, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SWEEP_S = 2  # ANALYSIS_REQUEUE_INTERVAL_SECONDS
RECOVERY_BOUND_S = 120  # every photo settled this long after the fault (a busy 2-core machine included)
LEASE_S = RECOVERY_BOUND_S + 30  # CELERY_TASK_TIME_LIMIT: longer, so it cannot be what recovers in time
START_TIMEOUT_S = 180
WORKER_NAME = "faults@localhost"


def postgres_bin(name):
    found = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def as_postgres_user(command):
    """initdb and postgres refuse to run as root: run them as the `postgres` system user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PostgresCluster:
    def __init__(self, root: Path):
        self.data, self.port = root / "data", free_port()
        self.log = root / "postgres.log"
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/portal"
        subprocess.run(
            as_postgres_user(
                [postgres_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
            ),
            check=True,
            capture_output=True,
        )

    def pg_ctl(self, *args):
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            as_postgres_user(
                [postgres_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", *args]
            ),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self):
        self.pg_ctl("start")

    def restart(self):
        self.pg_ctl("restart", "-m", "fast")

    def stop(self):
        self.pg_ctl("stop", "-m", "fast")

    def query(self, sql, *params):
        connection = psycopg2.connect(self.url, connect_timeout=5)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()
        finally:
            connection.close()


class RedisServer:
    """Persisted like production (appendonly), so a stop and start keeps the queue."""

    def __init__(self, root: Path):
        self.port, self.root = free_port(), root
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.root),
                "--appendonly",
                "yes",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(lambda: answers_ping(self.port), 20, "redis-server to start")

    def stop(self):
        stop_process_group(self.process)


class Stack:
    def __init__(self, root: Path, postgres: PostgresCluster, redis: RedisServer):
        self.root, self.postgres, self.redis = root, postgres, redis
        self.media = root / "private-media"
        self.port = free_port()
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "DEBUG": "0",
            "SECRET_KEY": "fault-test-" + "k" * 50,
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "0",
            "SECURE_COOKIES": "0",
            "EMAIL_URL": "consolemail://",
            "PORTAL_VAR_DIR": str(root / "var"),
            "PRIVATE_MEDIA_ROOT": str(self.media),
            "MODEL_DIR": str(root / "models"),
            "DATABASE_URL": postgres.url,
            "CELERY_BROKER_URL": redis.url,
            "CELERY_TASK_TIME_LIMIT": str(LEASE_S),
            "CELERY_TASK_SOFT_TIME_LIMIT": str(LEASE_S - 5),
            "ANALYSIS_REQUEUE_INTERVAL_SECONDS": str(SWEEP_S),
            "ANALYSIS_REQUEUE_AFTER_SECONDS": "60",
            "ANALYSIS_RETRY_BACKOFF_SECONDS": "2",
            "CELERY_WORKER_CONCURRENCY": "1",
            "LOG_LEVEL": "INFO",
        }
        self.processes = {}

    def manage(self, *args):
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    def spawn(self, name, command):
        log_path = self.root / f"{name}-{len(self.processes)}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        process.log_path = log_path
        self.processes[name] = process
        return process

    def start_worker(self):
        worker = self.spawn(
            "worker",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "--beat",
                "--schedule",
                str(self.root / "beat-schedule"),
                "--pool",
                "prefork",
                "--concurrency",
                "1",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                WORKER_NAME,
            ],
        )
        wait_for(lambda: b"ready." in worker.log_path.read_bytes(), START_TIMEOUT_S, "worker start", worker.log_path)
        return worker

    def start_web(self):
        web = self.spawn(
            "web",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "portal.wsgi",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "2",
                "--timeout",
                "60",
            ],
        )
        wait_for(lambda: b"Booting worker" in web.log_path.read_bytes(), START_TIMEOUT_S, "gunicorn", web.log_path)
        return web

    def patients(self, count):
        code = (
            "import json; from bench.stack import new_patient_session;"
            f"print(json.dumps([new_patient_session() for _ in range({count})]))"
        )
        sessions = json.loads(self.manage("shell", "--verbosity", "0", "-c", code).strip().splitlines()[-1])
        return [Patient(self.port, session) for session in sessions]

    def photos(self, patients):
        """{photo id: (status, status_reason, file name, number of predictions)} of these patients' cases."""
        rows = self.postgres.query(
            "SELECT p.id, p.status, p.status_reason, p.image, "
            "(SELECT count(*) FROM triage_prediction r WHERE r.photo_id = p.id) "
            "FROM triage_photo p JOIN triage_case c ON c.id = p.case_id "
            "JOIN booking_appointment a ON a.id = c.appointment_id WHERE a.reference = ANY(%s)",
            [patient.reference for patient in patients],
        )
        return {row[0]: row[1:] for row in rows}

    def stop(self):
        for process in self.processes.values():
            if process.poll() is None:
                stop_process_group(process)


@pytest.fixture(scope="module")
def stack():
    if not (postgres_bin("initdb") and shutil.which("redis-server")):
        pytest.skip("needs PostgreSQL's initdb/pg_ctl and redis-server")
    root = Path(tempfile.mkdtemp(prefix="faults-"))
    os.chmod(root, 0o755)  # the postgres user reaches its data folder inside
    (root / "pg").mkdir()
    shutil.chown(root / "pg", "postgres", "postgres") if os.geteuid() == 0 else None
    postgres, redis = PostgresCluster(root / "pg"), RedisServer(root)
    postgres.start()
    redis.start()
    portal = Stack(root, postgres, redis)
    try:
        subprocess.run(
            as_postgres_user(
                [postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "postgres", "portal"]
            ),
            check=True,
            capture_output=True,
        )
        # Small, so that the busy shared machine drains the queue in time; the kills still land mid-task
        # (the test polls for "analysing" every 20 ms; a batch takes over a second).
        ml.testing.make_random_checkpoint(
            root / "models" / "random.pt", arch="densenet121", input_size=64, threshold=0.0
        )
        portal.manage("migrate", "--noinput")
        portal.manage("collectstatic", "--noinput")  # DEBUG=0: whitenoise's manifest, as in production
        portal.manage("register_models")
        portal.start_worker()
        portal.start_web()
        yield portal
    finally:
        portal.stop()
        redis.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


def lesion_jpegs(count):
    return [jpeg_bytes(make_photo(seed)[0].resize((480, 360))) for seed in range(count)]


def assert_settled_exactly_once(stack, patients, expected_photos):
    """Within the bound: every photo analysed once or failed with a reason; files and rows agree."""

    def settled():
        photos = stack.photos(patients)
        return len(photos) >= expected_photos and all(
            status in ("analysed", "failed", "rejected") for status, *_ in photos.values()
        )

    wait_for(settled, RECOVERY_BOUND_S, "every photo to settle", stack.processes["worker"].log_path, interval=1)
    photos = stack.photos(patients)
    assert len(photos) == expected_photos
    for photo_id, (status, detail, _, predictions) in photos.items():
        if status == "analysed":
            assert predictions == 1, f"photo {photo_id} has {predictions} predictions"
        else:
            assert detail, f"photo {photo_id} is {status} without a reason"
    assert stack.postgres.query("SELECT id FROM triage_photo WHERE original <> ''") == [], "originals left"
    assert_files_match_rows(stack)


def assert_files_match_rows(stack):
    """Photos (normalised, and originals still recorded) and heatmaps: no file without its row, no row
    without its file."""
    files = {str(path.relative_to(stack.media)) for path in stack.media.rglob("*") if path.is_file()}
    rows = {
        name
        for (name,) in stack.postgres.query(
            "SELECT image FROM triage_photo UNION ALL SELECT original FROM triage_photo "
            "UNION ALL SELECT heatmap FROM triage_prediction"
        )
        if name
    }
    assert files == rows, f"files without rows: {files - rows}; rows without files: {rows - files}"


def test_pool_process_killed_mid_task(stack):
    (patient,) = stack.patients(1)
    status, _ = patient.post(lesion_jpegs(3))
    assert status == 302
    wait_for(
        lambda: "analysing" in {s for s, *_ in stack.photos([patient]).values()}, 60, "analysis to start", interval=0.02
    )
    worker = stack.processes["worker"]
    for child in pool_children(worker.pid):
        os.kill(child, signal.SIGKILL)
    assert_settled_exactly_once(stack, [patient], 3)


def test_whole_worker_killed_and_restarted_at_once(stack):
    """The main process and its pool die together (kill -9 of a container): the restarted worker
    queues what it owned at start-up instead of waiting for Redis' visibility timeout."""
    (patient,) = stack.patients(1)
    assert patient.post(lesion_jpegs(3))[0] == 302
    wait_for(
        lambda: "analysing" in {s for s, *_ in stack.photos([patient]).values()}, 60, "analysis to start", interval=0.02
    )
    worker = stack.processes["worker"]
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    stack.start_worker()
    assert_settled_exactly_once(stack, [patient], 3)  # within RECOVERY_BOUND_S < the lease


def test_redis_stopped_for_ten_seconds(stack):
    """Uploads during the outage are stored and answered normally; they are analysed once Redis is back."""
    before, during = stack.patients(2)
    assert before.post(lesion_jpegs(2))[0] == 302
    stack.redis.stop()
    stopped_at = time.monotonic()
    answers = [during.post(lesion_jpegs(1))[0] for _ in range(2)]
    time.sleep(max(0.0, 10 - (time.monotonic() - stopped_at)))
    stack.redis.start()
    assert answers == [302, 302]
    assert_settled_exactly_once(stack, [before, during], 4)


def test_postgres_restarted(stack):
    """After a restart the first request on each gunicorn worker succeeds (connections are
    health-checked); during one under traffic, requests answer 503 (a page, no traceback) or
    succeed, never 500; uploads that succeeded are analysed once, refused ones leave no file."""
    patients = stack.patients(2)
    for patient in patients:
        assert patient.post(lesion_jpegs(1))[0] == 302  # each gunicorn worker holds a connection
    stack.postgres.restart()
    after_quiet_restart = [patient.get()[0] for patient in patients for _ in range(3)]

    answers, stop = [], threading.Event()

    def traffic(patient):
        for number in itertools.count():
            if stop.is_set():
                return
            status, body = patient.post(lesion_jpegs(1)) if number in (0, 3) else patient.get()
            answers.append(status)
            if status == 503 and (b"Please try again in a minute" not in body or b"Traceback" in body):
                answers.append("503 without the page")

    threads = [threading.Thread(target=traffic, args=(patient,)) for patient in patients]
    for thread in threads:
        thread.start()
    time.sleep(1)
    stack.postgres.restart()
    time.sleep(3)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)

    assert after_quiet_restart == [200] * 6
    assert 500 not in answers and set(answers) <= {200, 302, 503}, answers
    assert_settled_exactly_once(stack, patients, 2 + answers.count(302))
