import os
from pathlib import Path

from celery import Celery
from celery.signals import before_task_publish, task_postrun, task_prerun

from core.request_id import current_request_id, reset_request_id, set_request_id

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

FILESYSTEM_BROKER_FOLDERS = ("data_folder_in", "data_folder_out", "processed_folder", "control_folder")


@app.on_after_configure.connect
def make_filesystem_broker_folders(sender, **_):
    """The embedded filesystem broker (quickstart, tests) needs its folders before the first message."""
    if not str(sender.conf.broker_url).startswith("filesystem://"):
        return
    options = sender.conf.broker_transport_options
    for key in FILESYSTEM_BROKER_FOLDERS:
        if key in options:
            Path(options[key]).mkdir(parents=True, exist_ok=True)


# The web request's id travels in a message header, so the task's log lines carry it too.
REQUEST_ID_TASK_HEADER = "portal_request_id"
_task_tokens = {}


@before_task_publish.connect
def carry_request_id(headers=None, **_):
    request_id = current_request_id()
    if request_id and headers is not None:
        headers.setdefault(REQUEST_ID_TASK_HEADER, request_id)


@task_prerun.connect
def adopt_request_id(task_id=None, task=None, **_):
    """A task queued by a request logs under that request's id; any other under its own task id."""
    request_id = getattr(task.request, REQUEST_ID_TASK_HEADER, None) or task_id
    _task_tokens[task_id] = set_request_id(request_id)


@task_postrun.connect
def drop_request_id(task_id=None, **_):
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        reset_request_id(token)
