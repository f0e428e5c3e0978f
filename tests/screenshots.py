"""Where the browser tests of the documented pages write their screenshots: out/screenshots/ (ignored
by git) on every run, docs/screenshots/ (committed, shown in the docs site) only when asked for with
UPDATE_SCREENSHOTS=1, so an ordinary test run never changes the documentation."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def screenshot_dir():
    folder = ROOT / ("docs" if os.environ.get("UPDATE_SCREENSHOTS") == "1" else "out") / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
