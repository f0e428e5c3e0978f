"""Fresh-process probe: import the runtime, load the checkpoint, analyse one photo, then more; prints JSON.

Run as ``python -m bench.probe CHECKPOINT THREADS [--runtime onnx] [--photos 20] [--export-dir DIR]``
so the figures are those of a new worker process: runtime ``torch`` (``ml.torch_runtime``, the default)
or ``onnx`` (``ml.ort`` on the checkpoint's export, beside it or in DIR); the memory is read after
``--photos`` photos were analysed (and all but the first overlaid) as the worker does.
"""

import argparse
import json
import sys
import time
from importlib import import_module

MODULES = {"torch": "ml.torch_runtime", "onnx": "ml.ort"}
HEATMAP_MAX_SIDE = 1280  # triage.analysis.HEATMAP_MAX_SIDE (no Django here)


def main(checkpoint: str, threads: int, runtime: str = "torch", photos: int = 1, export_dir: str = "") -> dict:
    start = time.perf_counter()

    import ml

    backend = import_module(MODULES[runtime])
    backend.configure_threads(threads)
    imported = time.perf_counter()
    model = backend.load(checkpoint, **({"directory": export_dir} if export_dir else {}))
    loaded = time.perf_counter()
    from bench.photos import make_photo
    from bench.procinfo import memory_mb

    photo, _ = make_photo(0)
    analysed = time.perf_counter()
    model.analyse(photo)
    done = time.perf_counter()
    for seed in range(1, photos):
        image, _ = make_photo(seed)
        ml.overlay(image, model.analyse(image, heatmap_max_side=HEATMAP_MAX_SIDE))
    return {
        "import_ms": (imported - start) * 1000,
        "load_ms": (loaded - imported) * 1000,
        "first_analyse_ms": (done - analysed) * 1000,
        "torch_imported": "torch" in sys.modules,
        **memory_mb(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.probe")
    parser.add_argument("checkpoint")
    parser.add_argument("threads", type=int)
    parser.add_argument("--runtime", choices=sorted(MODULES), default="torch")
    parser.add_argument("--photos", type=int, default=1)
    parser.add_argument("--export-dir", default="")
    args = parser.parse_args()
    print(json.dumps(main(args.checkpoint, args.threads, args.runtime, args.photos, args.export_dir)))
