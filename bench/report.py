"""Figures with optional targets, printed as a table and dumped as JSON."""

import json
from dataclasses import asdict, dataclass


@dataclass
class Figure:
    key: str
    label: str
    value: float | None
    unit: str = ""
    target: float | None = None  # upper bound: PASS when value <= target
    note: str = ""

    @property
    def status(self) -> str:
        if self.target is None:
            return ""
        if self.value is None:
            return "n/a"
        return "PASS" if self.value <= self.target else "MISS"


class Report:
    def __init__(self):
        self.figures: list[Figure] = []
        self.info: dict = {}

    def add(self, key, label, value, unit="", target=None, note=""):
        self.figures.append(Figure(key, label, value, unit, target, note))

    def table(self) -> str:
        lines = [f"{key}: {value}" for key, value in self.info.items()]
        header = f"{'figure':<52} {'value':>12} {'unit':<8} {'target':>10} {'':<5} {'key'}"
        lines += ["", header, "-" * len(header)]
        for figure in self.figures:
            value = "-" if figure.value is None else f"{figure.value:.2f}"
            target = "" if figure.target is None else f"<= {figure.target:g}"
            lines.append(
                f"{figure.label:<52} {value:>12} {figure.unit:<8} {target:>10} "
                f"{figure.status:<5} {figure.key}" + (f"  ({figure.note})" if figure.note else "")
            )
        return "\n".join(lines)

    def write_json(self, path):
        figures = {f.key: {**asdict(f), "status": f.status} for f in self.figures}
        with open(path, "w") as handle:
            json.dump({"info": self.info, "figures": figures}, handle, indent=2, default=str)
