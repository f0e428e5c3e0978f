"""``python -m bench hosts``: two worker hosts sharing one PostgreSQL, Redis and photo storage.

Each host is a network namespace of this machine (``ip netns``, needs root) joined by a veth pair
to a bridge on which this run's own PostgreSQL cluster, redis-server and, with ``--storage s3``,
SeaweedFS S3 gateway listen (``bench.servers``): the workers' database, broker and storage traffic
crosses an interface. gunicorn runs outside the namespaces. A burst of ``--burst`` one-photo
uploads is queued while both workers' inference consumers are paused, then both are let go at
once. Prints photos and photos per second per host, the drain time, and the photos analysed twice,
lost or failed (exit status 1 if any). Namespaces, links and servers are removed whatever happens.
"""

import argparse
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

from bench.worker import MEGAPIXEL_SIZES

HOSTS = 2


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m bench hosts", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--burst", type=int, help="queued uploads (default 100, quick 6)")
    parser.add_argument(
        "--burst-megapixels",
        type=int,
        choices=sorted(MEGAPIXEL_SIZES),
        default=12,
        help="size of the photos (default 12: a phone camera)",
    )
    parser.add_argument("--processes", type=int, default=1, help="pool processes per host (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    parser.add_argument(
        "--storage",
        choices=("filesystem", "s3"),
        default="s3",
        help="photo storage shared by the hosts (default s3: SeaweedFS on the bridge)",
    )
    parser.add_argument("--model", type=Path, help="checkpoint (default: first ml/checkpoints/*.pt)")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--quick", action="store_true", help="tiny counts (smoke test)")
    args = parser.parse_args(argv)
    args.burst = args.burst or (6 if args.quick else 100)
    return args


def main(argv=None) -> int:
    import django

    from bench.capacity import _checkpoint
    from bench.report import Report
    from bench.run import _terminate, configure_environment
    from bench.servers import HostNetwork, PostgresServer, RedisServer, S3Server

    args = parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("python -m bench hosts makes network namespaces: run it as root")
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _terminate)
    root = Path(tempfile.mkdtemp(prefix="bench-hosts-"))
    os.chmod(root, 0o755)  # the postgres user reaches its data folder inside
    report, network, servers, stack, failures = Report(), HostNetwork(HOSTS), [], None, 0
    try:
        network.create()
        postgres = PostgresServer(root / "pg", network.server_address)
        redis_server = RedisServer(root, network.server_address)
        servers += [postgres, redis_server]
        storage_env = {}
        if args.storage == "s3":
            s3 = S3Server(root / "s3", network.server_address)
            servers.append(s3)
        for server in servers:
            server.start()
        if args.storage == "s3":
            storage_env = s3.env
        os.environ.update(storage_env)
        var_dir = root / "var"
        var_dir.mkdir()
        args.database_url, args.broker_url = postgres.admin_url, redis_server.url
        postgres_admin_url = configure_environment(var_dir, args)
        os.environ["EMAIL_URL"] = "memorymail://"  # booking emails of the made-up patients: not printed
        django.setup()
        checkpoint = _checkpoint(args)
        report.info.update(
            command=f"python -m bench hosts {' '.join(argv or [])}".strip(),
            model=str(checkpoint),
            cpus=os.cpu_count(),
            servers=f"{network.server_address} on bridge {network.bridge}",
            hosts=", ".join(f"{ns} ({address})" for ns, address in zip(network.namespaces, network.host_addresses)),
            database=os.environ["DATABASE_URL"],
            broker=args.broker_url,
            storage=storage_env.get("AWS_S3_ENDPOINT_URL", "filesystem (shared folder)"),
            workers=f"{args.processes} process(es) x {args.threads} thread(s) per host",
            load_average_start=os.getloadavg(),
        )
        stack = _stack(var_dir, checkpoint, postgres_admin_url)
        failures = run_hosts(stack, network, args, report)
        report.info["load_average_end"] = os.getloadavg()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the clean-up short
            signal.signal(signum, signal.SIG_IGN)
        if stack is not None:
            from django.db import connections

            connections.close_all()
            stack.stop()
        for server in reversed(servers):
            try:
                server.stop()
            except Exception as error:  # keep removing the rest
                report.info.setdefault("cleanup_errors", []).append(f"{type(server).__name__}: {error}")
        errors = network.remove()
        if errors:
            report.info.setdefault("cleanup_errors", []).extend(errors)
        shutil.rmtree(root, ignore_errors=True)
        print(report.table())
        if args.json:
            report.write_json(args.json)
    return 1 if failures else 0


def _stack(var_dir: Path, checkpoint: Path, postgres_admin_url):
    from bench.stack import Stack

    model_dir = var_dir / "models"
    model_dir.mkdir()
    (model_dir / checkpoint.name).symlink_to(checkpoint.resolve())
    stack = Stack(var_dir, model_dir, postgres_admin_url, f"bench_{os.getpid()}", web_workers=2, web_threads=2)
    stack.prepare()
    stack.start_web()
    return stack


def run_hosts(stack, network, args, report) -> int:
    """Starts one worker per namespace, drains a burst with both; returns photos lost + analysed twice."""
    from bench.capacity import describe, outcome, queue_burst, resume, wait_settled
    from triage.models import Photo, Prediction

    hostnames = [
        stack.start_worker(namespace, concurrency=args.processes, torch_threads=args.threads, netns=namespace)
        for namespace in network.namespaces
    ]
    photo_ids = queue_burst(stack, hostnames, args.burst, args.burst_megapixels)
    traffic_before = [network.traffic_bytes(number) for number in range(HOSTS)]
    started = time.monotonic()
    resume(hostnames)
    drained = wait_settled(photo_ids, timeout_s=600 + 60 * args.burst)
    traffic = [network.traffic_bytes(number) - before for number, before in enumerate(traffic_before)]
    result = outcome(photo_ids)
    lost = args.burst - len(photo_ids) + result["waiting"]  # never stored, or never settled
    drain_s = drained - started
    report.add(
        "hosts_drain_s",
        f"drain {args.burst} queued uploads with {HOSTS} hosts",
        drain_s,
        "s",
        note=f"{args.burst} x {args.burst_megapixels} MP; {describe(result)}",
    )
    report.add("hosts_photos_per_s", "  photos per second, both hosts", result["analysed"] / drain_s, "/s")
    for number, (namespace, hostname) in enumerate(zip(network.namespaces, hostnames)):
        letter = "ab"[number]
        photos = result["by_worker"].get(hostname, 0)
        last = (
            Prediction.objects.filter(photo_id__in=photo_ids, photo__analysis_worker=hostname)
            .order_by("-created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        first = (
            Photo.objects.filter(pk__in=photo_ids, analysis_worker=hostname)
            .order_by("analysis_started_at")
            .values_list("analysis_started_at", flat=True)
            .first()
        )
        busy_s = (last - first).total_seconds() if first and last else None
        report.add(
            f"hosts_{letter}_photos",
            f"  host {letter} ({namespace}): photos analysed",
            float(photos),
            "",
            note=f"{len(stack.task_seconds(namespace))} tasks in its log",
        )
        report.add(
            f"hosts_{letter}_photos_per_s",
            f"  host {letter}: photos per second of the drain",
            photos / drain_s,
            "/s",
            note="" if busy_s is None else f"first claim to last result {busy_s:.1f} s",
        )
        report.add(
            f"hosts_{letter}_network_mb",
            f"  host {letter}: traffic through its veth during the drain",
            traffic[number] / 1e6,
            "MB",
            note="database, broker and storage",
        )
    report.add(
        "hosts_files_missing",
        "  photos or heatmaps whose file is not in storage",
        float(missing_files(photo_ids)),
        "",
        0,
        note=args.storage,
    )
    report.add("hosts_failed", "  photos whose analysis failed", float(result["failed"]), "", 0)
    report.add("hosts_twice", "  photos analysed twice", float(result["twice"]), "", 0)
    report.add("hosts_lost", "  photos lost (uploaded, never analysed)", float(lost), "", 0)
    return result["twice"] + lost + result["failed"]


def missing_files(photo_ids: list[int]) -> int:
    """Photos and active heatmaps of ``photo_ids`` whose file the shared storage does not hold."""
    from django.core.files.storage import default_storage

    from triage.models import Photo, Prediction

    names = [
        *Photo.objects.filter(pk__in=photo_ids).values_list("image", flat=True),
        *Prediction.objects.filter(photo_id__in=photo_ids).exclude(heatmap="").values_list("heatmap", flat=True),
    ]
    return sum(1 for name in names if not default_storage.exists(name))
