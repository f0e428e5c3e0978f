#!/usr/bin/env bash
# Installs everything and runs the whole test suite. Extra arguments go to pytest.
# Uses DATABASE_URL and CELERY_BROKER_URL when set (CI: PostgreSQL and Redis); otherwise
# the embedded defaults (SQLite and a filesystem broker).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PORTAL_ALLOW_INSECURE_KEY=1
exec .venv/bin/python -m pytest "$@"
