"""Source-aware evaluation of linear heads on cached backbone features (``python -m ml sources``).

Every mpox photo comes from one source (MSLD), so a model given negatives from other sources can
learn "does not look like MSLD = not mpox". Grouped cross-validation cannot see that; these checks
can, and every method is judged by them:

- ``in_distribution``: grouped 5-fold CV over all photos (groups: MSLD patient, abdomen file,
  near-duplicate genital photos); AUC mpox vs the rest, flag rates per source at the threshold of
  out-of-fold sensitivity 0.95, 95 % CIs (grouped bootstrap for AUC, Wilson for shares).
- ``source_held_out``: for each negative source, the same CV with that source left out of training;
  every fold model scores the left-out source (mean logit), which is then compared with the mpox
  photos' out-of-fold scores (AUC) and flagged at the threshold of that run.
- ``style``: the same photos re-made in other sources' looks (``ml.research.sources.STYLES``), scored
  by the fold model that never saw them: the shift of P(mpox) and mpox caught under each look.
- ``trap``: the issue's probe (whole photos, each negative source added) on these splits.

Methods (``METHODS``): which look trains and tests the head, whether augmented views join, whether
directions of look changes are projected out of the features first, and whether the backbone's
last stage is fine-tuned (``ml.research.finetune``). Nothing here tunes on what it reports: every
setting is fixed before any run and the threshold comes from out-of-fold scores of the training
photos only. ``python -m ml sources-compare`` runs two backbones on the same folds
(``paired_comparison``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..metrics import grouped_bootstrap, proportion, roc_auc, threshold_for_sensitivity
from .data import grouped_folds
from .heads import WEIGHT_DECAY, SoftmaxHead
from .sources import CLASSES, MPOX, SOURCES, STYLES, Photo

FOLDS = 5
TARGET_SENSITIVITY = 0.95
N_BOOT = 1000
_n_boot = N_BOOT  # resamples of this run (``run_sources``'s ``n_boot``)
# The style-invariance bound, stated before any run: mean shift of P(mpox) within +-0.10 and mpox
# caught under every look >= 0.90.
STYLE_MEAN_SHIFT_BOUND = 0.10
STYLE_SENSITIVITY_BOUND = 0.90


@dataclass(frozen=True)
class Method:
    train_look: str  # "as_is" | "harmonised"
    augmented: bool  # augmented views of the harmonised photo join the training rows
    # directions of look changes projected out of the features before the head is fitted:
    # "augmented" (the training photos' augmented views and as-is crops against their harmonised
    # crops) or "restyled" (the training MSLD photos re-made in the other sources' looks)
    nuisance: str | None = None
    nuisance_dims: int = 16  # fixed before any run
    # > 0: the backbone's last stage is trained too, with an mpox-vs-rest logit, for this many
    # epochs (``ml.research.finetune``; needs the trunk cache)
    finetune_epochs: int = 0


METHODS = {
    "probe_as_is": Method("as_is", False),
    "probe_as_is+aug": Method("as_is", True),
    "probe_as_is-augmented_directions": Method("as_is", False, nuisance="augmented"),
    "probe_as_is-restyled_directions": Method("as_is", False, nuisance="restyled"),
    "finetune_tail": Method("as_is", False, finetune_epochs=8),
    "harmonised": Method("harmonised", False),
    "harmonised+aug": Method("harmonised", True),
}


def training_rows(cache: dict, idx: np.ndarray, targets: np.ndarray, method: Method) -> tuple[np.ndarray, np.ndarray]:
    x = [cache[method.train_look][idx].float().numpy()]
    y = [targets[idx]]
    if method.augmented:
        views = cache["augmented"][idx].float().numpy()
        x.append(views.reshape(-1, views.shape[-1]))
        y.append(np.repeat(targets[idx], views.shape[1]))
    return np.concatenate(x), np.concatenate(y)


def nuisance_rows(cache: dict, idx: np.ndarray, method: Method) -> np.ndarray | None:
    """Feature differences between looks of the same training photos (``Method.nuisance``)."""
    if method.nuisance is None:
        return None
    base = cache["harmonised"][idx].float()
    if method.nuisance == "augmented":
        views = cache["augmented"][idx].float() - base[:, None]
        rows = [views.reshape(-1, views.shape[-1]), cache["as_is"][idx].float() - base]
    elif method.nuisance == "restyled":
        styled = cache["styled"][idx].numpy()
        rows = [cache[f"style_{s}"][idx][styled].float() - base[styled] for s in STYLES]
    else:
        raise ValueError(f"unknown nuisance {method.nuisance!r}")
    return torch.cat(rows).numpy()


def fit_head(cache: dict, idx: np.ndarray, targets: np.ndarray, n_classes: int, method: Method) -> SoftmaxHead:
    """The method's linear head on the training photos ``idx``."""
    return SoftmaxHead(n_classes).fit(
        *training_rows(cache, idx, targets, method),
        nuisance=nuisance_rows(cache, idx, method),
        dims=method.nuisance_dims,
    )


def sigmoid(x):
    return 1 / (1 + np.exp(-np.asarray(x, dtype=float)))


# ---------------------------------------------------------------- runs


def cross_validated(
    cache: dict,
    idx: np.ndarray,
    is_mpox: np.ndarray,
    groups: np.ndarray,
    method: Method,
    seed: int,
    score_also: np.ndarray | None = None,
) -> dict:
    """Grouped CV over ``idx``: OOF logits of ``idx`` (test look = the method's), OOF logits of every
    style copy, and the mean logit of the fold models over ``score_also`` (photos outside ``idx``)."""
    test_look = method.train_look
    oof = np.zeros(len(is_mpox))
    styles = {s: np.zeros(len(is_mpox)) for s in STYLES}
    outside = np.zeros(len(is_mpox))
    for train, test in grouped_folds(is_mpox[idx], groups[idx], FOLDS, seed):
        score = _fold_scorer(cache, idx[train], is_mpox.astype(int), method, seed)
        rows = idx[test]
        oof[rows] = score(test_look, rows)
        for s in STYLES:
            styles[s][rows] = score(f"style_{s}", rows)
        if score_also is not None and len(score_also):
            outside[score_also] += score(test_look, score_also) / FOLDS
    threshold = threshold_for_sensitivity(is_mpox[idx], oof[idx], TARGET_SENSITIVITY)
    return {"oof": oof, "styles": styles, "outside": outside, "threshold": threshold}


def _fold_scorer(cache: dict, rows: np.ndarray, targets: np.ndarray, method: Method, seed: int):
    """The method's mpox logit fitted on ``rows``: ``score(look, photos) -> logits``."""
    if method.finetune_epochs:
        from .finetune import FineTunedTail

        trunk = cache["trunk"]
        model = FineTunedTail(trunk, rows, targets, method.finetune_epochs, seed)
        return lambda look, photos: model.binary_logit(trunk[look][photos])
    head = fit_head(cache, rows, targets, 2, method)
    return lambda look, photos: head.binary_logit(cache[look][photos].float().numpy())


def _auc_ci(labels, scores, groups, seed) -> dict:
    labels, scores = np.asarray(labels), np.asarray(scores)
    value = roc_auc(labels, scores)
    ci = grouped_bootstrap(lambda i: roc_auc(labels[i], scores[i]), groups, _n_boot, seed)
    return {"value": value, "ci95": ci, "n": int(len(labels))}


def _flag_rates(idx_by_source: dict[str, np.ndarray], logits: np.ndarray, threshold: float) -> dict:
    return {name: proportion(int((logits[idx] >= threshold).sum()), len(idx)) for name, idx in idx_by_source.items()}


def source_runs(photos: list[Photo], cache: dict, method: Method, seed: int) -> tuple[dict, dict[str, dict]]:
    """The grouped-CV run over every photo, and for each negative source the run without it (its
    photos scored by the fold models)."""
    sources = np.array([p.source for p in photos])
    groups = np.array([p.group for p in photos])
    is_mpox = np.array([p.label == MPOX for p in photos])
    run = cross_validated(cache, np.arange(len(photos)), is_mpox, groups, method, seed)
    without = {}
    for name in _negative_sources(photos):
        left = np.flatnonzero(sources == name)
        keep = np.flatnonzero(sources != name)
        without[name] = cross_validated(cache, keep, is_mpox, groups, method, seed, score_also=left)
    return run, without


def _negative_sources(photos: list[Photo]) -> list[str]:
    return [s.name for s in SOURCES if any(p.source == s.name for p in photos) and s.label != MPOX]


def held_out_sets(photos: list[Photo], run: dict, without: dict[str, dict]) -> dict[str, tuple]:
    """(labels, scores, groups) of mpox against each held-out source, and ``"pooled"``: the full
    run's mpox out-of-fold scores against every source scored by the run without it."""
    sources = np.array([p.source for p in photos])
    groups = np.array([p.group for p in photos])
    mpox = np.flatnonzero([p.label == MPOX for p in photos])
    sets = {}
    for name, run_without in without.items():
        left = np.flatnonzero(sources == name)
        sets[name] = (
            np.concatenate([np.ones(len(mpox)), np.zeros(len(left))]),
            np.concatenate([run_without["oof"][mpox], run_without["outside"][left]]),
            np.concatenate([groups[mpox], groups[left]]),
        )
    if without:
        lefts = [np.flatnonzero(sources == name) for name in without]
        sets["pooled"] = (
            np.concatenate([np.ones(len(mpox))] + [np.zeros(len(left)) for left in lefts]),
            np.concatenate([run["oof"][mpox]] + [w["outside"][left] for w, left in zip(without.values(), lefts)]),
            np.concatenate([groups[mpox]] + [groups[left] for left in lefts]),
        )
    return sets


def evaluate_method(photos: list[Photo], cache: dict, method: Method, seed: int, log) -> dict:
    sources = np.array([p.source for p in photos])
    groups = np.array([p.group for p in photos])
    is_mpox = np.array([p.label == MPOX for p in photos])
    idx_by_source = {s.name: np.flatnonzero(sources == s.name) for s in SOURCES if (sources == s.name).any()}

    run, without = source_runs(photos, cache, method, seed)
    oof, threshold = run["oof"], run["threshold"]
    report = {
        "in_distribution": {
            "auc": _auc_ci(is_mpox, oof, groups, seed),
            "threshold_logit": float(threshold),
            "flagged": _flag_rates(idx_by_source, oof, threshold),
        }
    }
    log(f"  in-distribution AUC {report['in_distribution']['auc']['value']:.3f}")
    sets = held_out_sets(photos, run, without)
    held_out = {}
    for name, run_without in without.items():
        left = idx_by_source[name]
        held_out[name] = {
            "auc_mpox_vs_source": _auc_ci(*sets[name], seed),
            "flagged": proportion(int((run_without["outside"][left] >= run_without["threshold"]).sum()), len(left)),
            "flagged_when_trained_on_it": report["in_distribution"]["flagged"][name],
        }
        log(
            f"  held out {name}: AUC {held_out[name]['auc_mpox_vs_source']['value']:.3f}, flagged "
            f"{held_out[name]['flagged']['value']:.1%} (in training: "
            f"{held_out[name]['flagged_when_trained_on_it']['value']:.1%})"
        )
    report["source_held_out"] = held_out
    if "pooled" in sets:
        report["source_held_out_pooled_auc"] = _auc_ci(*sets["pooled"], seed)
    report["style"] = style_report(run, is_mpox, cache["styled"].numpy(), groups, threshold, seed)
    return report


def paired_comparison(photos: list[Photo], caches: dict[str, dict], seed: int, n_boot: int = N_BOOT) -> dict:
    """Two backbones' ``probe_as_is`` on the same photos, folds and grouped resamples: AUC in
    distribution, pooled source-held-out and per held-out source, each backbone's and the paired
    difference (second minus first) with its 95 % CI."""
    (first, a), (second, b) = caches.items()
    method = METHODS["probe_as_is"]
    runs = {name: source_runs(photos, cache, method, seed) for name, cache in ((first, a), (second, b))}
    groups = np.array([p.group for p in photos])
    is_mpox = np.array([p.label == MPOX for p in photos]).astype(float)
    sets = {"in_distribution": {name: (is_mpox, run["oof"], groups) for name, (run, _) in runs.items()}}
    for name, (run, without) in runs.items():
        for key, triple in held_out_sets(photos, run, without).items():
            sets.setdefault(key, {})[name] = triple
    report = {"first": first, "second": second, "n_boot": n_boot}
    for key, pair in sets.items():
        labels, x, set_groups = pair[first]
        y = pair[second][1]
        report[key] = {
            first: roc_auc(labels, x),
            second: roc_auc(labels, y),
            "difference": roc_auc(labels, y) - roc_auc(labels, x),
            "ci95": grouped_bootstrap(
                lambda i, labels=labels, x=x, y=y: roc_auc(labels[i], y[i]) - roc_auc(labels[i], x[i]),
                set_groups,
                n_boot,
                seed,
            ),
        }
    return report


def style_report(
    run: dict, is_mpox: np.ndarray, styled: np.ndarray, groups: np.ndarray, threshold: float, seed: int
) -> dict:
    """Per look, over the restyled photos (``styled``): mean shift of P(mpox) (uncalibrated sigmoid
    of the logit) for mpox and the rest, with grouped-bootstrap CIs, and mpox caught under the look
    at the run's threshold."""
    plain = sigmoid(run["oof"])
    out = {"bound": {"mean_shift_within": STYLE_MEAN_SHIFT_BOUND, "mpox_caught_at_least": STYLE_SENSITIVITY_BOUND}}
    mpox = np.flatnonzero(is_mpox & styled)
    rest = np.flatnonzero(~is_mpox & styled)
    for style in STYLES:
        shift = sigmoid(run["styles"][style]) - plain
        caught = run["styles"][style][mpox] >= threshold
        entry = {}
        for name, idx in (("mpox", mpox), ("not_mpox", rest)):
            values = shift[idx]
            entry[f"mean_shift_{name}"] = {
                "value": float(values.mean()),
                "ci95": grouped_bootstrap(lambda i, values=values: float(values[i].mean()), groups[idx], _n_boot, seed),
            }
        entry["abs_shift_p95"] = float(np.quantile(np.abs(shift), 0.95))
        entry["mpox_caught"] = proportion(int(caught.sum()), len(mpox))
        entry["flagged_not_mpox"] = proportion(int((run["styles"][style][rest] >= threshold).sum()), len(rest))
        entry["within_bound"] = bool(
            abs(entry["mean_shift_mpox"]["value"]) <= STYLE_MEAN_SHIFT_BOUND
            and abs(entry["mean_shift_not_mpox"]["value"]) <= STYLE_MEAN_SHIFT_BOUND
            and entry["mpox_caught"]["value"] >= STYLE_SENSITIVITY_BOUND
        )
        out[style] = entry
    return out


TRAP_SETS = {  # the probe: MSLD negatives, then each new source added as negatives
    "MSLD only": ("msld_mpox", "msld_chickenpox_measles"),
    "+ genital lesions": ("msld_mpox", "msld_chickenpox_measles", "genital_herpes", "genital_warts", "syphilis"),
    "+ abdomens": ("msld_mpox", "msld_chickenpox_measles", "healthy_abdomen"),
    "+ both": tuple(s.name for s in SOURCES),
}


def trap_table(photos: list[Photo], cache: dict, method: Method, seed: int) -> dict:
    """Per training set: grouped CV AUC, flag shares of healthy skin and of herpes/warts/syphilis
    (out-of-fold when in training, else scored by the fold models), and mpox caught when re-made in
    the other looks (the proxy for mpox from a new source)."""
    sources = np.array([p.source for p in photos])
    groups = np.array([p.group for p in photos])
    is_mpox = np.array([p.label == MPOX for p in photos])
    genital = np.isin(sources, ("genital_herpes", "genital_warts", "syphilis"))
    abdomen = sources == "healthy_abdomen"
    table = {}
    for name, included in TRAP_SETS.items():
        idx = np.flatnonzero(np.isin(sources, included))
        if not len(idx) or not is_mpox[idx].any():
            continue
        outside = np.flatnonzero(~np.isin(sources, included))
        run = cross_validated(cache, idx, is_mpox, groups, method, seed, score_also=outside)
        scores = run["oof"].copy()
        scores[outside] = run["outside"][outside]
        row = {"grouped_cv_auc": _auc_ci(is_mpox[idx], run["oof"][idx], groups[idx], seed)}
        for label, mask in (("healthy_skin_flagged", abdomen), ("genital_flagged", genital)):
            row[label] = proportion(int((scores[mask] >= run["threshold"]).sum()), int(mask.sum()))
        mpox = np.flatnonzero(is_mpox)
        caught = np.concatenate([run["styles"][s][mpox] >= run["threshold"] for s in STYLES])
        row["mpox_caught_in_other_looks"] = proportion(int(caught.sum()), len(caught))
        table[name] = row
    return table


def run_sources(
    photos: list[Photo],
    cache: dict,
    methods: list[str],
    seed: int,
    out: Path,
    log,
    checkpoint: Path | None = None,
    ship_method: str = "harmonised+aug",
    arch: str = "efficientnet_lite0",
    n_boot: int = N_BOOT,
    per_source: int | None = None,
) -> dict:
    """Every method's checks; with ``checkpoint``, the shipped method fitted on every photo (drawn
    with at most ``per_source`` photos per source, recorded in the checkpoint)."""
    global _n_boot
    _n_boot = n_boot
    report = {
        "folds": FOLDS,
        "target_sensitivity": TARGET_SENSITIVITY,
        "weight_decay": WEIGHT_DECAY,
        "n_boot": n_boot,
        "sources": {s.name: int(sum(p.source == s.name for p in photos)) for s in SOURCES},
        "groups": int(len({p.group for p in photos})),
        "methods": {},
        "trap": {},
    }
    for name in methods:
        log(f"method {name}")
        report["methods"][name] = evaluate_method(photos, cache, METHODS[name], seed, log)
        if not METHODS[name].finetune_epochs:  # the trap's 20 more fits are left out for fine-tuning
            report["trap"][name] = trap_table(photos, cache, METHODS[name], seed)
    report["differential"] = differential_report(photos, cache, METHODS[ship_method], seed)
    if checkpoint is not None:
        report["checkpoint"] = ship(checkpoint, photos, cache, ship_method, arch, seed, report, log, per_source)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sources.json").write_text(json.dumps(report, indent=1))
    log(summary(report))
    log(f"wrote {out / 'sources.json'}")
    return report


def differential_report(photos: list[Photo], cache: dict, method: Method, seed: int) -> dict:
    """Grouped-CV accuracy of the differential head (top-1 and top-3) and its confusion matrix."""
    targets = np.array([CLASSES.index(p.label) for p in photos])
    groups = np.array([p.group for p in photos])
    everyone = np.arange(len(photos))
    probabilities = np.zeros((len(photos), len(CLASSES)))
    for train, test in grouped_folds(targets, groups, FOLDS, seed):
        head = fit_head(cache, everyone[train], targets, len(CLASSES), method)
        logits = head.logits(cache[method.train_look][test].float().numpy())
        probabilities[test] = torch.softmax(torch.as_tensor(logits), dim=1).numpy()
    ranked = np.argsort(-probabilities, axis=1)
    top1 = ranked[:, 0] == targets
    top3 = (ranked[:, :3] == targets[:, None]).any(axis=1)
    confusion = np.zeros((len(CLASSES), len(CLASSES)), dtype=int)
    for t, p in zip(targets, ranked[:, 0]):
        confusion[t, p] += 1
    return {
        "classes": list(CLASSES),
        "top1": proportion(int(top1.sum()), len(top1)),
        "top3": proportion(int(top3.sum()), len(top3)),
        "top1_by_class": {
            c: proportion(int(top1[targets == k].sum()), int((targets == k).sum()))
            for k, c in enumerate(CLASSES)
            if (targets == k).any()
        },
        "confusion_rows_true_columns_predicted": confusion.tolist(),
    }


def _p(entry: dict) -> str:
    return f"{entry['value']:.1%} [{entry['ci95'][0]:.1%}, {entry['ci95'][1]:.1%}] (n={entry['n']})"


def _a(entry: dict) -> str:
    return f"{entry['value']:.3f} [{entry['ci95'][0]:.3f}, {entry['ci95'][1]:.3f}]"


def summary(report: dict) -> str:
    lines = [
        f"\nSource-aware evaluation ({report['folds']}-fold grouped CV, threshold at out-of-fold "
        f"sensitivity {report['target_sensitivity']}, 95% CIs)"
    ]
    for name, m in report["methods"].items():
        ind = m["in_distribution"]
        lines.append(
            f"\n{name}: in-distribution AUC {_a(ind['auc'])}"
            + (
                f"; source-held-out pooled AUC {_a(m['source_held_out_pooled_auc'])}"
                if "source_held_out_pooled_auc" in m
                else ""
            )
        )
        lines.append("  source | flagged in-distribution (OOF) | flagged when held out | AUC mpox vs held-out source")
        for source, rate in ind["flagged"].items():
            held = m["source_held_out"].get(source)
            lines.append(
                f"  {source} | {_p(rate)} | "
                + (f"{_p(held['flagged'])} | {_a(held['auc_mpox_vs_source'])}" if held else "- | -")
            )
        if "style" in m:
            lines.append("  look | mean shift P(mpox), mpox | mean shift, not mpox | mpox caught | within bound")
            for style in STYLES:
                s = m["style"][style]
                lines.append(
                    f"  {style} | {s['mean_shift_mpox']['value']:+.3f} | {s['mean_shift_not_mpox']['value']:+.3f} "
                    f"| {_p(s['mpox_caught'])} | {s['within_bound']}"
                )
    for name, table in report["trap"].items():
        lines.append(
            f"\ntrap probe, method {name}: training negatives | grouped CV AUC | healthy skin flagged "
            "| herpes/warts/syphilis flagged | mpox caught in other looks"
        )
        for row_name, row in table.items():
            lines.append(
                f"  {row_name} | {_a(row['grouped_cv_auc'])} | {_p(row['healthy_skin_flagged'])} | "
                f"{_p(row['genital_flagged'])} | "
                + (_p(row["mpox_caught_in_other_looks"]) if "mpox_caught_in_other_looks" in row else "-")
            )
    d = report["differential"]
    lines.append(f"\ndifferential ({', '.join(d['classes'])}): top-1 {_p(d['top1'])}, top-3 {_p(d['top3'])}")
    for c, rate in d["top1_by_class"].items():
        lines.append(f"  {c}: top-1 {_p(rate)}")
    if "checkpoint" in report:
        c = report["checkpoint"]
        lines.append(
            f"\nshipped {c['version']}: threshold {c['threshold']:.4f}, OOF sensitivity "
            f"{c['oof_sensitivity']:.3f}, specificity {c['oof_specificity']:.3f}"
        )
        for name, entry in c["assessment"]["lesion_check_oof"].items():
            lines.append(f"  lesion check {name}: " + (_a(entry) if name == "auc" else _p(entry)))
        lines.append(
            f"  lesion photos within the kNN distance limit: {_p(c['assessment']['lesion_photos_within_distance'])}"
        )
        for name, entry in c["assessment"]["assessable_by_source"].items():
            lines.append(
                f"  judged assessable by the whole rule (distances, lesion check out of sample), {name}: {_p(entry)}"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------- the shipped checkpoint

KNN_K = 5
ASSESSABLE_QUANTILE = 0.98  # lesion photos within the OOD distance limit (leave-group-out distances)
LESION_CHECK_QUANTILE = 0.01  # lesion-present score limit: 1st percentile of out-of-fold lesion scores
LESION_FREE = ("healthy_skin",)


def _platt(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Platt scaling (a, b) of out-of-fold logits."""
    x = torch.as_tensor(logits, dtype=torch.float32)[:, None]
    y = torch.as_tensor(labels.astype(int))
    a, b = torch.ones(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    optimiser = torch.optim.LBFGS([a, b], lr=1, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(a * x[:, 0] + b, y.float())
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(a.detach()), float(b.detach())


def assessment_rule(photos: list[Photo], cache: dict, method: Method, seed: int) -> tuple[dict, dict, dict]:
    """The assessability rule fitted on lesion photos of every source: quality limits (measured on
    the method's look, the crop the network sees), the kNN bank (the method's look) and its distance
    limit (leave-group-out distances), and the lesion-present check (lesion photos against healthy
    skin, the method's training rows), its limit from out-of-fold scores. Each quality and distance
    limit is fitted per lesion source and the loosest is kept, so that no limit turns away more than
    its share of any one source's lesion photos (a small source such as MSLD is not judged by the
    look of the large ones). Returns (rule, extra state, report)."""
    from ..assessment import BANK_KEY, LESION_KEY, Assessor, fit_quality_thresholds, normalise

    groups = np.array([p.group for p in photos])
    sources = np.array([p.source for p in photos])
    lesion = np.array([p.label not in LESION_FREE for p in photos])
    lesion_idx = np.flatnonzero(lesion)
    quality = cache["quality"][method.train_look]
    by_source = [
        fit_quality_thresholds([quality[i] for i in lesion_idx[sources[lesion_idx] == name]])
        for name in dict.fromkeys(sources[lesion_idx])
    ]
    limits = {key: (min if key.startswith("min_") else max)(rule[key] for rule in by_source) for key in by_source[0]}
    bank = normalise(cache[method.train_look][lesion_idx].float())
    similarity = bank @ bank.T
    same_group = torch.as_tensor(groups[lesion_idx][:, None] == groups[lesion_idx][None, :])
    similarity[same_group] = -2.0
    distances = (1 - similarity.topk(KNN_K, dim=1).values.mean(dim=1)).numpy()
    max_distance = max(
        float(np.quantile(distances[sources[lesion_idx] == name], ASSESSABLE_QUANTILE))
        for name in dict.fromkeys(sources[lesion_idx])
    )

    everyone = np.arange(len(photos))
    oof = np.zeros(len(photos))
    for train, test in grouped_folds(lesion.astype(int), groups, FOLDS, seed):
        head = fit_head(cache, everyone[train], lesion.astype(int), 2, method)
        oof[test] = head.binary_logit(cache[method.train_look][test].float().numpy())
    min_lesion = float(np.quantile(oof[lesion_idx], LESION_CHECK_QUANTILE))
    head = fit_head(cache, everyone, lesion.astype(int), 2, method)
    weight, bias = head.raw_weights()
    rule = {
        **limits,
        "knn_k": KNN_K,
        "max_knn_distance": max_distance,
        "min_lesion_score": min_lesion,
        "lesion_bias": float(bias[1] - bias[0]),
        "fitted_on": f"lesion photos of every source (MSLD, genital lesions), look {method.train_look}, "
        "the loosest of the per-source limits; lesion-present check against healthy abdomens",
    }
    healthy = ~lesion
    # the whole rule per photo, out of sample where it can be: leave-group-out distances for lesion
    # photos (healthy ones are not in the bank), out-of-fold lesion scores
    distance = np.zeros(len(photos))
    distance[lesion_idx] = distances
    healthy_rows = normalise(cache[method.train_look][healthy].float())
    distance[healthy] = (1 - (healthy_rows @ bank.T).topk(KNN_K, dim=1).values.mean(dim=1)).numpy()
    assessor = Assessor(rule)
    assessable = np.array([assessor.reason(quality[i], distance[i], oof[i]) == "" for i in everyone])
    report = {
        "assessable_by_source": {
            name: proportion(int(assessable[sources == name].sum()), int((sources == name).sum()))
            for name in dict.fromkeys(sources)
        },
        "lesion_photos_within_distance": proportion(int((distances <= max_distance).sum()), len(distances)),
        "lesion_check_oof": {
            "lesion_photos_passing": proportion(int((oof[lesion_idx] >= min_lesion).sum()), len(lesion_idx)),
            "healthy_skin_judged_no_lesion": proportion(int((oof[healthy] < min_lesion).sum()), int(healthy.sum())),
            "auc": _auc_ci(lesion, oof, groups, seed),
        },
    }
    extra = {BANK_KEY: bank.half(), LESION_KEY: (weight[1] - weight[0]).float()}
    return rule, extra, report


def ship(
    path: Path,
    photos: list[Photo],
    cache: dict,
    method_name: str,
    arch: str,
    seed: int,
    report: dict,
    log,
    per_source: int | None = None,
) -> dict:
    """Fits the shipped heads on every photo and writes the checkpoint: the mpox flag head in the
    network (Grad-CAM explains it), Platt calibration and threshold from out-of-fold logits, the
    differential head and the assessability rule as extra state."""
    import time as _time

    from ..checkpoint import make_metadata, save_checkpoint
    from ..differential import BIAS_KEY, WEIGHT_KEY
    from .sources import backbone

    method = METHODS[method_name]
    groups = np.array([p.group for p in photos])
    is_mpox = np.array([p.label == MPOX for p in photos])
    everyone = np.arange(len(photos))
    run = cross_validated(cache, everyone, is_mpox, groups, method, seed)
    a, b = _platt(run["oof"][everyone], is_mpox)
    calibrated = sigmoid(a * run["oof"] + b)
    threshold = threshold_for_sensitivity(is_mpox, calibrated, TARGET_SENSITIVITY)
    sensitivity = float((calibrated[is_mpox] >= threshold).mean())
    specificity = float((calibrated[~is_mpox] < threshold).mean())

    flag = fit_head(cache, everyone, is_mpox.astype(int), 2, method)
    weight, bias = flag.raw_weights()
    targets = np.array([CLASSES.index(p.label) for p in photos])
    differential = fit_head(cache, everyone, targets, len(CLASSES), method)
    d_weight, d_bias = differential.raw_weights()
    rule, extra, assessment = assessment_rule(photos, cache, method, seed)
    net = backbone(arch)
    with torch.no_grad():
        net.head.fc.weight.copy_((weight[1] - weight[0]).view(1, -1))
        net.head.fc.bias.fill_(float(bias[1] - bias[0]))
    counts = report["sources"]
    ind = report["methods"][method_name]["in_distribution"]
    metadata = make_metadata(
        arch=arch,
        input_size=224,
        init="imagenet",
        threshold=threshold,
        version=(
            f"{arch}-imagenet-{method_name.replace('+', '-')}-differential-sources6-{len(photos)}photos-"
            f"{_time.strftime('%Y-%m-%d')}"
        ),
        operating_point=(
            f"calibrated P(mpox) >= {threshold:.4f}: highest threshold with out-of-fold sensitivity >= "
            f"{TARGET_SENSITIVITY} ({FOLDS}-fold grouped CV over all sources); OOF sensitivity "
            f"{sensitivity:.3f}, specificity {specificity:.3f}"
        ),
        training_data=(
            "; ".join(f"{name} {n}" for name, n in counts.items())
            + ". MSLD v1 (CC BY-NC-SA 4.0), healthy abdomens (Topiwala et al. 2019, research use), "
            "HH-Care Genital-Patho-Dataset (research and ML development only): the model is for "
            "research use only, non-commercial."
        ),
        cv_metrics={
            "folds": FOLDS,
            "method": method_name,
            "in_distribution_auc": ind["auc"],
            "source_held_out_pooled_auc": report["methods"][method_name].get("source_held_out_pooled_auc"),
            "at_threshold": {"sensitivity": {"mean": sensitivity}, "specificity": {"mean": specificity}},
        },
        calibration={"method": "platt", "a": a, "b": b, "fitted_on": "out-of-fold logits of the grouped CV"},
        assessment=rule,
        differential={
            "classes": list(CLASSES),
            "method": method_name,
            "note": "MSLD's non-mpox photos carry no finer label: chickenpox and measles are one class",
        },
        head={"method": method_name, "weight_decay": WEIGHT_DECAY},
        # which photos of the sources it saw: every one (per_source None) or a seeded draw
        training_draw={"per_source": per_source, "seed": seed},
    )
    extra.update({WEIGHT_KEY: d_weight.float(), BIAS_KEY: d_bias.float()})
    saved = save_checkpoint(path, net, metadata, extra_state=extra)
    log(
        f"saved {saved} ({saved.stat().st_size / 1e6:.1f} MB), version {metadata['version']}, threshold {threshold:.4f}"
    )
    return {
        "path": str(saved),
        "version": metadata["version"],
        "threshold": threshold,
        "platt": [a, b],
        "oof_sensitivity": sensitivity,
        "oof_specificity": specificity,
        "assessment": assessment,
        "megabytes": round(saved.stat().st_size / 1e6, 2),
    }


# ---------------------------------------------------------------- where the heatmap looks

BORDER = 0.1  # width of the border frame, share of the side (frame area 36 %)
CAPTION = 0.14  # height of the added caption band, share of the side (as ``restyle``)


def cam_mass(model, photos: list[Photo], images, seed: int, n_boot: int = N_BOOT) -> dict:
    """Share of the Grad-CAM mass of a checkpoint (``ml.LesionModel``, whole photo) on the border
    frame of each photo as it is, on a caption band added to it, and on a text watermark added to it
    (the changed pixels, widened by a few pixels), beside the mass the same watermark region holds
    in the photo without it; a map that ignored borders, captions and watermarks would put about
    their area's share there (36 %, 14 % and ``watermark_area_share``)."""
    from PIL import Image, ImageFilter

    from ..preprocess import to_array
    from .sources import _caption_band, _watermark, as_is

    rng = np.random.default_rng(seed)
    size = model.input_size
    edge, band = int(size * BORDER), int(size * CAPTION)
    frame = np.ones((size, size), dtype=bool)
    frame[edge : size - edge, edge : size - edge] = False
    shares = {label: [] for label in ("border_mass", "caption_mass", "watermark_mass", "watermark_region_mass_plain")}
    watermark_area = []
    for image in images:
        plain = as_is(image, size)
        captioned = _caption_band(plain, rng)
        watermarked = _watermark(plain, rng)
        changed = np.abs(np.asarray(watermarked, dtype=np.int16) - np.asarray(plain, dtype=np.int16)).max(axis=2) > 8
        mark = np.asarray(Image.fromarray(changed).filter(ImageFilter.MaxFilter(7))) > 0
        arrays = to_array([plain, captioned, watermarked], model.metadata["mean"], model.metadata["std"])
        _, cams = model.explain(arrays)
        total = cams.sum(axis=(1, 2)) + 1e-9
        shares["border_mass"].append(float(cams[0][frame].sum() / total[0]))
        shares["caption_mass"].append(float(cams[1][size - band :].sum() / total[1]))
        shares["watermark_mass"].append(float(cams[2][mark].sum() / total[2]))
        shares["watermark_region_mass_plain"].append(float(cams[0][mark].sum() / total[0]))
        watermark_area.append(float(mark.mean()))
    shares["watermark_pull"] = list(np.subtract(shares["watermark_mass"], shares["watermark_region_mass_plain"]))
    sources = np.array([p.source for p in photos])
    groups = np.array([p.group for p in photos])
    report = {
        "border_area_share": float(frame.mean()),
        "caption_area_share": band / size,
        "watermark_area_share": float(np.mean(watermark_area)),
    }
    for name in dict.fromkeys(sources):
        idx = np.flatnonzero(sources == name)
        entry = {}
        for label, values in shares.items():
            values = np.array(values)
            v = values[idx]
            entry[label] = {
                "value": float(v.mean()),
                "n": int(len(v)),
                "ci95": grouped_bootstrap(lambda i, v=v: float(v[i].mean()), groups[idx], n_boot, seed),
            }
        report[name] = entry
    return report
