#!/usr/bin/env bash
# One command from a bare machine to a running portal: installs, migrates, registers the
# shipped model, creates demo accounts, then runs the web server and a Celery worker together.
# Embedded defaults (SQLite, filesystem broker) unless DATABASE_URL / CELERY_BROKER_URL are set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export DEBUG=${DEBUG:-1}
PORT=${PORT:-8000}
PY=.venv/bin/python
mkdir -p "${PORTAL_VAR_DIR:-var}"  # SQLite file, broker folders, private media

$PY manage.py migrate --noinput
$PY manage.py prepare_storage
$PY manage.py register_models
$PY manage.py seed_demo

# One worker for both queues here; production runs inference and light workers apart (docs/production.md).
$PY -m celery -A portal worker --beat --queues inference,default --loglevel INFO &
worker=$!
trap 'kill $worker 2>/dev/null; wait $worker 2>/dev/null' EXIT INT TERM

cat <<MSG

  Portal:        http://127.0.0.1:$PORT/
  Staff queue:   http://127.0.0.1:$PORT/staff/
  Django admin:  http://127.0.0.1:$PORT/admin/
  Demo logins are printed above by seed_demo. Ctrl+C stops the portal and its worker.

MSG
$PY manage.py runserver "127.0.0.1:$PORT"
