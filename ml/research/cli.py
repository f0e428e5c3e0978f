"""Command line: ``python -m ml {train,cv,evaluate,export-onnx,scenes,roi-study,roi-real,study,sources,
sources-cam,sources-compare,case-rule,negatives} ...`` (see ``--help`` of each)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..architectures import InitError
from ..checkpoint import CheckpointError
from ..torch_runtime import configure_threads


def log(message: str) -> None:
    print(message, flush=True)


def _feature_cache_arguments(parser: argparse.ArgumentParser) -> None:
    """The settings that pick the sources' feature cache (``sources.load_features``): the same in
    every command that reads it."""
    parser.add_argument("--views", type=int, default=1, help="augmented views per photo")
    parser.add_argument("--per-source", type=int, help="at most this many photos per source (random, --seed)")
    parser.add_argument("--cache-dir", type=Path, default=Path("var/ml-cache"))
    parser.add_argument("--seed", type=int, default=0)


def _training_arguments(parser: argparse.ArgumentParser) -> None:
    from ..architectures import ARCHITECTURES
    from .training import TrainConfig

    d = TrainConfig()
    parser.add_argument("--data", required=True, type=Path, help="folder with mpox/ and non_mpox/")
    parser.add_argument("--csv", type=Path, help="patient ids / boxes CSV (default DATA/dataset.csv)")
    parser.add_argument("--arch", default=d.arch, choices=sorted(ARCHITECTURES))
    parser.add_argument("--init", default=d.init, help="imagenet | none | PATH (checkpoint or state dict)")
    parser.add_argument("--input-size", type=int, help="default: the architecture's (224)")
    parser.add_argument("--views", type=int, default=d.views, help="augmented views cached per image")
    parser.add_argument("--epochs", type=int, default=d.epochs, help="head epochs, or all epochs for --init none")
    parser.add_argument(
        "--finetune-epochs",
        type=int,
        default=d.finetune_epochs,
        help="epochs training the last backbone block(s) too (transfer only)",
    )
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--finetune-lr", type=float, default=d.finetune_lr)
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--patience", type=int, default=d.patience)
    parser.add_argument(
        "--val-fraction", type=float, default=d.val_fraction, help="share of patients held out for early stopping"
    )
    parser.add_argument("--dropout", type=float, default=d.dropout)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--cache-dir", type=Path, help="keep frozen-backbone outputs here to reuse across runs (transfer only)"
    )
    parser.add_argument(
        "--target-sensitivity",
        type=float,
        default=0.95,
        help="operating point: highest threshold with this OOF sensitivity",
    )


def _config(args):
    from ..architectures import get_arch
    from .training import TrainConfig

    return TrainConfig(
        arch=args.arch,
        init=args.init,
        input_size=args.input_size or get_arch(args.arch).default_input_size,
        views=args.views,
        epochs=args.epochs,
        finetune_epochs=args.finetune_epochs,
        lr=args.lr,
        finetune_lr=args.finetune_lr,
        weight_decay=args.weight_decay,
        batch_size=args.batch_size,
        patience=args.patience,
        val_fraction=args.val_fraction,
        dropout=args.dropout,
        seed=args.seed,
    )


def _load_dataset(args, config):
    from .data import scan
    from .training import load_images

    folder = scan(args.data, args.csv)
    for skipped in folder.skipped:
        log(f"skipped {skipped.path.relative_to(args.data)}: {skipped.reason}")
    samples = folder.samples
    n_pos = sum(s.label for s in samples)
    patients = len({s.patient_id for s in samples})
    log(
        f"dataset {args.data}: {len(samples)} images ({n_pos} mpox, {len(samples) - n_pos} non_mpox), "
        f"{patients} patients"
    )
    return samples, load_images(samples, config.input_size)


def _describe_data(args, samples) -> str:
    n_pos = sum(s.label for s in samples)
    return (
        f"{args.data.name}: {len(samples)} images ({n_pos} mpox, {len(samples) - n_pos} non_mpox) "
        f"of {len({s.patient_id for s in samples})} patients. {args.data_description}"
    ).strip()


def _operating_point(report: dict) -> str:
    pooled = report["pooled_oof_at_threshold"]
    return (
        f"threshold {report['threshold']:.4f} = highest with out-of-fold sensitivity >= "
        f"{report['target_sensitivity']:.2f} in {report['folds']}-fold patient-grouped CV; "
        f"OOF sensitivity {pooled['sensitivity']:.3f}, specificity {pooled['specificity']:.3f}"
    )


def _cv_metrics(report: dict) -> dict:
    return {
        "folds": report["folds"],
        "pooled_oof_auc": report["pooled_oof_auc"],
        "at_0.5": report["summary_at_0.5"],
        "at_threshold": report["summary_at_threshold"],
    }


def _train_final(args, config, samples, images, report: dict | None, cache=None, base_net=None):
    from ..checkpoint import make_metadata, save_checkpoint
    from .training import final_config, train_network

    start = time.perf_counter()
    if report:
        config = final_config(config, report)
        log(
            f"final model: all data, epochs fixed from CV (median best epochs): head/scratch "
            f"{config.epochs}, fine-tune {config.finetune_epochs}"
        )
    if config.transfer and cache is None:
        from .training import TransferCache, build_initial_network, image_keys

        base_net = build_initial_network(config)
        cache = TransferCache(base_net, images, config, log, args.cache_dir, image_keys(samples))
    labels = np.array([s.label for s in samples])
    groups = np.array([s.patient_id for s in samples])
    log(f"training final model on all {len(samples)} images")
    net, _, history = train_network(
        images, labels, groups, np.arange(len(samples)), config, log, cache=cache, base_net=base_net
    )
    from ..diagnoses import class_of
    from .training import fit_differential

    differential = fit_differential(
        net, images, [class_of(s.path.relative_to(args.data).as_posix()) for s in samples], config.arch
    )
    extra_state = {}
    if differential is not None:
        log(f"differential head over {', '.join(differential[0]['classes'])}")
        extra_state = differential[1]
    init_tag = config.init if config.init in ("imagenet", "none") else "custom"
    version = args.version or f"{config.arch}-{init_tag}-{args.data_tag or args.data.name}-{dt.date.today()}"
    metadata = make_metadata(
        arch=config.arch,
        input_size=config.input_size,
        version=version,
        init=config.init,
        threshold=report["threshold"] if report else 0.5,
        operating_point=_operating_point(report) if report else "default 0.5 (no CV report given)",
        training_data=_describe_data(args, samples),
        cv_metrics=_cv_metrics(report) if report else {},
        train_config=asdict(config),
        history=history,
        training_seconds=round(time.perf_counter() - start, 1),
        training_patients=sorted({s.patient_id for s in samples}),
        **({"differential": differential[0]} if differential else {}),
    )
    path = save_checkpoint(args.checkpoint, net, metadata, extra_state=extra_state)
    log(
        f"saved {path} ({path.stat().st_size / 1e6:.1f} MB), version {version}, "
        f"threshold {metadata['threshold']:.4f}, {metadata['training_seconds']:.0f} s"
    )
    return path


def cmd_train(args) -> None:
    config = _config(args)
    samples, images = _load_dataset(args, config)
    report = None
    if args.cv_report:
        report = json.loads(args.cv_report.read_text())
        if report["config"] != {**asdict(config), "seed": report["config"]["seed"]}:
            log(f"WARNING: the CV report was made with a different configuration: {report['config']}")
    args.checkpoint = args.out
    _train_final(args, config, samples, images, report)


def cmd_cv(args) -> None:
    from ..checkpoint import CLASS_NAMES, make_metadata, save_checkpoint
    from ..metrics import confusion
    from ..plots import plot_confusion, plot_roc
    from .training import cross_validate

    config = _config(args)
    samples, images = _load_dataset(args, config)
    args.out.mkdir(parents=True, exist_ok=True)

    def save_fold(k, net, train_idx):
        trained = sorted({samples[i].patient_id for i in train_idx})
        metadata = make_metadata(
            arch=config.arch,
            input_size=config.input_size,
            threshold=0.5,
            init=config.init,
            version=f"{config.arch}-{config.init}-cv-fold{k}",
            operating_point="CV fold model, 0.5",
            training_data=f"fold {k} training patients of {args.data.name}",
            train_config=asdict(config),
            training_patients=trained,
        )
        save_checkpoint(args.out / f"fold{k}.pt", net, metadata)

    report, cache, base_net = cross_validate(
        samples,
        images,
        config,
        args.folds,
        args.target_sensitivity,
        log,
        fold_model_saver=save_fold if args.save_fold_models else None,
        cache_dir=args.cache_dir,
    )
    labels = np.array([s.label for s in samples])
    scores = np.array([p["score"] for p in report["predictions"]])
    folds = np.array([p["fold"] for p in report["predictions"]])
    curves = [(f"fold {k + 1}", labels[folds == k], scores[folds == k]) for k in range(args.folds)]
    plot_roc(
        curves + [("pooled OOF", labels, scores)],
        args.out / "roc.png",
        f"{config.arch} init={config.init}: {args.folds}-fold patient-grouped CV",
    )
    plot_confusion(
        confusion(labels, scores, report["threshold"]),
        CLASS_NAMES,
        args.out / "confusion.png",
        f"OOF at threshold {report['threshold']:.3f}",
    )
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    log(f"\nCV summary ({args.folds} folds, patient-grouped; {report['seconds']:.0f} s):")
    for name, ms in report["summary_at_0.5"].items():
        at_t = report["summary_at_threshold"][name]
        log(
            f"  {name:12s} @0.5 {ms['mean']:.3f} ({ms['sd']:.3f})   "
            f"@{report['threshold']:.3f} {at_t['mean']:.3f} ({at_t['sd']:.3f})"
        )
    log(f"  pooled OOF AUC {report['pooled_oof_auc']:.3f}; {_operating_point(report)}")
    log(f"wrote {args.out / 'report.json'}, roc.png, confusion.png")
    if args.checkpoint:
        _train_final(args, config, samples, images, report, cache=cache, base_net=base_net)


def _finite_or_null(value):
    """NaN (e.g. precision with no positive predictions) -> null, so the JSON stays standard."""
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_null(v) for v in value]
    return None if isinstance(value, float) and not np.isfinite(value) else value


def _load(args, **options):
    """``--model`` on the runtime of ``--runtime``: torch (``ml.torch_runtime``) or ONNX Runtime
    (``ml.ort``, on the checkpoint's export beside it: ``python -m ml export-onnx``)."""
    if args.runtime == "onnx":
        from .. import ort

        ort.configure_threads(args.threads)
        return ort.load(args.model, **options)
    from ..torch_runtime import load

    return load(args.model, **options)


def cmd_evaluate(args) -> None:
    from ..plots import plot_calibration, plot_roc
    from .data import scan
    from .evaluation import COUNTING_RULE, evaluation_report, roi_iou_summary, score_samples, write_details

    model = _load(args, auto_roi=args.roi == "auto")
    class_names = tuple(model.metadata["class_names"])
    folder = scan(args.data, args.csv, class_names)
    samples = folder.samples
    if args.roi == "boxes" and not any(s.box for s in samples):
        sys.exit(f"--roi boxes: no boxes found (give a CSV with x0,y0,x1,y1 columns: --csv or {args.data}/dataset.csv)")
    log(
        f"evaluating {model.version} on {args.data} (roi={args.roi}): {folder.n_files} files, "
        f"{len(samples)} read, {len(folder.skipped)} skipped"
    )
    for skipped in folder.skipped:
        log(f"  skipped {skipped.path.relative_to(args.data)}: {skipped.reason}")
    start = time.perf_counter()
    scored = score_samples(model, samples, args.roi, log)
    report = evaluation_report(folder, args.data, scored, model.threshold, class_names, seed=args.seed)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(_finite_or_null(report), indent=1, allow_nan=False))
    roc_path = args.roc or args.json.with_suffix(".roc.png")
    labels = np.array([s.label for s in samples])
    judged = scored.assessable
    plotted = len(set(labels[judged].tolist())) == 2  # ROC and calibration need both classes among assessable photos
    calibration_path = args.json.with_suffix(".calibration.png")
    if plotted:
        title = f"{model.version} on {args.data.name}"
        plot_roc([(f"roi={args.roi}, assessable photos", labels[judged], scored.scores[judged])], roc_path, title)
        plot_calibration(labels[judged], scored.scores[judged], calibration_path, title)
    if args.details:
        write_details(args.details, folder, args.data, scored, class_names)
    na = report["not_assessable"]
    log(
        f"\nEvaluation ({len(samples)} of {folder.n_files} files read, threshold {model.threshold:.4f}, "
        f"roi={args.roi}, {time.perf_counter() - start:.0f} s); 95% CI: patient-level bootstrap"
    )
    log(
        f"  not assessable: {na['count']} of {na['n']} ({na['share']:.1%}); "
        + ", ".join(f"{name} {v['count']}/{v['n']}" for name, v in na["by_class"].items())
    )
    log(f"  counting: {COUNTING_RULE}")
    for name in ("auc", "accuracy", "precision", "recall", "f1", "sensitivity", "specificity"):
        low, high = report["ci95"][name]
        log(f"  {name:12s} {report[name]:.3f}  [{low:.3f}, {high:.3f}]")
    log("  share flagged (assessable and score >= threshold) per folder:")
    for name, rate in report["flag_rate_by_class"].items():
        log(f"    {name:24s} {rate['flagged']:4d} / {rate['n']:4d}  {rate['share']:.1%}")
    overlap = roi_iou_summary(samples, scored.used) if args.roi == "auto" else None
    if overlap:
        log(
            f"  automatic ROI vs true boxes: mean IoU {overlap['mean_iou']:.3f}, median "
            f"{overlap['median_iou']:.3f}, IoU>=0.5 for {overlap['iou_at_least_0.5']:.1%} of {overlap['n']}"
        )
    log(
        f"wrote {args.json}"
        + (f", {roc_path}, {calibration_path}" if plotted else "")
        + (f", {args.details}" if args.details else "")
    )


def cmd_export_onnx(args) -> None:
    from ..export import export_onnx

    for path in export_onnx(args.checkpoint, args.out):
        log(f"wrote {path}")


def cmd_scenes(args) -> None:
    from .scenes import build_scenes

    build_scenes(
        args.data,
        args.out,
        seed=args.seed,
        csv_path=args.csv,
        per_image=args.per_image,
        exclude_trained_by=args.exclude_trained_by,
        log=log,
        hard=args.hard,
    )


def cmd_roi_study(args) -> None:
    from ..torch_runtime import load
    from .roi_study import run_study

    run_study(load(args.model), args.data, args.out, args.tune_seed, args.eval_seed, log)


def cmd_roi_real(args) -> None:
    from ..torch_runtime import load
    from .roi_study import run_real_photos

    model = load(args.model)
    draw = model.metadata.get("training_draw")  # recorded by `sources --checkpoint`
    per_source, seed = (draw["per_source"], draw["seed"]) if draw else (args.per_source, args.seed)
    if per_source is None:
        raise SystemExit(
            f"{args.model}: every photo under the sources was in its training; there is no unseen real photo to score"
        )
    run_real_photos(model, args.data_root, per_source, seed, args.json, log)


def cmd_study(args) -> None:
    from .study import run_study

    run_study(
        args.data,
        args.out,
        args.ship,
        args.checkpoint,
        args.cache_dir,
        args.folds,
        args.seed,
        args.views,
        args.target_sensitivity,
        args.bootstrap,
        not args.skip_finetune,
        log,
        lesion_check=args.lesion_check,
    )


def cmd_sources(args) -> None:
    from .source_study import METHODS as SOURCE_METHODS
    from .source_study import run_sources
    from .sources import load_features

    trunk = any(SOURCE_METHODS[name].finetune_epochs for name in args.methods)
    photos, cache = load_features(
        args.data_root, args.arch, args.views, args.seed, args.cache_dir, log, per_source=args.per_source, trunk=trunk
    )
    run_sources(
        photos,
        cache,
        args.methods,
        args.seed,
        args.out,
        log,
        checkpoint=args.checkpoint,
        ship_method=args.ship,
        arch=args.arch,
        n_boot=args.bootstrap,
        per_source=args.per_source,
    )


def cmd_sources_compare(args) -> None:
    from .source_study import paired_comparison
    from .sources import load_features

    caches, photos = {}, None
    for arch in args.archs:
        arch_photos, caches[arch] = load_features(
            args.data_root, arch, args.views, args.seed, args.cache_dir, log, per_source=args.per_source
        )
        if photos is not None and [p.path for p in arch_photos] != [p.path for p in photos]:
            raise SystemExit("the backbones' feature caches hold different photos")
        photos = arch_photos
    report = paired_comparison(photos, caches, args.seed, args.bootstrap)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    first, second = report["first"], report["second"]
    log(f"probe_as_is, same photos, folds and grouped resamples; AUC {first} | {second} | difference [95% CI]:")
    for key, entry in report.items():
        if isinstance(entry, dict):
            log(
                f"  {key:24s} {entry[first]:.3f} | {entry[second]:.3f} | {entry['difference']:+.3f} "
                f"[{entry['ci95'][0]:+.3f}, {entry['ci95'][1]:+.3f}]"
            )
    log(f"wrote {args.json}")


def cmd_case_rule(args) -> None:
    from .case_study import run_case_rule

    run_case_rule(args.data_root, args.checkpoint, args.out, args.cache_dir, args.per_source, args.seed, log)


def cmd_sources_cam(args) -> None:
    from ..torch_runtime import load
    from .source_study import cam_mass
    from .sources import read_sources

    model = load(args.model, auto_roi=False)
    photos, images = read_sources(args.data_root, log, args.per_source, args.seed)
    report = cam_mass(model, photos, images, args.seed, args.bootstrap)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    log(
        f"Grad-CAM mass of {model.version} (whole photos; border frame {report['border_area_share']:.0%} "
        f"of the area, added caption band {report['caption_area_share']:.0%}, added watermark "
        f"{report['watermark_area_share']:.0%}; pull = watermark mass minus the same region's mass without it), "
        "mean [95% CI]:"
    )
    labels = {
        "border_mass": "border",
        "caption_mass": "caption",
        "watermark_mass": "watermark",
        "watermark_pull": "pull",
    }
    for name, entry in report.items():
        if isinstance(entry, dict):
            figures = "  ".join(
                f"{label} {entry[key]['value']:.1%} [{entry[key]['ci95'][0]:.1%}, {entry[key]['ci95'][1]:.1%}]"
                for key, label in labels.items()
            )
            log(f"  {name:24s} {figures}  (n={entry['border_mass']['n']})")
    log(f"wrote {args.json}")


def cmd_negatives(args) -> None:
    from .negatives import build_negatives, score_negatives

    if not args.score_only:
        build_negatives(args.out, seed=args.seed, per_category=args.per_category, log=log)
    if args.model:
        from ..torch_runtime import load

        report = score_negatives(load(args.model), args.out)
        json_path = args.json or args.out / "scores.json"
        json_path.write_text(json.dumps(report, indent=1))
        log("category | n | flagged [95% CI] | not assessable [95% CI] | reasons")
        for name, r in report.items():
            log(
                f"{name} | {r['n']} | {r['flagged_share']:.0%} [{r['flagged_ci95'][0]:.0%}, "
                f"{r['flagged_ci95'][1]:.0%}] | {r['not_assessable_share']:.0%} "
                f"[{r['not_assessable_ci95'][0]:.0%}, {r['not_assessable_ci95'][1]:.0%}] | {r['reasons']}"
            )
        log(f"wrote {json_path}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ml", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a checkpoint on a labelled folder")
    _training_arguments(train)
    train.add_argument("--out", required=True, type=Path, help="checkpoint path to write")
    train.add_argument(
        "--cv-report",
        type=Path,
        help="report.json of `cv` with the same settings: threshold and CV metrics are taken from it",
    )
    train.add_argument("--version", help="version string (default ARCH-INIT-DATA-DATE)")
    train.add_argument("--data-tag", help="short data name used in the version (default: folder name)")
    train.add_argument("--data-description", default="", help="extra text for the training-data field")
    train.set_defaults(func=cmd_train)

    cv = sub.add_parser("cv", help="patient-grouped k-fold cross-validation")
    _training_arguments(cv)
    cv.add_argument("--folds", type=int, default=5)
    cv.add_argument("--out", required=True, type=Path, help="folder for report.json and plots")
    cv.add_argument("--save-fold-models", action="store_true", help="write OUT/fold<k>.pt")
    cv.add_argument("--checkpoint", type=Path, help="then train the final model on all data here")
    cv.add_argument("--version")
    cv.add_argument("--data-tag")
    cv.add_argument("--data-description", default="")
    cv.set_defaults(func=cmd_cv)

    ev = sub.add_parser("evaluate", help="score a labelled folder with a checkpoint")
    ev.add_argument("--model", required=True, type=Path)
    ev.add_argument("--data", required=True, type=Path)
    ev.add_argument("--json", required=True, type=Path)
    ev.add_argument(
        "--roi",
        choices=("none", "auto", "boxes"),
        default="auto",
        help="whole photo, automatic lesion ROI (default, as the portal does for a photo "
        "without a box), or the CSV boxes (--roi none suits pre-cropped lesion photos)",
    )
    ev.add_argument("--csv", type=Path, help="patient ids / boxes CSV (default DATA/dataset.csv)")
    ev.add_argument("--roc", type=Path, help="ROC PNG (default JSON path with .roc.png)")
    ev.add_argument(
        "--details",
        type=Path,
        help="optional CSV, one row per file: path,label,score,assessable,reason (then patient_id,roi,true_box,iou)",
    )
    ev.add_argument(
        "--runtime",
        choices=("torch", "onnx"),
        default="torch",
        help="onnx: the checkpoint's ONNX export on ONNX Runtime",
    )
    ev.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    ev.add_argument("--threads", type=int, default=2)
    ev.set_defaults(func=cmd_evaluate)

    export = sub.add_parser(
        "export-onnx", help="write a checkpoint's backbone (ONNX) and heads (.npz) for ML_RUNTIME=onnx"
    )
    export.add_argument("--checkpoint", required=True, type=Path)
    export.add_argument("--out", type=Path, help="folder (default: beside the checkpoint)")
    export.set_defaults(func=cmd_export_onnx)

    scenes = sub.add_parser("scenes", help="place lesion crops into larger synthetic scenes")
    scenes.add_argument("--data", required=True, type=Path)
    scenes.add_argument("--out", required=True, type=Path)
    scenes.add_argument("--seed", type=int, default=0)
    scenes.add_argument("--csv", type=Path)
    scenes.add_argument("--per-image", type=int, default=1, help="scenes per source image")
    scenes.add_argument(
        "--exclude-trained-by", type=Path, help="checkpoint: skip images of the patients it was trained on"
    )
    scenes.add_argument(
        "--hard",
        action="store_true",
        help="realistic distractors: fingers and gloves, "
        "hair, printed fabric, several lesions, jewellery, shadows, a dark object",
    )
    scenes.set_defaults(func=cmd_scenes)

    study = sub.add_parser(
        "roi-study",
        help="IoU and AUC of whole photo / automatic ROI before and after / "
        "tap / true box on hard scenes (tuned on one seed, reported on another)",
    )
    study.add_argument("--model", required=True, type=Path)
    study.add_argument("--data", required=True, type=Path, help="lesion crops: folder with mpox/ and non_mpox/")
    study.add_argument("--out", required=True, type=Path, help="scene sets (reused when present) and the report")
    study.add_argument("--tune-seed", type=int, default=1)
    study.add_argument("--eval-seed", type=int, default=2)
    study.add_argument("--threads", type=int, default=2)
    study.set_defaults(func=cmd_roi_study)

    real = sub.add_parser(
        "roi-real",
        help="whole photo / 416 px two-pass / one-pass automatic ROI on the real photos a checkpoint never saw",
    )
    real.add_argument("--model", required=True, type=Path)
    real.add_argument("--data-root", required=True, type=Path, help="the sources' root (as for `sources`)")
    real.add_argument(
        "--per-source",
        type=int,
        default=150,
        help="the checkpoint's training draw per source, for checkpoints that do not record it",
    )
    real.add_argument("--seed", type=int, default=0, help="the checkpoint's training draw seed (as --per-source)")
    real.add_argument("--json", required=True, type=Path)
    real.add_argument("--threads", type=int, default=2)
    real.set_defaults(func=cmd_roi_real)

    from .study import METHODS

    study = sub.add_parser(
        "study",
        help="compare classifiers (patient-grouped CV + shifted copies), "
        "calibrate, fit the assessability rule, optionally write the checkpoint",
    )
    study.add_argument("--data", required=True, type=Path)
    study.add_argument("--out", required=True, type=Path, help="folder for study.json and oof.npz")
    study.add_argument(
        "--ship", default="logistic+aug", choices=sorted(METHODS), help="method fitted on all images for --checkpoint"
    )
    study.add_argument("--checkpoint", type=Path, help="write the shipped checkpoint here")
    study.add_argument("--cache-dir", type=Path, default=Path("var/ml-cache"))
    study.add_argument("--folds", type=int, default=5)
    study.add_argument("--seed", type=int, default=0)
    study.add_argument("--views", type=int, default=4, help="augmented views per image and kind")
    study.add_argument("--target-sensitivity", type=float, default=0.95)
    study.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    study.add_argument("--skip-finetune", action="store_true", help="leave out the fine-tuned network")
    study.add_argument(
        "--lesion-check",
        action="store_true",
        help="put the lesion-present check into the rule and checkpoint (always reported; "
        "not shipped: it separates renders from real photos, see the model card)",
    )
    study.add_argument("--threads", type=int, default=2)
    study.set_defaults(func=cmd_study)

    from ..architectures import ARCHITECTURES
    from .source_study import METHODS as SOURCE_METHODS

    sources = sub.add_parser(
        "sources",
        help="source-aware evaluation over every data source: grouped CV, "
        "leave-one-source-out, style invariance, the trap probe, the differential; "
        "optionally write the checkpoint",
    )
    sources.add_argument(
        "--data-root",
        required=True,
        type=Path,
        help="folder with msld_v1/, healthy_abdomen/, genital_lesions/ (any may be missing)",
    )
    sources.add_argument("--out", required=True, type=Path, help="folder for sources.json")
    sources.add_argument(
        "--methods", nargs="+", default=["probe_as_is", "harmonised+aug"], choices=sorted(SOURCE_METHODS)
    )
    sources.add_argument(
        "--ship",
        default="harmonised+aug",
        choices=sorted(name for name, method in SOURCE_METHODS.items() if not method.finetune_epochs),
        help="method fitted on every photo for --checkpoint",
    )
    sources.add_argument("--checkpoint", type=Path, help="write the shipped checkpoint here")
    sources.add_argument("--arch", default="efficientnet_lite0", choices=sorted(ARCHITECTURES))
    _feature_cache_arguments(sources)
    sources.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples per CI")
    sources.add_argument("--threads", type=int, default=2)
    sources.set_defaults(func=cmd_sources)

    compare = sub.add_parser(
        "sources-compare",
        help="two backbones' probe_as_is on the same photos and folds: in-distribution and source-held-out "
        "AUC of each, and the paired difference with its grouped-bootstrap CI",
    )
    compare.add_argument("--data-root", required=True, type=Path)
    compare.add_argument("--archs", nargs=2, required=True, choices=sorted(ARCHITECTURES))
    compare.add_argument("--json", required=True, type=Path)
    _feature_cache_arguments(compare)
    compare.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples per CI")
    compare.add_argument("--threads", type=int, default=2)
    compare.set_defaults(func=cmd_sources_compare)

    case_rule = sub.add_parser(
        "case-rule",
        help="fit the case-level flagging rule on cases formed from the training photos, report it on "
        "held-out cases, and add it (with the training prevalence) to an existing checkpoint",
    )
    case_rule.add_argument("--data-root", required=True, type=Path, help="as for sources")
    case_rule.add_argument("--checkpoint", required=True, type=Path, help="checkpoint to add the case rule to")
    case_rule.add_argument("--out", required=True, type=Path, help="folder for case_rule.json")
    case_rule.add_argument("--per-source", type=int, help="at most this many photos per source (random, --seed)")
    case_rule.add_argument("--cache-dir", type=Path, default=Path("var/ml-cache"))
    case_rule.add_argument("--seed", type=int, default=0)
    case_rule.add_argument("--threads", type=int, default=2)
    case_rule.set_defaults(func=cmd_case_rule)

    cam = sub.add_parser(
        "sources-cam",
        help="share of a checkpoint's Grad-CAM mass on each photo's border and on an added caption band and "
        "watermark, per source",
    )
    cam.add_argument("--data-root", required=True, type=Path)
    cam.add_argument("--model", required=True, type=Path)
    cam.add_argument("--json", required=True, type=Path)
    cam.add_argument("--per-source", type=int, default=40, help="photos per source (random, --seed)")
    cam.add_argument("--seed", type=int, default=0)
    cam.add_argument("--bootstrap", type=int, default=1000)
    cam.add_argument("--threads", type=int, default=2)
    cam.set_defaults(func=cmd_sources_cam)

    negatives = sub.add_parser(
        "negatives",
        help="render the negatives set (photos that must not be "
        "flagged); with --model, score it through the portal's path",
    )
    negatives.add_argument("--out", required=True, type=Path)
    negatives.add_argument("--seed", type=int, default=0)
    negatives.add_argument("--per-category", type=int, default=24)
    negatives.add_argument("--model", type=Path, help="checkpoint: report share flagged / not assessable")
    negatives.add_argument("--json", type=Path, help="score report path (default OUT/scores.json)")
    negatives.add_argument("--score-only", action="store_true", help="score an existing OUT, render nothing")
    negatives.add_argument("--threads", type=int, default=2)
    negatives.set_defaults(func=cmd_negatives)

    args = parser.parse_args(argv)
    if hasattr(args, "threads"):
        configure_threads(args.threads)
    try:
        args.func(args)
    except (InitError, CheckpointError) as error:
        parser.exit(2, f"error: {error}\n")


if __name__ == "__main__":
    main()
