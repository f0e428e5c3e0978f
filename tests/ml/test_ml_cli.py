import csv
import json

import numpy as np
import pillow_heif
import pytest
import torch
from PIL import Image

import ml
from ml.metrics import METRIC_NAMES
from ml.research.cli import main
from ml.research.data import discover, write_csv

EVALUATE_KEYS = {
    "auc",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "sensitivity",
    "specificity",
    "threshold",
    "n",
    "ci95",
    "n_files",
    "n_read",
    "skipped",
    "not_assessable",
    "flag_rate_by_class",
    "assessable_only",
    "counting_rule",
}


@pytest.mark.parametrize("roi", ["none", "auto", "boxes"])
def test_evaluate_cli_writes_exact_json(tmp_path, class_folder, roi):
    data = tmp_path / "data"
    class_folder(data, n_patients=2, per_patient=2, size=48)
    samples = discover(data)
    write_csv(data / "dataset.csv", data, [type(s)(s.path, s.label, s.patient_id, (4, 4, 40, 44)) for s in samples])
    checkpoint = ml.testing.make_random_checkpoint(
        tmp_path / "m.pt", arch="efficientnet_lite0", input_size=32, threshold=0.4
    )
    out = tmp_path / "out" / "eval.json"
    main(
        [
            "evaluate",
            "--model",
            str(checkpoint),
            "--data",
            str(data),
            "--json",
            str(out),
            "--roi",
            roi,
            "--details",
            str(tmp_path / "details.csv"),
        ]
    )
    report = json.loads(out.read_text())
    assert set(report) == EVALUATE_KEYS
    assert report["n"] == report["n_read"] == report["n_files"] == 8 and report["skipped"] == []
    assert report["threshold"] == pytest.approx(0.4)
    assert set(report["ci95"]) == set(METRIC_NAMES)
    assert all(len(v) == 2 for v in report["ci95"].values())
    assert out.with_suffix(".roc.png").is_file()


def _lesion_like(seed: int, size: int = 48) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8))


def test_evaluate_reads_by_content_and_lists_what_it_skips(tmp_path, capsys):
    """Photos named as Windows, phones and browsers name them are read by content; non-images are
    listed with the reason, counted in the JSON and the details CSV, never silently dropped."""
    data = tmp_path / "data"
    for folder in ("mpox", "non_mpox/healthy", "non_mpox/chickenpox"):
        (data / folder).mkdir(parents=True)
    _lesion_like(0).save(data / "mpox" / "M1_01.jfif", format="JPEG")
    _lesion_like(1).save(data / "mpox" / "M2_01.JPE", format="JPEG")
    _lesion_like(2).save(data / "mpox" / "M3_01", format="PNG")  # no extension
    pillow_heif.from_pillow(_lesion_like(3)).save(data / "mpox" / "M4_01.HEIC", quality=90)
    _lesion_like(4).save(data / "non_mpox" / "healthy" / "H1_01.JPG", format="JPEG")
    _lesion_like(5).save(data / "non_mpox" / "healthy" / "H2_01.webp", format="WEBP")
    _lesion_like(6).save(data / "non_mpox" / "chickenpox" / "C1_01.jpg", format="JPEG")
    (data / "non_mpox" / "healthy" / "notes.jpg").write_text("not a photo at all")
    (data / "non_mpox" / "chickenpox" / "empty.png").write_bytes(b"")
    truncated = (data / "mpox" / "M1_01.jfif").read_bytes()
    (data / "mpox" / "M5_01.jpeg").write_bytes(truncated[: len(truncated) // 2])

    checkpoint = ml.testing.make_random_checkpoint(
        tmp_path / "m.pt", arch="efficientnet_lite0", input_size=32, threshold=0.0
    )  # flags everything
    out, details = tmp_path / "eval.json", tmp_path / "details.csv"
    main(
        [
            "evaluate",
            "--model",
            str(checkpoint),
            "--data",
            str(data),
            "--json",
            str(out),
            "--roi",
            "none",
            "--details",
            str(details),
        ]
    )
    report = json.loads(out.read_text())
    assert (report["n_files"], report["n_read"], report["n"]) == (10, 7, 7)
    reasons = {s["path"]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"non_mpox/healthy/notes.jpg", "non_mpox/chickenpox/empty.png", "mpox/M5_01.jpeg"}
    assert reasons["non_mpox/chickenpox/empty.png"] == "empty file"
    assert reasons["non_mpox/healthy/notes.jpg"].startswith("not an image")
    assert reasons["mpox/M5_01.jpeg"].startswith("damaged image")
    assert report["flag_rate_by_class"] == {
        "mpox": {"n": 4, "flagged": 4, "share": 1.0},
        "non_mpox": {"n": 3, "flagged": 3, "share": 1.0},
        "non_mpox/chickenpox": {"n": 1, "flagged": 1, "share": 1.0},
        "non_mpox/healthy": {"n": 2, "flagged": 2, "share": 1.0},
    }
    assert report["not_assessable"]["count"] == 0 and report["not_assessable"]["share"] == 0.0
    assert set(report["not_assessable"]["by_class"]) == {"mpox", "non_mpox"}
    assert report["sensitivity"] == 1.0 and report["specificity"] == 0.0

    printed = capsys.readouterr().out
    for path in reasons:
        assert f"skipped {path}: " in printed
    assert "not-assessable one as sent to a clinician" in printed

    rows = list(csv.DictReader(details.open()))
    assert list(rows[0])[:5] == ["path", "label", "score", "assessable", "reason"]
    assert len(rows) == 10
    by_path = {row["path"]: row for row in rows}
    assert by_path["mpox/M4_01.HEIC"]["label"] == "mpox" and by_path["mpox/M4_01.HEIC"]["assessable"] == "1"
    assert by_path["non_mpox/healthy/notes.jpg"]["reason"].startswith("not read: not an image")
    assert by_path["non_mpox/healthy/notes.jpg"]["score"] == ""


def test_train_cli_produces_loadable_checkpoint(tmp_path, class_folder):
    data = tmp_path / "data"
    class_folder(data, n_patients=5, per_patient=2, size=40)
    cv_dir = tmp_path / "cv"
    main(
        [
            "cv",
            "--data",
            str(data),
            "--arch",
            "efficientnet_lite0",
            "--init",
            "imagenet",
            "--input-size",
            "32",
            "--views",
            "2",
            "--epochs",
            "3",
            "--finetune-epochs",
            "1",
            "--folds",
            "2",
            "--out",
            str(cv_dir),
            "--save-fold-models",
        ]
    )
    report = json.loads((cv_dir / "report.json").read_text())
    assert {"summary_at_0.5", "threshold", "predictions"} <= set(report)
    assert (cv_dir / "roc.png").is_file() and (cv_dir / "confusion.png").is_file()
    fold_patients = set(ml.load(cv_dir / "fold0.pt").metadata["training_patients"])
    assert not fold_patients & {p["patient_id"] for p in report["predictions"] if p["fold"] == 0}

    out = tmp_path / "model.pt"
    main(
        [
            "train",
            "--data",
            str(data),
            "--arch",
            "efficientnet_lite0",
            "--init",
            "imagenet",
            "--input-size",
            "32",
            "--views",
            "2",
            "--epochs",
            "3",
            "--finetune-epochs",
            "1",
            "--out",
            str(out),
            "--cv-report",
            str(cv_dir / "report.json"),
            "--version",
            "tiny-1",
        ]
    )
    model = ml.load(out)
    assert model.version == "tiny-1" and model.input_size == 32
    assert model.threshold == pytest.approx(report["threshold"])
    assert model.metadata["cv_metrics"]["folds"] == 2
    blob = torch.load(out, weights_only=True)
    assert blob["metadata"]["arch"] == "efficientnet_lite0"
    assert 0 <= model.analyse(Image.new("RGB", (50, 30))).probability <= 1


def test_train_cli_from_scratch(tmp_path, class_folder):
    data = tmp_path / "data"
    class_folder(data, n_patients=3, per_patient=1, size=32)
    out = tmp_path / "scratch.pt"
    main(
        [
            "train",
            "--data",
            str(data),
            "--arch",
            "efficientnet_lite0",
            "--init",
            "none",
            "--input-size",
            "32",
            "--epochs",
            "1",
            "--val-fraction",
            "0",
            "--out",
            str(out),
        ]
    )
    assert ml.load(out).metadata["init"] == "none"


def test_densenet_imagenet_failure_names_alternatives(monkeypatch):
    import torchvision.models as tvm

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(tvm.DenseNet121_Weights.IMAGENET1K_V1, "get_state_dict", offline)
    with pytest.raises(ml.architectures.InitError, match="--init none"):
        ml.ARCHITECTURES["densenet121"].build("imagenet")


def test_training_is_reproducible_and_cache_reusable(tmp_path, class_folder):
    data = tmp_path / "data"
    class_folder(data, n_patients=4, per_patient=1, size=32)
    common = [
        "train",
        "--data",
        str(data),
        "--arch",
        "efficientnet_lite0",
        "--init",
        "imagenet",
        "--input-size",
        "32",
        "--views",
        "2",
        "--epochs",
        "3",
        "--finetune-epochs",
        "1",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    main(common + ["--out", str(tmp_path / "a.pt")])
    assert len(list((tmp_path / "cache").iterdir())) == 1
    main(common + ["--out", str(tmp_path / "b.pt")])  # second run reads the cached backbone outputs
    a = torch.load(tmp_path / "a.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_reports_a_bad_checkpoint_as_a_one_line_error(tmp_path, class_folder, capsys):
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit) as exit_info:
        class_folder(tmp_path / "data")
        main(
            [
                "evaluate",
                "--model",
                str(tmp_path / "garbage.pt"),
                "--data",
                str(tmp_path / "data"),
                "--json",
                str(tmp_path / "e.json"),
            ]
        )
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "garbage.pt" in error


def test_roi_study_tunes_on_one_seed_and_reports_on_another(tmp_path, class_folder):
    data = tmp_path / "data"
    class_folder(data, n_patients=3, per_patient=1, size=40)
    checkpoint = ml.testing.make_random_checkpoint(tmp_path / "m.pt", arch="efficientnet_lite0", input_size=32)
    out = tmp_path / "study"
    main(
        [
            "roi-study",
            "--model",
            str(checkpoint),
            "--data",
            str(data),
            "--out",
            str(out),
            "--tune-seed",
            "5",
            "--eval-seed",
            "6",
        ]
    )
    report = json.loads((out / "roi_study.json").read_text())
    assert (out / "tune-seed5" / "dataset.csv").is_file() and (out / "eval-seed6" / "dataset.csv").is_file()
    assert (out / "tune-seed5" / "dataset.csv").read_text() != (out / "eval-seed6" / "dataset.csv").read_text()
    evaluation = report["evaluation"]
    assert set(evaluation) == {*ml.research.roi_study.MODES, "auto_change"}
    assert evaluation["true_box"]["mean_iou"] == 1.0 and report["n_eval"] == 6
    for mode in ("none", "auto", "tap"):
        low, high = evaluation[mode]["mean_iou_ci95"]
        assert 0 <= low <= evaluation[mode]["mean_iou"] <= high <= 1
    assert set(report["tuning"]["tap_fraction_mean_iou"]) == {str(f) for f in ml.research.roi_study.TAP_FRACTIONS}
    assert "| simulated patient tap |" in (out / "roi_study.md").read_text()


def test_roi_real_takes_the_training_draw_from_the_checkpoint_and_refuses_when_every_photo_was_seen(tmp_path, photo):
    import torch

    root = tmp_path / "sources"
    (root / "genital_lesions/syphilis").mkdir(parents=True)
    for i in range(4):
        photo(60, 40, seed=i).save(root / "genital_lesions/syphilis" / f"P{i}_00.jpg")
    checkpoint = ml.testing.make_random_checkpoint(tmp_path / "m.pt", input_size=32)
    saved = torch.load(checkpoint, weights_only=True)

    def run(draw):
        saved["metadata"]["training_draw"] = draw
        torch.save(saved, checkpoint)
        out = tmp_path / "real.json"
        main(["roi-real", "--model", str(checkpoint), "--data-root", str(root), "--json", str(out)])
        return json.loads(out.read_text())

    assert run({"per_source": 1, "seed": 0})["n_unseen"] == 3  # not the --per-source default (150)
    with pytest.raises(SystemExit, match="every photo under the sources was in its training"):
        run({"per_source": None, "seed": 0})


def test_roi_real_scores_only_the_photos_outside_the_training_draw(tmp_path, photo):
    root = tmp_path / "sources"
    for folder, n in (("msld_v1/mpox", 2), ("healthy_abdomen", 3), ("genital_lesions/syphilis", 4)):
        (root / folder).mkdir(parents=True)
        for i in range(n):
            photo(60, 40, seed=10 * n + i).save(root / folder / f"P{i}_00.jpg")
    checkpoint = ml.testing.make_random_checkpoint(tmp_path / "m.pt", input_size=32)
    out = tmp_path / "real.json"
    main(["roi-real", "--model", str(checkpoint), "--data-root", str(root), "--per-source", "2", "--json", str(out)])
    report = json.loads(out.read_text())
    assert report["n_unseen"] == 1 + 2 and report["n_mpox_seen"] == 2  # 3 - 2 abdomens, 4 - 2 syphilis
    assert set(report["modes"]) == set(ml.research.roi_study.REAL_MODES)
    for mode, entry in report["modes"].items():
        low, high = entry["flagged_ci95"]
        assert -1e-9 <= low <= entry["flagged"] + 1e-9 and entry["flagged"] <= high + 1e-9 <= 1 + 2e-9
        assert ("change_from_whole" in entry) == (mode != "none")
