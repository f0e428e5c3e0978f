"""Smoke test of the benchmark command: tiny random model, tiniest settings, no stack."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import ml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FIGURES = (
    "forward_ms_b1",
    "forward_ms_b8",
    "images_per_s_b1",
    "images_per_s_b8",
    "analyse_roi_ratio_b1",
    "analyse_auto_roi_ratio_b1",
    "naive_gradcam_ratio_b1",
    "sgemm_gflops",
    "model_gflop",
    "floor_ms",
    "model_load_ms",
    "worker_outside_ratio",
    "worker_rss_mb",
    "shadow_active_result_ms",
    "shadow_challenger_ms",
    "shadow_task_ratio",
    "cost_1mp_ms",
    "cost_4mp_ms",
    "cost_12mp_ms",
    "cost_24mp_ms",
    "cold_start_ms",
    "probe_rss_mb",
    "onnx_forward_ratio_b1",
    "onnx_forward_ratio_b8",
    "onnx_analyse_ratio_b1",
    "onnx_cold_start_ms",
    "onnx_probe_rss_mb",
)


def test_bench_quick_prints_every_figure(tmp_path):
    checkpoint = ml.testing.make_random_checkpoint(tmp_path / "tiny.pt", input_size=64)
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--model", str(checkpoint), "--quick", "--skip-stack", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for key in FIGURES:
        assert key in result.stdout
    assert "torch.get_num_threads()" in result.stdout
    figures = json.loads(out.read_text())["figures"]
    assert {figures[key]["status"] for key in ("analyse_roi_ratio_b1", "worker_outside_ratio", "worker_rss_mb")} <= {
        "PASS",
        "MISS",
    }
    assert all(figures[key]["value"] > 0 for key in FIGURES)
    assert figures["onnx_torch_imported"]["value"] == 0
