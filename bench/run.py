"""``python -m bench``: every figure of issue #5 in one run, printed next to its target."""

import argparse
import os
import platform
import shutil
import signal
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "WORKER_TORCH_THREADS", "CELERY_WORKER_CONCURRENCY")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--model",
        type=Path,
        help="checkpoint (default: first ml/checkpoints/*.pt, else a random densenet121 at 224 px)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny repetition counts (smoke test)")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--skip-stack", action="store_true", help="no web server / worker / upload latency")
    parser.add_argument(
        "--database-url",
        help="PostgreSQL server URL; a throwaway database bench_<pid> is created on it and dropped (default: SQLite)",
    )
    parser.add_argument("--broker-url", help="Celery broker, e.g. redis://127.0.0.1:6379/9 (default: filesystem)")
    parser.add_argument("--uploads", type=int, help="photos uploaded to the stack (default 20, quick 3)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between uploads (default 2)")
    return parser.parse_args(argv)


def configure_environment(var_dir: Path, args) -> str | None:
    """Portal settings for this run (read by this process and every process it starts).

    Returns the PostgreSQL admin URL when a throwaway database is to be made."""
    os.environ.update(
        PORTAL_VAR_DIR=str(var_dir),
        PORTAL_ALLOW_INSECURE_KEY="1",
        SECURE_COOKIES="0",
        SECURE_SSL_REDIRECT="0",
        EMAIL_URL="consolemail://",
        DJANGO_SETTINGS_MODULE="portal.settings",
        LOG_LEVEL="WARNING",
    )
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("CELERY_BROKER_URL", None)
    if args.broker_url:
        os.environ["CELERY_BROKER_URL"] = args.broker_url
    if not args.database_url:
        return None
    from bench.stack import postgres_urls

    admin_url, database_url = postgres_urls(args.database_url, f"bench_{os.getpid()}")
    os.environ["DATABASE_URL"] = database_url
    return admin_url


def choose_checkpoint(args, var_dir: Path) -> tuple[Path, str]:
    """(checkpoint path, how it was chosen)."""
    import ml

    if args.model:
        return args.model, "--model"
    shipped = sorted((ROOT / "ml" / "checkpoints").glob("*.pt"))
    if shipped:
        return shipped[0], "first of ml/checkpoints/*.pt"
    path = ml.testing.make_random_checkpoint(var_dir / "random-densenet121.pt", input_size=224, version="bench-random")
    return path, "NO CHECKPOINT FOUND: random densenet121 at 224 px made for this run"


def thread_info(threads: int) -> dict:
    import torch

    return {
        "torch.get_num_threads()": torch.get_num_threads(),
        "torch.set_num_threads": threads,
        "torch.get_num_interop_threads()": torch.get_num_interop_threads(),
        "os.cpu_count()": os.cpu_count(),
        **{name: os.environ.get(name, "(unset)") for name in THREAD_ENV},
    }


def run(args, var_dir: Path, report) -> None:
    import django
    import onnxruntime

    postgres_admin_url = configure_environment(var_dir, args)
    django.setup()
    import torch
    from django.conf import settings

    import ml
    from bench import model as model_bench
    from bench import shadow, worker
    from bench.photos import make_photos, phone_sized
    from bench.worker import megapixel_costs
    from ml.export import export_onnx

    threads = settings.WORKER_TORCH_THREADS  # what each Celery pool process uses
    ml.configure_threads(threads)
    ml.ort.configure_threads(threads)
    checkpoint, chosen = choose_checkpoint(args, var_dir)
    model = ml.load(checkpoint)
    export_dir = var_dir / "onnx"
    export_onnx(checkpoint, export_dir)
    onnx_model = ml.ort.load(checkpoint, directory=export_dir)
    reps, warmup = (1, 0) if args.quick else (20, 3)
    report.info.update(
        model=f"{checkpoint} ({chosen})",
        arch=model.arch,
        input_size=model.input_size,
        version=model.version,
        repetitions=reps,
        python=platform.python_version(),
        torch=torch.__version__,
        onnxruntime=onnxruntime.__version__,
        ml_runtime=f"{settings.ML_RUNTIME} (the stack's worker)",
        load_average_start=os.getloadavg(),
        **thread_info(threads),
    )
    photos, boxes = make_photos(8)
    per_image = model_bench.measure(model, checkpoint, photos, boxes, reps, warmup, report, onnx_model)
    model_bench.floor(model, per_image["forward_b8"], args.quick, report)
    worker.breakdown(model, [phone_sized(photo) for photo in photos[:2]], reps=reps, warmup=warmup, report=report)
    megapixel_costs(model, max(1, reps // 4), report)
    probe = worker.probe(checkpoint, threads, report, export_dir)
    shadow.measure(checkpoint, threads, reps, warmup, var_dir, report)
    if args.skip_stack:
        source = f"fresh-process probe ({settings.ML_RUNTIME}), --skip-stack"
        worker.rss_figures(probe[settings.ML_RUNTIME], source, report)
    else:
        run_stack(args, var_dir, checkpoint, postgres_admin_url, photos, report)
    report.info["load_average_end"] = os.getloadavg()


def run_stack(args, var_dir: Path, checkpoint: Path, postgres_admin_url, photos, report) -> None:
    from bench.stack import Stack, upload_figures

    model_dir = var_dir / "models"
    model_dir.mkdir()
    (model_dir / checkpoint.name).symlink_to(checkpoint.resolve())
    stack = Stack(var_dir, model_dir, postgres_admin_url, f"bench_{os.getpid()}")
    report.info.update(
        database=os.environ.get("DATABASE_URL", "sqlite (temp dir)"),
        broker=os.environ.get("CELERY_BROKER_URL", "filesystem (temp dir)"),
        upload_path="HTTP POST /appointments/<ref>/ via gunicorn, session cookie",
    )
    try:
        stack.start()
        upload_figures(stack, photos, args.uploads or (3 if args.quick else 20), args.interval, report)
    finally:
        stack.stop()


def _terminate(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    from bench.report import Report

    args = parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM):  # so `finally` blocks stop the stack
        signal.signal(signum, _terminate)
    var_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    report = Report()
    try:
        run(args, var_dir, report)
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)
        print(report.table())
        if args.json:
            report.write_json(args.json)
    return 0
