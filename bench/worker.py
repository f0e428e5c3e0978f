"""Worker figures: in-process split of one photo's task into model and non-model stages, and RSS."""

import io
import json
import statistics
import subprocess
import sys
import time

from PIL import Image

from bench.photos import jpeg_bytes

STAGES = ("decode", "model", "overlay", "encode")
OUTSIDE = ("decode", "overlay", "encode")


def one_photo(model, data: bytes) -> tuple[dict[str, float], dict[str, float]]:
    """What ``triage.analysis.analyse_photos`` does for one photo, minus the database; stage ms."""
    import ml
    from triage.analysis import HEATMAP_JPEG_QUALITY, HEATMAP_MAX_SIDE
    from triage.images import encode_jpeg

    stamps = [time.perf_counter()]
    with Image.open(io.BytesIO(data)) as handle:
        handle.load()
        image = handle.convert("RGB")
    stamps.append(time.perf_counter())
    analysis = model.analyse_batch([image], [None], heatmap_max_side=HEATMAP_MAX_SIDE)[0]
    stamps.append(time.perf_counter())
    overlay = ml.overlay(image, analysis)
    stamps.append(time.perf_counter())
    encode_jpeg(overlay, quality=HEATMAP_JPEG_QUALITY)
    stamps.append(time.perf_counter())
    stages = {name: (b - a) * 1000 for name, a, b in zip(STAGES, stamps, stamps[1:])}
    return stages, analysis.timings_ms


def breakdown(model, photos, reps: int, warmup: int, report) -> None:
    """Median stage times over ``reps`` photos; the outside-the-model ratio against its target."""
    blobs = [jpeg_bytes(photo) for photo in photos]
    for i in range(warmup):
        one_photo(model, blobs[i % len(blobs)])
    runs = [one_photo(model, blobs[i % len(blobs)]) for i in range(reps)]
    stage_ms = {name: statistics.median(stages[name] for stages, _ in runs) for name in STAGES}
    for name in STAGES:
        report.add(f"worker_{name}_ms", f"worker stage: {name}", stage_ms[name], "ms/img")
    for name in ("roi", "model", "heatmap"):
        report.add(
            f"ml_{name}_ms",
            f"  inside analyse_batch: {name}",
            statistics.median(timings[name] for _, timings in runs),
            "ms/img",
            note="ml timings_ms",
        )
    outside = sum(stage_ms[name] for name in OUTSIDE)
    report.add("worker_outside_ms", "worker time outside the model", outside, "ms/img")
    report.add("worker_outside_ratio", "  outside / model time", outside / stage_ms["model"], "x", 0.5)


PROBE_PHOTOS = 20  # photos a fresh worker process analyses before its memory is read
RUNTIMES = {"torch": "", "onnx": "onnx_"}  # runtime -> prefix of its figures' keys


def probe(checkpoint, threads: int, report, export_dir=None) -> dict[str, dict]:
    """Runs bench.probe in a fresh interpreter per runtime (torch, then ONNX Runtime on the export
    in ``export_dir``): import, model load and first analysis times, and the RSS after
    ``PROBE_PHOTOS`` photos. Returns each runtime's figures."""
    figures = {}
    for runtime, prefix in RUNTIMES.items():
        command = [sys.executable, "-m", "bench.probe", str(checkpoint), str(threads), "--runtime", runtime]
        command += ["--photos", str(PROBE_PHOTOS)]
        if runtime == "onnx" and export_dir:
            command += ["--export-dir", str(export_dir)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
        figures[runtime] = found = json.loads(result.stdout.strip().splitlines()[-1])
        name = "ml.torch_runtime (torch)" if runtime == "torch" else "ml.ort (ONNX Runtime)"
        report.add(f"{prefix}import_ml_ms", f"fresh process: import {name}", found["import_ms"], "ms")
        report.add(f"{prefix}model_load_ms", f"  model load time ({runtime}, fresh process)", found["load_ms"], "ms")
        report.add(f"{prefix}first_analyse_ms", f"  first analyse ({runtime}, cold)", found["first_analyse_ms"], "ms")
        cold = found["import_ms"] + found["load_ms"] + found["first_analyse_ms"]
        report.add(f"{prefix}cold_start_ms", f"  cold start ({runtime}): import + load + first", cold, "ms", 3000)
        label = f"fresh process RSS after {PROBE_PHOTOS} photos ({runtime})"
        report.add(f"{prefix}probe_rss_mb", label, found["rss_mb"], "MB", 600)
        report.add(f"{prefix}probe_rss_anon_mb", "  of which anonymous", found["rss_anon_mb"], "MB")
        report.add(
            f"{prefix}probe_rss_file_mb", "  of which file-backed (mapped libraries)", found["rss_file_mb"], "MB"
        )
    report.add(
        "onnx_torch_imported",
        "  torch in sys.modules of the onnx process",
        float(figures["onnx"]["torch_imported"]),
        "",
        0,
    )
    return figures


def rss_figures(memory: dict[str, float], source: str, report) -> None:
    """Worker RSS against its target, split into private (anonymous) and mapped-library pages."""
    report.add("worker_rss_mb", f"worker RSS per process ({source})", memory["rss_mb"], "MB", 600)
    report.add("worker_rss_anon_mb", "  of which anonymous (heap, tensors)", memory["rss_anon_mb"], "MB")
    report.add("worker_rss_file_mb", "  of which file-backed (mapped libraries)", memory["rss_file_mb"], "MB")
    report.add("worker_hwm_mb", "  peak RSS of that process (VmHWM)", memory["hwm_mb"], "MB")


MEGAPIXEL_SIZES = {1: (1152, 864), 4: (2304, 1728), 12: (4032, 3024), 24: (5664, 4248)}  # 4:3, as phones


def megapixel_costs(model, reps: int, report) -> None:
    """Median worker-path stage times of one photo at each size, one torch thread, sizes interleaved."""
    import torch

    import ml

    threads = torch.get_num_threads()
    ml.configure_threads(1)
    try:
        _megapixel_costs(model, reps, report)
    finally:
        ml.configure_threads(threads)


def _megapixel_costs(model, reps: int, report) -> None:
    from bench.photos import make_photo

    blobs = {mp: jpeg_bytes(make_photo(mp)[0].resize(size)) for mp, size in MEGAPIXEL_SIZES.items()}
    one_photo(model, blobs[1])  # warm-up: first-call allocations
    samples = {mp: [] for mp in blobs}
    sizes = list(blobs)
    for round_ in range(reps):
        for mp in sizes[round_ % len(sizes) :] + sizes[: round_ % len(sizes)]:
            samples[mp].append(one_photo(model, blobs[mp])[0])
    for mp, runs in samples.items():
        stages = {name: statistics.median(run[name] for run in runs) for name in STAGES}
        total = statistics.median(sum(run.values()) for run in runs)
        report.add(
            f"cost_{mp}mp_ms",
            f"one {mp} MP photo in the worker path (1 thread)",
            total,
            "ms",
            note=", ".join(f"{name} {value:.0f}" for name, value in stages.items()),
        )
        for name, value in stages.items():
            report.add(f"cost_{mp}mp_{name}_ms", f"  {mp} MP: {name}", value, "ms")
