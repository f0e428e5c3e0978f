"""Fresh-process probe: import ml, load the checkpoint, analyse one photo; prints JSON.

Run as ``python -m bench.probe CHECKPOINT THREADS`` so the figures are those of a new worker process.
"""

import json
import sys
import time


def main(checkpoint: str, threads: int) -> dict:
    start = time.perf_counter()

    import ml

    ml.configure_threads(threads)
    imported = time.perf_counter()
    model = ml.load(checkpoint)
    loaded = time.perf_counter()
    from bench.photos import make_photo
    from bench.procinfo import memory_mb

    photo, _ = make_photo(0)
    analysed = time.perf_counter()
    model.analyse(photo)
    done = time.perf_counter()
    return {
        "import_ms": (imported - start) * 1000,
        "load_ms": (loaded - imported) * 1000,
        "first_analyse_ms": (done - analysed) * 1000,
        **memory_mb(),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]))))
