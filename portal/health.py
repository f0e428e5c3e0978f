"""Probes for load balancers and orchestrators.

`/healthz`: the process answers (liveness). `/readyz`: it can do its work: the database, the
broker and the photo storage answer and a model is active (readiness); 503 names what failed.
Answered by middleware ahead of host validation and SSL redirects, so a plain-HTTP probe from the
load balancer or the container's own HEALTHCHECK always reaches it.
"""

import logging

from celery import current_app
from django.core.files.storage import default_storage
from django.db import connection
from django.http import JsonResponse

from registry.versions import active_model_version

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_SECONDS = 2


def check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_broker():
    with current_app.connection_for_write(connect_timeout=BROKER_TIMEOUT_SECONDS) as broker:
        broker.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT_SECONDS)


def check_storage():
    default_storage.listdir("")


def check_model():
    if active_model_version() is None:
        raise LookupError("no active model version")


READINESS_CHECKS = {
    "database": check_database,
    "broker": check_broker,
    "storage": check_storage,
    "model": check_model,
}


def readiness():
    """{check name: "ok" | "failed"}; the reasons go to the log, not to the (public) response."""
    results = {}
    for name, check in READINESS_CHECKS.items():
        try:
            check()
        except Exception:
            logger.exception("Readiness check %r failed", name)
            results[name] = "failed"
        else:
            results[name] = "ok"
    return results


class HealthCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method in ("GET", "HEAD"):
            if request.path == "/healthz":
                return _no_store(JsonResponse({"status": "ok"}))
            if request.path == "/readyz":
                checks = readiness()
                ready = all(result == "ok" for result in checks.values())
                body = {"status": "ready" if ready else "unavailable", "checks": checks}
                return _no_store(JsonResponse(body, status=200 if ready else 503))
        return self.get_response(request)


def _no_store(response):
    response["Cache-Control"] = "no-store"
    return response
