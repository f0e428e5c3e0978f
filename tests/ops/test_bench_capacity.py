"""Smoke tests of `python -m bench capacity` and `python -m bench hosts`: tiny random model, tiniest
counts, servers of the test's own. They check the figures come out and hold together, not speeds."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import ml
from bench.servers import PostgresServer, RedisServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 900


@pytest.fixture
def tiny_checkpoint(tmp_path):
    return ml.testing.make_random_checkpoint(tmp_path / "tiny.pt", input_size=64)


@pytest.fixture
def servers():
    """A PostgreSQL cluster and a redis-server of this test's own, on loopback."""
    if not (shutil.which("redis-server") and (shutil.which("initdb") or list(Path("/usr/lib/postgresql").glob("*")))):
        pytest.skip("needs PostgreSQL's initdb/pg_ctl and redis-server")
    root = Path(tempfile.mkdtemp(prefix="bench-capacity-test-"))
    os.chmod(root, 0o755)  # the postgres user reaches its data folder inside (pytest's tmp_path is private)
    postgres, redis_server = PostgresServer(root / "pg", "127.0.0.1"), RedisServer(root, "127.0.0.1")
    try:
        postgres.start()
        redis_server.start()
        yield postgres, redis_server
    finally:
        redis_server.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


def run_bench(*args, json_path):
    result = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--json", str(json_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    return result, (json.loads(json_path.read_text())["figures"] if json_path.exists() else {})


def test_capacity_drains_a_burst_per_worker_setting_and_sizes_a_clinic(tiny_checkpoint, servers, tmp_path):
    postgres, redis_server = servers
    result, figures = run_bench(
        "capacity",
        "--quick",
        "--model",
        str(tiny_checkpoint),
        "--burst",
        "3",
        "--workers",
        "1x1,2x1",
        "--burst-megapixels",
        "1",
        "--appointment-sizes",
        "1,2",
        "--database-url",
        postgres.admin_url,
        "--broker-url",
        redis_server.url,
        json_path=tmp_path / "capacity.json",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for mp in (1, 4, 12, 24):
        stages = sum(figures[f"cost_{mp}mp_{stage}_ms"]["value"] for stage in ("decode", "model", "overlay", "encode"))
        assert figures[f"cost_{mp}mp_ms"]["value"] > 0 and stages > 0
    for setting in ("1x1", "2x1"):
        assert figures[f"drain_{setting}_s"]["value"] > 0
        assert figures[f"drain_{setting}_photos_per_s"]["value"] > 0
        assert figures[f"drain_{setting}_twice"]["value"] == 0
        assert figures[f"drain_{setting}_rss_mb"]["value"] > 0
        assert "3 analysed" in figures[f"drain_{setting}_s"]["note"]
    # The two-process worker holds more memory than the one-process one: a pool process more.
    assert figures["drain_2x1_rss_mb"]["value"] > figures["drain_1x1_rss_mb"]["value"]
    for size in (1, 2):
        assert figures[f"appointment_{size}_photos_ms"]["note"].startswith(f"1 task(s), {size} photos")
        assert figures[f"drain_{setting}_cpu_s_per_photo"]["value"] > 0
    assert figures["capacity_cpu_s_per_photo"]["value"] == min(
        figures[f"drain_{setting}_cpu_s_per_photo"]["value"] for setting in ("1x1", "2x1")
    )
    for uploads in (1000, 5000, 20000):
        assert figures[f"capacity_{uploads}_cores"]["value"] >= 1
        assert figures[f"capacity_{uploads}_memory_mb"]["value"] > 0
    assert figures["capacity_20000_memory_mb"]["value"] >= figures["capacity_1000_memory_mb"]["value"]
    assert figures["capacity_20000_core_hours"]["value"] == pytest.approx(
        20 * figures["capacity_1000_core_hours"]["value"]
    )


def namespaces_of(pid):
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in listing.splitlines() if line.startswith(f"bench-{pid % 100000}-")]


def links_of(pid):
    listing = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return [line for line in listing.splitlines() if f" bb{pid % 100000}" in line]


needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("redis-server"),
    reason="network namespaces need root, iproute2 and redis-server",
)


@needs_netns
def test_two_hosts_in_namespaces_share_the_burst_without_analysing_a_photo_twice(tiny_checkpoint, tmp_path):
    out = tmp_path / "hosts.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench",
            "hosts",
            "--quick",
            "--model",
            str(tiny_checkpoint),
            "--burst",
            "6",
            "--burst-megapixels",
            "1",
            "--storage",
            "filesystem",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output, _ = process.communicate(timeout=RUN_TIMEOUT_S)
    assert process.returncode == 0, output[-4000:]
    figures = json.loads(out.read_text())["figures"]
    assert figures["hosts_a_photos"]["value"] + figures["hosts_b_photos"]["value"] == 6
    for key in ("hosts_twice", "hosts_lost", "hosts_failed", "hosts_files_missing"):
        assert figures[key]["value"] == 0, key
    for host in "ab":
        assert figures[f"hosts_{host}_network_mb"]["value"] > 0  # its work crossed its own interface
    assert not namespaces_of(process.pid) and not links_of(process.pid)


@needs_netns
def test_hosts_removes_its_namespaces_when_stopped_midway(tiny_checkpoint, tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "bench", "hosts", "--quick", "--model", str(tiny_checkpoint), "--storage", "filesystem"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len(namespaces_of(process.pid)) < 2:
            assert process.poll() is None and time.monotonic() < deadline, "the namespaces never appeared"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=180)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert not namespaces_of(process.pid) and not links_of(process.pid)
