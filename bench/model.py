"""Model figures: plain forward, the worker's analyse path, the naive Grad-CAM baseline, the floor."""

import statistics
import time

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch.utils.flop_counter import FlopCounterMode

import ml
from ml.checkpoint import build_network, read_checkpoint
from ml.preprocess import crop_resize, to_batch
from ml.roi import LOCATING_PASS_416

BATCHES = (1, 8)


def median_ms(fn, warmup: int, reps: int) -> float:
    """Median wall time of ``fn()`` in ms after ``warmup`` untimed calls."""
    return interleaved_medians({"fn": fn}, warmup, reps)["fn"]


def interleaved_medians(runs: dict, warmup: int, reps: int) -> dict[str, float]:
    """Median ms of each callable, timed round-robin so load drift hits every one alike; the order
    rotates each round so no callable always follows the same (e.g. memory-hungry) one."""
    for _ in range(warmup):
        for run in runs.values():
            run()
    names = list(runs)
    samples = {name: [] for name in names}
    for round_ in range(reps):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            start = time.perf_counter()
            runs[name]()
            samples[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def model_input(model: ml.LesionModel, photos, boxes, batch: int) -> torch.Tensor:
    """The preprocessed batch the model sees for the first ``batch`` photos (channels_last)."""
    crops = [crop_resize(p, b, model.input_size) for p, b in zip(photos[:batch], boxes[:batch])]
    return to_batch(crops, model.metadata["mean"], model.metadata["std"])


def plain_forward(net: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.inference_mode():
        net(x)


def naive_gradcam(net: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor) -> None:
    """Forward for the probability, then pytorch-grad-cam's GradCAM with its defaults."""
    plain_forward(net, x)
    with GradCAM(net, [layer]) as cam:
        cam(x, [ClassifierOutputTarget(0)] * len(x))


def load_naive_net(path) -> torch.nn.Module:
    """The network as a plain PyTorch user would have it: contiguous, parameters requiring grad."""
    return build_network(*read_checkpoint(path))


def sgemm_gflops(n: int, reps: int) -> float:
    """Measured fp32 matrix-multiply throughput (GFLOP/s) of one n x n @ n x n torch.mm."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    ms = median_ms(lambda: torch.mm(a, b), warmup=1, reps=reps)
    return 2 * n**3 / (ms / 1000) / 1e9


def model_flops(net: torch.nn.Module, input_size: int) -> int:
    """FLOPs of one forward at batch 1 (FlopCounterMode counts 2 per multiply-add)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        net(torch.randn(1, 3, input_size, input_size))
    return counter.get_total_flops()


def measure(
    model: ml.LesionModel, checkpoint, photos, boxes, reps: int, warmup: int, report, onnx_model: ml.LesionModel
) -> dict:
    """Adds the model figures to ``report``; returns the raw per-image milliseconds. ``onnx_model``:
    the same checkpoint on ONNX Runtime (``ml.ort``), timed in the same rounds."""
    naive_net = load_naive_net(checkpoint)
    naive_layer = ml.ARCHITECTURES[model.arch].target_module(naive_net)
    # The same network and calibration without the assessability rule: what the check costs.
    unjudged = ml.LesionModel(model.metadata, model.backbone, model.head, auto_roi=model.auto_roi)
    per_image = {}
    for batch in BATCHES:
        x = model_input(model, photos, boxes, batch)
        x_array = np.ascontiguousarray(x.numpy())
        runs = {
            "forward": lambda: plain_forward(model.backbone.net, x),
            "onnx_forward": lambda: onnx_model.backbone(x_array),
            "onnx_analyse_auto_roi": lambda: onnx_model.analyse_batch(photos[:batch], [None] * batch),
            "forward_contiguous": lambda: plain_forward(naive_net, x.contiguous()),
            "fast_gradcam": lambda: model.explain(x.numpy()),
            "analyse_roi": lambda: model.analyse_batch(photos[:batch], boxes[:batch]),
            "analyse_roi_unjudged": lambda: unjudged.analyse_batch(photos[:batch], boxes[:batch]),
            "analyse_auto_roi": lambda: model.analyse_batch(photos[:batch], [None] * batch),
            "analyse_auto_roi_two_pass": lambda: model.analyse_batch(
                photos[:batch], model.locating_pass_rois(photos[:batch], LOCATING_PASS_416)
            ),
            "naive_gradcam": lambda: naive_gradcam(naive_net, naive_layer, x.contiguous()),
        }
        for name, ms in interleaved_medians(runs, warmup, reps).items():
            per_image[f"{name}_b{batch}"] = ms / batch
    _add_model_figures(report, per_image)
    return per_image


def _add_model_figures(report, ms: dict) -> None:
    for batch in BATCHES:
        forward = ms[f"forward_b{batch}"]
        report.add(f"forward_ms_b{batch}", f"plain forward, batch {batch} (channels_last)", forward, "ms/img")
        report.add(
            f"forward_contiguous_ms_b{batch}",
            f"plain forward, batch {batch} (contiguous)",
            ms[f"forward_contiguous_b{batch}"],
            "ms/img",
        )
        report.add(f"images_per_s_b{batch}", f"plain forward throughput, batch {batch}", 1000 / forward, "img/s")
        for name, label, target in (
            ("fast_gradcam", "ml LesionModel.explain on the batch (no pre/post)", None),
            ("analyse_roi", "prediction + Grad-CAM + assessability, given ROI", 1.2),
            ("analyse_auto_roi", "prediction + Grad-CAM + assessability, auto ROI (one pass)", 1.3),
            ("analyse_auto_roi_two_pass", "the same, auto ROI of a 416 px locating pass + crop pass (before)", None),
            ("naive_gradcam", "naive: forward + pytorch-grad-cam", None),
        ):
            value = ms[f"{name}_b{batch}"]
            report.add(f"{name}_ms_b{batch}", f"{label}, batch {batch}", value, "ms/img")
            report.add(
                f"{name}_ratio_b{batch}", f"  ratio to plain forward, batch {batch}", value / forward, "x", target
            )
        onnx_forward = ms[f"onnx_forward_b{batch}"]
        report.add(f"onnx_forward_ms_b{batch}", f"ONNX Runtime backbone, batch {batch}", onnx_forward, "ms/img")
        report.add(
            f"onnx_forward_ratio_b{batch}",
            f"  ONNX Runtime / torch forward, batch {batch}",
            onnx_forward / forward,
            "x",
        )
        onnx_analyse = ms[f"onnx_analyse_auto_roi_b{batch}"]
        report.add(
            f"onnx_analyse_auto_roi_ms_b{batch}",
            f"ONNX Runtime analyse_batch, auto ROI, batch {batch}",
            onnx_analyse,
            "ms/img",
        )
        report.add(
            f"onnx_analyse_ratio_b{batch}",
            f"  ONNX Runtime / torch analyse_batch, auto ROI, batch {batch}",
            onnx_analyse / ms[f"analyse_auto_roi_b{batch}"],
            "x",
        )
        report.add(
            f"assessment_ratio_b{batch}",
            f"  given ROI with / without the assessability check, batch {batch}",
            ms[f"analyse_roi_b{batch}"] / ms[f"analyse_roi_unjudged_b{batch}"],
            "x",
        )
        report.add(
            f"analyse_images_per_s_b{batch}",
            f"worker model path throughput, batch {batch} (auto ROI)",
            1000 / ms[f"analyse_auto_roi_b{batch}"],
            "img/s",
        )


def floor(model: ml.LesionModel, forward_ms_b8: float, quick: bool, report) -> None:
    """The physical floor: measured sgemm throughput and the model's FLOPs."""
    gflops = sgemm_gflops(1024 if quick else 2048, reps=3 if quick else 10)
    flops = model_flops(model.backbone.net, model.input_size)
    floor_ms = flops / (gflops * 1e9) * 1000
    report.add("sgemm_gflops", "sgemm throughput (torch.mm)", gflops, "GFLOP/s")
    report.add("model_gflop", f"model FLOPs per image at {model.input_size}px", flops / 1e9, "GFLOP")
    report.add("floor_ms", "floor: FLOPs / sgemm throughput", floor_ms, "ms/img")
    report.add("forward_b8_over_floor", "  plain forward batch 8 / floor", forward_ms_b8 / floor_ms, "x")
