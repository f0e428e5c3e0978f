"""Process memory, CPU time and children from /proc (no psutil)."""

import os
from pathlib import Path

FIELDS = {"VmRSS": "rss_mb", "RssAnon": "rss_anon_mb", "RssFile": "rss_file_mb", "VmHWM": "hwm_mb"}


def memory_mb(pid: int | str = "self") -> dict[str, float]:
    """Resident memory of a process in MB: total now (VmRSS), its anonymous (private heap) and
    file-backed (mapped libraries) parts, and the peak (VmHWM)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in FIELDS:
            fields[key] = int(rest.split()[0]) * 1024 / 1e6  # KiB -> MB
    return {name: fields[key] for key, name in FIELDS.items()}


def children(pid: int) -> list[int]:
    """Direct child process ids of ``pid``."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time a process has used so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
