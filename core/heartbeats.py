"""Worker heartbeats, the Celery side: each worker records its row (`services.record_worker_heartbeat`)
at start, every WORKER_HEARTBEAT_SECONDS from a daemon thread, and at a warm shutdown. Imported by
every worker through CELERY_IMPORTS."""

import logging
import os
import threading

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import connections

from core.services import record_worker_heartbeat

logger = logging.getLogger(__name__)

_heartbeat_stop = threading.Event()
_heartbeat_worker = {}  # this worker's identity, as recorded by the heartbeat


@worker_ready.connect
def start_heartbeat(sender, **_):
    """Record this worker's heartbeat now and every WORKER_HEARTBEAT_SECONDS from a daemon thread."""
    _heartbeat_worker.update(
        hostname=sender.hostname,
        queues=sorted(sender.app.amqp.queues.consume_from),
        pid=os.getpid(),
        concurrency=sender.controller.concurrency,
    )

    def beat():
        while True:
            try:
                record_worker_heartbeat(**_heartbeat_worker)
            except Exception:  # the database may be restarting; the next beat tries again
                logger.exception("Could not record the worker heartbeat")
            finally:
                connections.close_all()
            if _heartbeat_stop.wait(settings.WORKER_HEARTBEAT_SECONDS):
                return

    _heartbeat_stop.clear()
    threading.Thread(target=beat, name="worker-heartbeat", daemon=True).start()


@worker_shutdown.connect
def stop_heartbeat(**_):
    """A warm shutdown marks the worker stopped, so admins do not wait for it to go stale."""
    _heartbeat_stop.set()
    if _heartbeat_worker:
        try:
            record_worker_heartbeat(**_heartbeat_worker, stopped=True)
        except Exception:
            logger.exception("Could not record the worker's shutdown")
