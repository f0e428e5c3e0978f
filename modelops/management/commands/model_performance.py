import json as json_module
from datetime import date
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from modelops import performance
from modelops.selectors import model_versions_to_measure
from registry.models import ModelVersion


def _share(figure):
    if not figure["n"]:
        return "—"
    low, high = figure["ci95"]
    return f"{figure['value']:.3f} [{low:.3f}, {high:.3f}] ({figure['successes']}/{figure['n']})"


class Command(BaseCommand):
    help = (
        "Live performance of model versions on lab-confirmed cases (the figures of the staff "
        "performance page): prints them and, with --json, writes them."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        """`--version` names a model version here, replacing Django's own --version flag."""
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--version", help="One model version (default: every version that made predictions).")
        parser.add_argument("--json", type=Path, help="Write the figures here as JSON.")
        parser.add_argument("--start", type=date.fromisoformat, help="First appointment date, YYYY-MM-DD.")
        parser.add_argument("--end", type=date.fromisoformat, help="Last appointment date, YYYY-MM-DD.")
        parser.add_argument("--clinic", type=int, help="Clinic site id.")

    def handle(self, *args, version=None, json=None, start=None, end=None, clinic=None, **options):
        versions = model_versions_to_measure()
        if version:
            versions = ModelVersion.objects.filter(version=version)
            if not versions:
                raise CommandError(f"No model version {version!r}.")
        filters = {"start": start, "end": end, "clinic_id": clinic}
        reports = [performance.model_performance(model_version, **filters).figures for model_version in versions]
        for figures in reports:
            self._print(figures)
        if json is not None:
            json.parent.mkdir(parents=True, exist_ok=True)
            json.write_text(_dumps(performance.json_ready({"versions": reports})))
            self.stdout.write(f"wrote {json}")

    def _print(self, f):
        write = self.stdout.write
        write(f"\n{f['model_version']} ({f['status']}), threshold {f['threshold']:.4f}")
        write(
            f"  lab-confirmed cases {f['confirmed_cases']}, scored {f['scored_cases']}, assessed {f['assessed_cases']} "
            f"({f['positives']} positive, {f['negatives']} negative)"
        )
        if f["not_assessable"] is not None:
            write(f"  not assessable {_share(f['not_assessable'])}")
        if not f["enough"]:
            write(f"  too few cases: figures need {f['min_confirmed_cases']} with both results")
        table = f["at_threshold"]
        write(f"  AUC {f['auc']:.3f}   TP {table['tp']} FP {table['fp']} FN {table['fn']} TN {table['tn']}")
        for name in ("sensitivity", "specificity", "ppv", "npv"):
            write(f"  {name:12s} {_share(table[name])}")
        clinicians = f["clinicians"]
        write(
            f"  clinicians ({clinicians['n']} decided): sensitivity {_share(clinicians['sensitivity'])}, "
            f"specificity {_share(clinicians['specificity'])}"
        )
        write(f"  clinician-model agreement {_share(f['agreement']['agree'])}, kappa {f['agreement']['kappa']:.3f}")
        if f["alert"]:
            write(self.style.ERROR(f"  ALERT: {f['alert']}"))


def _dumps(value):
    return json_module.dumps(value, indent=1, allow_nan=False)
