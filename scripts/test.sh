#!/usr/bin/env bash
# Installs everything, checks the import layers, builds the documentation site strictly (a broken link
# fails), checks lint and formatting, and runs the whole test suite. Extra arguments go to pytest (for
# example -m "not slow" for the fast suite). Uses DATABASE_URL and CELERY_BROKER_URL when set (CI:
# PostgreSQL and Redis); otherwise the embedded defaults (SQLite, filesystem broker).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/lint-imports
.venv/bin/ruff check .
.venv/bin/ruff format --check .
site_dir=$(mktemp -d)  # the built site is thrown away: only that it builds is checked here
trap 'rm -rf "$site_dir"' EXIT
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$site_dir"
rm -rf "$site_dir"
exec .venv/bin/python -m pytest "$@"
