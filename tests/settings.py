"""Test settings: the portal's settings with a var directory of the tests' own, so a test run and
the quickstart can share a checkout (separate SQLite files, broker folders and private media)."""

import os
from pathlib import Path

os.environ.setdefault("PORTAL_VAR_DIR", str(Path(__file__).resolve().parent.parent / "var" / "test"))
os.environ.setdefault("PORTAL_ALLOW_INSECURE_KEY", "1")
# DEBUG is 0 in tests (production behaviour) but the test client and the servers tests start speak
# plain HTTP, and mail goes nowhere (Django's test runner swaps in its in-memory backend anyway).
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("EMAIL_URL", "consolemail://")
# Tests register many random checkpoints; exporting each for ONNX Runtime costs seconds. The ONNX
# path has its own tests (tests/ml/test_ml_ort.py, a real worker in tests/ops/test_worker_e2e.py).
os.environ.setdefault("ML_RUNTIME", "torch")

from portal.settings import *  # noqa: E402,F403
from portal.settings import DATABASES, STORAGES, VAR_DIR  # noqa: E402

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory, so a Celery worker started by an end-to-end test sees the test data.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
# Pages render without `collectstatic`; the production storage is tested with DEBUG=0 in the browser tests.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
