#!/usr/bin/env bash
# Installs everything, checks the import layers, and runs the whole test suite. Extra arguments go
# to pytest (for example -m "not slow" for the fast suite). Uses DATABASE_URL and CELERY_BROKER_URL
# when set (CI: PostgreSQL and Redis); otherwise the embedded defaults (SQLite, filesystem broker).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/lint-imports
exec .venv/bin/python -m pytest "$@"
