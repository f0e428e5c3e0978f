"""``python -m bench pages``: a staff page's first view in a fresh web process (issue 23).

Each run is a new interpreter that boots as a WSGI server does (settings, apps, URLs, middleware),
signs a staff member in, then times the first and the second GET of the page, and lists the heavy
libraries (matplotlib, scikit-learn, SciPy, torch) the first view imported. Uses the database the
environment names (`DATABASE_URL`, else the quickstart's SQLite file), so seed it first:
`manage.py seed_demo`. Prints the median of `--runs` runs.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HEAVY = ("matplotlib", "sklearn", "scipy", "torch")


def probe(path: str, username: str) -> dict:
    start = time.perf_counter()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import resolve

    client = Client()
    client.handler.load_middleware()  # as get_wsgi_application() does when a server starts
    resolve(path)  # a server resolves its URLconf on the first request of any page; not this page's cost
    client.force_login(get_user_model().objects.get(username=username))
    booted = time.perf_counter()
    first = client.get(path, HTTP_HOST="localhost")
    first_done = time.perf_counter()
    second = client.get(path, HTTP_HOST="localhost")
    second_done = time.perf_counter()
    assert first.status_code == second.status_code == 200, (first.status_code, second.status_code)
    return {
        "boot_s": booted - start,
        "first_s": first_done - booted,
        "second_s": second_done - first_done,
        "heavy_imported": [name for name in HEAVY if name in sys.modules],
    }


def main(argv) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench pages", description=__doc__)
    parser.add_argument("--path", default="/staff/performance/", help="page to time (default the performance page)")
    parser.add_argument("--username", default="clinician", help="staff member who views it (seed_demo's clinician)")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes (default 3)")
    args = parser.parse_args(argv)
    runs = []
    for _ in range(args.runs):
        out = subprocess.run(
            [sys.executable, "-m", "bench.pages", "--probe", args.path, args.username],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    load = os.getloadavg()
    print(f"{args.path} as {args.username}, {args.runs} fresh processes, load average {load[0]:.2f} {load[1]:.2f}")
    for key in ("boot_s", "first_s", "second_s"):
        values = [run[key] for run in runs]
        print(f"  {key:<9} median {statistics.median(values):.2f} s  (runs: {', '.join(f'{v:.2f}' for v in values)})")
    print(f"  heavy libraries loaded in the process by then: {', '.join(runs[0]['heavy_imported']) or 'none'}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--probe"]:
        print(json.dumps(probe(sys.argv[2], sys.argv[3])))
    else:
        raise SystemExit(main(sys.argv[1:]))
