"""The case-level flagging rule (``python -m ml case-rule``), fitted on cases formed from the
training photos and written into an existing checkpoint's metadata (``metadata["case_rule"]``,
applied by :mod:`ml.case_rule`).

Cases: an MSLD patient's photos are one case (their patient id). The other sources have no patient
ids: their near-duplicate groups (genital lesions) or files (abdomens) are drawn, within one source,
into pseudo-cases whose sizes follow MSLD's photos-per-patient. Photos of one pseudo-case come from
different people, so they agree less than one patient's photos would: a rule that averages photos is
favoured on them (said in the model card).

Scores: out-of-fold logits of the shipped method's flag head (5-fold CV grouped by case, on the
frozen backbone's features of the whole photo, ``probe_as_is``), calibrated with the checkpoint's
own Platt, so a case score is made of the same probabilities the portal stores.

Rule: each combiner of :data:`ml.case_rule.COMBINERS`, then a case-level Platt and the highest
threshold with case-level sensitivity >= the target. The combiner is chosen by CV over the fitting
cases (most sensitive out of fold, then most specific). The
reported figures come from an outer 5-fold split of the cases: the whole procedure (choice, Platt,
threshold) is fitted on four folds and judged on the fifth, never tuned on it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from ..case_rule import COMBINERS, combine, sigmoid
from ..checkpoint import read_checkpoint, update_metadata
from ..metrics import proportion, roc_auc, threshold_for_sensitivity
from .data import grouped_folds
from .source_study import FOLDS, METHODS, TARGET_SENSITIVITY, _platt, fit_head
from .sources import MPOX, Photo, as_is, backbone, pooled_features, read_sources

METHOD = "probe_as_is"  # the shipped checkpoint's method: whole photo, no augmented views
CASE_SOURCES_WITH_IDS = ("msld_mpox", "msld_chickenpox_measles")


def form_cases(photos: list[Photo], seed: int) -> np.ndarray:
    """Case id per photo: the patient for MSLD; elsewhere pseudo-cases of whole groups of one
    source, sized like MSLD's patients (drawn with ``seed``)."""
    rng = np.random.default_rng(seed)
    cases = np.array([p.group for p in photos], dtype=object)
    msld = [p.group for p in photos if p.source in CASE_SOURCES_WITH_IDS]
    sizes = np.unique(msld, return_counts=True)[1] if msld else np.array([1])
    for source in dict.fromkeys(p.source for p in photos if p.source not in CASE_SOURCES_WITH_IDS):
        groups = sorted({p.group for p in photos if p.source == source})
        order = rng.permutation(len(groups))
        start, index = 0, 0
        case_of = {}
        while start < len(order):
            size = int(rng.choice(sizes))
            for g in order[start : start + size]:
                case_of[groups[g]] = f"{source}:case{index}"
            start, index = start + size, index + 1
        for i, p in enumerate(photos):
            if p.source == source:
                cases[i] = case_of[p.group]
    return cases


def whole_photo_features(photos: list[Photo], images, arch: str, cache_dir: Path, log) -> np.ndarray:
    """Pooled backbone features of each whole photo resized to 224 (the ``as_is`` look), cached."""
    key = hashlib.sha256(
        ("|".join(f"{p.path}:{p.path.stat().st_size}" for p in photos) + f"|{arch}|as_is").encode()
    ).hexdigest()[:16]
    path = Path(cache_dir) / f"case-asis-{key}.pt"
    if path.is_file():
        log(f"features from {path}")
        return torch.load(path, weights_only=True).float().numpy()
    log(f"extracting {arch} features of {len(photos)} whole photos")
    features = pooled_features(backbone(arch), arch, [as_is(image) for image in images]).half()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(features, path)
    log(f"cached {path}")
    return features.float().numpy()


def out_of_fold_logits(features: np.ndarray, is_mpox: np.ndarray, cases: np.ndarray, seed: int) -> np.ndarray:
    cache = {"as_is": torch.as_tensor(features)}
    everyone = np.arange(len(is_mpox))
    oof = np.zeros(len(is_mpox))
    for train, test in grouped_folds(is_mpox, cases, FOLDS, seed):
        head = fit_head(cache, everyone[train], is_mpox.astype(int), 2, METHODS[METHOD])
        oof[test] = head.binary_logit(features[test])
    return oof


def case_scores(probabilities: list[list[float]], how: str) -> np.ndarray:
    return np.array([combine(p, how) for p in probabilities])


def fit_rule(probabilities: list[list[float]], labels: np.ndarray, how: str, target: float) -> dict:
    """Case-level Platt (a, b) and threshold for one combiner, on these cases."""
    a, b = _platt(case_scores(probabilities, how), labels)
    rule = {"combine": how, "a": a, "b": b}
    # the runtime's own arithmetic (ml.case_rule), so the case at the threshold stays flagged there
    return {**rule, "threshold": threshold_for_sensitivity(labels, apply_rule(rule, probabilities), target)}


def apply_rule(rule: dict, probabilities: list[list[float]]) -> np.ndarray:
    return np.array([sigmoid(rule["a"] * combine(p, rule["combine"]) + rule["b"]) for p in probabilities])


def choose_rule(probabilities: list[list[float]], labels: np.ndarray, seed: int, target: float) -> tuple[dict, dict]:
    """The combiner with the best inner-CV sensitivity, then specificity (each fitted to reach
    ``target`` on its inner training cases), refitted on all these cases; and the inner-CV figures
    it was chosen on."""
    inner = {}
    folds = grouped_folds(labels, np.arange(len(labels)), FOLDS, seed)
    for how in COMBINERS:
        flagged = np.zeros(len(labels), dtype=bool)
        for train, test in folds:
            rule = fit_rule([probabilities[i] for i in train], labels[train], how, target)
            flagged[test] = apply_rule(rule, [probabilities[i] for i in test]) >= rule["threshold"]
        inner[how] = {
            "sensitivity": float(flagged[labels].mean()),
            "specificity": float((~flagged[~labels]).mean()),
        }
    best = max(COMBINERS, key=lambda h: (inner[h]["sensitivity"], inner[h]["specificity"]))
    return fit_rule(probabilities, labels, best, target), inner


def _figures(labels: np.ndarray, flagged: np.ndarray, scores: np.ndarray) -> dict:
    return {
        "sensitivity": proportion(int(flagged[labels].sum()), int(labels.sum())),
        "specificity": proportion(int((~flagged[~labels]).sum()), int((~labels).sum())),
        "auc": roc_auc(labels, scores),
    }


def run_case_rule(
    data_root: Path, checkpoint: Path, out: Path, cache_dir: Path, per_source: int | None, seed: int, log
) -> dict:
    metadata, _ = read_checkpoint(checkpoint)
    if (metadata.get("head") or {}).get("method") != METHOD:
        # the photo scores are refitted here on the frozen ImageNet backbone's whole-photo features
        raise SystemExit(
            f"{checkpoint}: the case rule is fitted for checkpoints of `python -m ml sources --ship {METHOD}` "
            f"(frozen ImageNet backbone, whole photo); this one's head is {metadata.get('head')}"
        )
    calibration = metadata.get("calibration") or {"a": 1.0, "b": 0.0}
    photos, images = read_sources(Path(data_root), log, per_source, seed)
    features = whole_photo_features(photos, images, metadata["arch"], cache_dir, log)
    is_mpox = np.array([p.label == MPOX for p in photos])
    cases = form_cases(photos, seed)
    logits = out_of_fold_logits(features, is_mpox, cases, seed)
    photo_p = 1 / (1 + np.exp(-(calibration["a"] * logits + calibration["b"])))

    case_ids = list(dict.fromkeys(cases.tolist()))
    members = {c: np.flatnonzero(cases == c) for c in case_ids}
    probabilities = [photo_p[members[c]].tolist() for c in case_ids]
    if any(is_mpox[members[c]].any() != is_mpox[members[c]].all() for c in case_ids):
        raise ValueError("a case mixes mpox and non-mpox photos")
    labels = np.array([bool(is_mpox[members[c]][0]) for c in case_ids])
    sizes = np.array([len(members[c]) for c in case_ids])
    photo_threshold = float(metadata["threshold"])

    held_out_scores, chosen = np.zeros(len(labels)), []
    flagged = np.zeros(len(labels), dtype=bool)
    for k, (train, test) in enumerate(grouped_folds(labels, np.arange(len(labels)), FOLDS, seed)):
        rule, _ = choose_rule([probabilities[i] for i in train], labels[train], seed, TARGET_SENSITIVITY)
        scores = apply_rule(rule, [probabilities[i] for i in test])
        held_out_scores[test] = scores
        flagged[test] = scores >= rule["threshold"]
        chosen.append(rule["combine"])
        log(f"  outer fold {k + 1}: {rule['combine']}, threshold {rule['threshold']:.4f}")
    any_photo = np.array([max(p) >= photo_threshold for p in probabilities])
    top = np.array([max(p) for p in probabilities])
    multi = sizes > 1
    patients = multi & np.array([c.split(":")[0] in CASE_SOURCES_WITH_IDS for c in case_ids])

    rule, inner = choose_rule(probabilities, labels, seed, TARGET_SENSITIVITY)
    prevalence = float(labels.mean())
    report = {
        "cases": int(len(labels)),
        "mpox_cases": int(labels.sum()),
        "photos": int(len(photos)),
        "cases_with_several_photos": int(multi.sum()),
        "photos_per_case": {str(n): int((sizes == n).sum()) for n in sorted(set(sizes.tolist()))},
        "held_out": {
            "case_rule": _figures(labels, flagged, held_out_scores),
            "any_photo_at_photo_threshold": _figures(labels, any_photo, top),
            "case_rule_several_photos": _figures(labels[multi], flagged[multi], held_out_scores[multi]),
            "any_photo_several_photos": _figures(labels[multi], any_photo[multi], top[multi]),
            "case_rule_msld_patients_several_photos": _figures(
                labels[patients], flagged[patients], held_out_scores[patients]
            ),
            "any_photo_msld_patients_several_photos": _figures(labels[patients], any_photo[patients], top[patients]),
            "combiner_per_outer_fold": chosen,
        },
        "shipped_rule": {**rule, "inner_cv": inner},
        "prevalence": prevalence,
    }
    case_rule = {
        **rule,
        "target_sensitivity": TARGET_SENSITIVITY,
        "prevalence": prevalence,
        "fitted_on": (
            f"{len(labels)} cases ({int(labels.sum())} mpox) formed from {len(photos)} training photos "
            f"(MSLD patients; pseudo-cases of the other sources), out-of-fold photo scores; "
            f"combiner chosen by {FOLDS}-fold CV over the cases"
        ),
        "held_out": {
            "sensitivity": report["held_out"]["case_rule"]["sensitivity"]["value"],
            "specificity": report["held_out"]["case_rule"]["specificity"]["value"],
        },
    }
    version = metadata["version"].removesuffix("-caserule") + "-caserule"
    update_metadata(checkpoint, case_rule=case_rule, prevalence=float(is_mpox.mean()), version=version)
    report["checkpoint"] = {"path": str(checkpoint), "version": version}
    out.mkdir(parents=True, exist_ok=True)
    (out / "case_rule.json").write_text(json.dumps(report, indent=1))
    log(summary(report))
    log(f"wrote {out / 'case_rule.json'} and the case rule into {checkpoint} ({version})")
    return report


def _p(entry: dict) -> str:
    return f"{entry['value']:.1%} [{entry['ci95'][0]:.1%}, {entry['ci95'][1]:.1%}] (n={entry['n']})"


def summary(report: dict) -> str:
    h = report["held_out"]
    rule = report["shipped_rule"]
    lines = [
        f"\n{report['cases']} cases ({report['mpox_cases']} mpox) from {report['photos']} photos; "
        f"photos per case {report['photos_per_case']}",
        f"held out ({FOLDS}-fold over cases; rule chosen and fitted on the other folds): "
        f"combiner per fold {h['combiner_per_outer_fold']}",
        "  rule | sensitivity | specificity | AUC",
    ]
    for name in (
        "case_rule",
        "any_photo_at_photo_threshold",
        "case_rule_several_photos",
        "any_photo_several_photos",
        "case_rule_msld_patients_several_photos",
        "any_photo_msld_patients_several_photos",
    ):
        f = h[name]
        lines.append(f"  {name} | {_p(f['sensitivity'])} | {_p(f['specificity'])} | {f['auc']:.3f}")
    lines.append(
        f"shipped: {rule['combine']}, P = sigmoid({rule['a']:.3f} x score {rule['b']:+.3f}), threshold "
        f"{rule['threshold']:.4f}, training case prevalence {report['prevalence']:.3f}; inner CV {rule['inner_cv']}"
    )
    return "\n".join(lines)
