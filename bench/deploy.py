"""Deployment figures: `python -m bench.deploy [--json out.json]`.

1. Install size of the runtime dependencies (requirements.txt and everything they pull in, as
   installed in this venv), and how much of it is CUDA-only (nvidia-* wheels, triton, torch's
   libtorch_cuda* libraries): what a CPU-only PyTorch build would leave out.
2. Resident memory of real Celery workers started here on a throwaway SQLite database and
   filesystem broker with the shipped model: an inference worker (main process and pool child, after
   the child loaded the model) and a light worker (never imports torch). For each, the part of the
   RSS that sits in pages of CUDA-only libraries (from /proc/PID/smaps).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from bench.procinfo import children, memory_mb

ROOT = Path(__file__).resolve().parent.parent
CUDA_ONLY = re.compile(r"/(nvidia|triton)/|libtorch_cuda|libc10_cuda|libcudnn|libnccl|libnvshmem|libcu")
START_TIMEOUT_S = 600


def requirement_closure(requirements_file: Path) -> set[str]:
    """Distribution names in requirements.txt and, recursively, what they require (as installed)."""
    pending = []
    for line in requirements_file.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            pending.append(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0])
    seen = set()
    while pending:
        name = pending.pop().lower().replace("_", "-")
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for requirement in dist.requires or []:
            if "extra ==" in requirement and 'extra == "s3"' not in requirement:
                continue
            pending.append(re.split(r"[<>=!~\[; (]", requirement, maxsplit=1)[0])
    return seen


def install_sizes(names: set[str]) -> dict[str, float]:
    """Bytes on disk of the files each distribution installed, split into CUDA-only and the rest (MB)."""
    total = cuda = 0
    for name in names:
        dist = metadata.distribution(name)
        for file in dist.files or []:
            path = Path(dist.locate_file(file))
            if path.is_file():
                size = path.stat().st_size
                total += size
                if CUDA_ONLY.search(str(path)):
                    cuda += size
    return {"runtime_install_mb": total / 1e6, "cuda_only_mb": cuda / 1e6, "without_cuda_mb": (total - cuda) / 1e6}


def cuda_rss_mb(pid: int) -> float:
    """Resident MB of a process that lie in mappings of CUDA-only libraries."""
    resident, current = 0, None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and re.match(r"^[0-9a-f]+-[0-9a-f]+$", head[0]):
            current = head[5] if len(head) > 5 else ""
        elif head and head[0] == "Rss:" and current and CUDA_ONLY.search(current):
            resident += int(head[1]) * 1024
    return resident / 1e6


def start_worker(env: dict, queue: str, log_path: Path) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "--queues",
                queue,
                "--pool",
                "prefork",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                f"{queue}-bench-{os.getpid()}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    ready = "Worker process ready with model" if queue == "inference" else " ready."
    while ready not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{queue} worker did not start:\n{log_path.read_text()[-2000:]}")
        time.sleep(0.5)
    time.sleep(2)  # let start-up settle before reading memory
    return process


def worker_memory(process: subprocess.Popen) -> dict[str, float]:
    (child,) = children(process.pid)
    return {
        "main_rss_mb": memory_mb(process.pid)["rss_mb"],
        "main_cuda_rss_mb": cuda_rss_mb(process.pid),
        "child_rss_mb": memory_mb(child)["rss_mb"],
        "child_cuda_rss_mb": cuda_rss_mb(child),
    }


def measure_workers() -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as var_dir:
        env = {
            **os.environ,
            "PORTAL_VAR_DIR": var_dir,
            "DATABASE_URL": f"sqlite:///{var_dir}/db.sqlite3",
            "CELERY_BROKER_URL": "filesystem://",
            "PORTAL_ALLOW_INSECURE_KEY": "1",
            "CELERY_WORKER_CONCURRENCY": "1",
            "PRIVATE_MEDIA_ROOT": f"{var_dir}/private-media",
            "MODEL_DIR": str(ROOT / "ml" / "checkpoints"),
            "CELERY_WORKER_PROC_ALIVE_TIMEOUT": "600",  # a loaded machine may take minutes to load torch
        }
        for command in (["migrate", "--noinput"], ["register_models"]):
            subprocess.run(
                [sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True, timeout=300
            )
        figures = {}
        for queue in ("inference", "default"):
            process = start_worker(env, queue, Path(var_dir) / f"{queue}.log")
            try:
                figures[queue] = worker_memory(process)
            finally:
                os.killpg(process.pid, 15)
                process.wait(timeout=60)
        return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    figures = {"install": install_sizes(requirement_closure(ROOT / "requirements.txt")), "workers": measure_workers()}
    install = figures["install"]
    print(
        f"runtime dependencies installed: {install['runtime_install_mb']:.0f} MB, of which CUDA-only "
        f"{install['cuda_only_mb']:.0f} MB (left without: {install['without_cuda_mb']:.0f} MB)"
    )
    for queue, memory in figures["workers"].items():
        print(
            f"{queue} worker: main {memory['main_rss_mb']:.0f} MB RSS ({memory['main_cuda_rss_mb']:.0f} MB in CUDA "
            f"libraries), pool child {memory['child_rss_mb']:.0f} MB ({memory['child_cuda_rss_mb']:.0f} MB in CUDA "
            "libraries)"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
