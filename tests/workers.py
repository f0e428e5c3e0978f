"""Real Celery workers for slow tests: the one way to start a `celery worker` process sharing the
test's database, storage and models (the `start_worker` fixture in tests/conftest.py uses it), and
the helpers to wait for and stop such processes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
WORKER_START_TIMEOUT = 120
ALL_QUEUES = f"{settings.INFERENCE_QUEUE},{settings.CELERY_TASK_DEFAULT_QUEUE}"


def database_url_for_tests():
    """The URL of the database this test run uses, for the worker process to share it."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def stack_env(broker_url, **extra):
    """Environment for a process of the stack (worker, shell) sharing this test's DB, storage and models."""
    return {
        **os.environ,
        "DATABASE_URL": database_url_for_tests(),
        "CELERY_BROKER_URL": broker_url,
        "PRIVATE_MEDIA_ROOT": str(default_storage.location),
        "MODEL_DIR": str(settings.MODEL_DIR),
        "PORTAL_ALLOW_INSECURE_KEY": "1",
        "CELERY_WORKER_CONCURRENCY": "1",
        **extra,
    }


def start_worker_process(log_path, hostname, broker_url, *celery_args, **env):
    """A `celery worker` (prefork, one child) on every queue unless `--queues` is among the arguments,
    logging to `log_path`; returns once it is ready. `env` overrides settings in its environment."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                "1",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                hostname,
                *celery_args,
                *([] if "--queues" in celery_args else ["--queues", ALL_QUEUES]),
            ],
            cwd=ROOT,
            env=stack_env(broker_url, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    process.log_path = log_path
    try:
        wait_for(lambda: b"ready." in log_path.read_bytes(), WORKER_START_TIMEOUT, "worker start", log_path)
    except BaseException:
        stop_process_group(process)
        raise
    return process


def stop_process_group(process):
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_for(condition, timeout, what, log_path=None, interval=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    tail = log_path.read_text(errors="replace")[-3000:] if log_path else ""
    pytest.fail(f"Timed out after {timeout}s waiting for {what}.\n{tail}")
