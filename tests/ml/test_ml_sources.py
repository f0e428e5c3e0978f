"""The sources reader (grouping, one look for every source) and ``python -m ml sources`` on a tiny
fake data tree of synthetic photos (no real data)."""

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

import ml
import ml.testing
from ml.research.cli import main
from ml.research.sources import (
    CLASSES,
    STYLES,
    near_duplicate_groups,
    perceptual_hashes,
    read_sources,
    restyle,
    trim_bands,
)


def textured(seed: int, size=(120, 100), spot=(150, 60, 60)) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.uniform(90, 230, size=3)
    cells = rng.normal(0, 40, size=(6, 6, 3))
    field = np.kron(cells, np.ones((size[1] // 6 + 1, size[0] // 6 + 1, 1)))[: size[1], : size[0]]
    image = Image.fromarray(np.clip(base + field + rng.normal(0, 6, (size[1], size[0], 3)), 0, 255).astype(np.uint8))
    x, y = rng.integers(10, size[0] // 2), rng.integers(10, size[1] // 2)
    ImageDraw.Draw(image).ellipse((x, y, x + size[0] // 3, y + size[1] // 3), fill=spot)
    return image


def jpeg_copy(image: Image.Image, quality=60) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def test_near_duplicates_share_a_group_and_different_photos_do_not():
    photo = textured(1)
    copy = jpeg_copy(photo.resize((180, 150)))
    other = textured(2)
    groups = near_duplicate_groups([perceptual_hashes(im) for im in (photo, copy, other)])
    assert groups[0] == groups[1] and groups[2] != groups[0]


def test_caption_bands_are_trimmed_and_restyled_copies_keep_the_size():
    photo = textured(3, size=(200, 160))
    captioned = Image.new("RGB", (200, 200), (255, 255, 255))
    captioned.paste(photo, (0, 0))
    ImageDraw.Draw(captioned).text((5, 170), "Fig. 1 genital lesion", fill=(0, 0, 0))
    assert trim_bands(captioned).size == (200, 160)
    assert trim_bands(photo).size == photo.size  # nothing to trim: the photo stays whole
    plain = photo.resize((224, 224))
    rng = np.random.default_rng(0)
    assert all(restyle(plain, style, rng).size == (224, 224) for style in STYLES)


def write_tree(root):
    layout = {
        "msld_v1/mpox": ("M", (200, 60, 60)),
        "msld_v1/non_mpox": ("NM", (120, 160, 60)),
        "healthy_abdomen": ("train", None),
        "genital_lesions/genital_herpes": ("herpes", (230, 230, 200)),
        "genital_lesions/genital_warts": ("warts", (120, 100, 80)),
        "genital_lesions/syphilis": ("syph", (90, 20, 40)),
    }
    seed = 0
    for folder, (prefix, spot) in layout.items():
        (root / folder).mkdir(parents=True)
        for i in range(6):
            seed += 1
            image = textured(seed, spot=spot or (200, 170, 150))
            for k in range(2 if prefix in ("M", "NM") else 1):  # MSLD: two crops per patient
                image.save(root / folder / f"{prefix}{i:02d}_{k + 1:02d}.jpg")
    (root / "genital_lesions/syphilis/broken.jpg").write_bytes(b"not an image")


def test_read_sources_groups_by_patient_file_and_hash(tmp_path):
    write_tree(tmp_path)
    lines = []
    photos, images = read_sources(tmp_path, lines.append)
    by_source = {}
    for p in photos:
        by_source.setdefault(p.source, []).append(p)
    assert len(by_source["msld_mpox"]) == 12 and len({p.group for p in by_source["msld_mpox"]}) == 6
    assert len({p.group for p in by_source["healthy_abdomen"]}) == 6
    assert {p.label for p in photos} == set(CLASSES)
    assert any("skipped" in line and "broken.jpg" in line for line in lines)
    assert len(images) == len(photos)


def test_sources_command_reports_held_out_sources_and_ships_a_differential_checkpoint(tmp_path):
    write_tree(tmp_path / "data")
    checkpoint = tmp_path / "model.pt"
    main(
        [
            "sources",
            "--data-root",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "out"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--checkpoint",
            str(checkpoint),
            "--threads",
            "2",
            "--methods",
            "harmonised+aug",
            "probe_as_is-augmented_directions",
            "--bootstrap",
            "50",
        ]
    )
    report = json.loads((tmp_path / "out" / "sources.json").read_text())
    assert set(report["methods"]) == {"harmonised+aug", "probe_as_is-augmented_directions"}
    method = report["methods"]["harmonised+aug"]
    assert set(method["source_held_out"]) == {
        "msld_chickenpox_measles",
        "healthy_abdomen",
        "genital_herpes",
        "genital_warts",
        "syphilis",
    }
    assert 0 <= method["in_distribution"]["auc"]["value"] <= 1
    assert set(method["style"]) == {"bound", *STYLES}
    assert set(report["trap"]["harmonised+aug"]) == {"MSLD only", "+ genital lesions", "+ abdomens", "+ both"}
    assert report["differential"]["classes"] == list(CLASSES)
    # the assessability rule, judged per source (out of sample where it can be)
    assessable = report["checkpoint"]["assessment"]["assessable_by_source"]
    assert set(assessable) == {s for s in report["sources"] if report["sources"][s]}
    assert all(0 <= entry["value"] <= 1 for entry in assessable.values())
    model = ml.load(checkpoint, auto_roi=False)
    analysis = model.analyse(textured(99))
    assert set(analysis.differential) == set(CLASSES)
    assert sum(analysis.differential.values()) == pytest.approx(1.0, abs=1e-4)
    assert model.metadata["differential"]["classes"] == list(CLASSES)
    assert "research use" in model.metadata["training_data"]


@pytest.mark.slow
def test_fine_tuning_the_last_stage_is_judged_by_the_same_checks(tmp_path):
    write_tree(tmp_path / "data")
    common = ["--data-root", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "cache"), "--bootstrap", "20"]
    main(["sources", *common, "--out", str(tmp_path / "out"), "--methods", "probe_as_is", "finetune_tail"])
    report = json.loads((tmp_path / "out" / "sources.json").read_text())
    tuned, probe = report["methods"]["finetune_tail"], report["methods"]["probe_as_is"]
    assert set(tuned["source_held_out"]) == set(probe["source_held_out"]) and len(tuned["source_held_out"]) == 5
    assert 0 <= tuned["in_distribution"]["auc"]["value"] <= 1
    assert set(tuned["style"]) == {"bound", *STYLES}
    assert set(report["trap"]) == {"probe_as_is"}  # the trap's extra fits are left out for fine-tuning
    assert list((tmp_path / "cache").glob("sources-*-trunk.pt"))  # the last stage's inputs, cached apart


def test_sources_cam_reports_the_heatmap_share_on_borders_captions_and_watermarks(tmp_path):
    write_tree(tmp_path / "data")
    checkpoint = ml.testing.make_random_checkpoint(tmp_path / "m.pt", arch="efficientnet_lite0", input_size=64)
    main(
        [
            "sources-cam",
            "--data-root",
            str(tmp_path / "data"),
            "--model",
            str(checkpoint),
            "--json",
            str(tmp_path / "cam.json"),
            "--per-source",
            "3",
            "--bootstrap",
            "20",
        ]
    )
    report = json.loads((tmp_path / "cam.json").read_text())
    assert report["caption_area_share"] == pytest.approx(8 / 64)  # int(64 * 0.14) rows
    assert 0.02 < report["watermark_area_share"] < 0.8  # the text's pixels, widened
    for source in ("msld_mpox", "healthy_abdomen", "syphilis"):
        entries = report[source]
        for key in ("border_mass", "caption_mass", "watermark_mass", "watermark_region_mass_plain"):
            entry = entries[key]
            # syphilis's draw may hold the unreadable file, which is left out
            assert 0.0 <= entry["value"] <= 1.0 and entry["n"] in ((2, 3) if source == "syphilis" else (3,))
        assert entries["watermark_pull"]["value"] == pytest.approx(
            entries["watermark_mass"]["value"] - entries["watermark_region_mass_plain"]["value"]
        )


def test_paired_comparison_of_two_backbones_is_zero_for_one_and_positive_for_a_better_one(tmp_path):
    """Two feature caches of the same photos: identical features differ by exactly 0; features
    with the mpox signal added win on every AUC, and the CI is of the paired difference."""
    import torch

    from ml.research.source_study import paired_comparison

    write_tree(tmp_path)
    photos, _ = read_sources(tmp_path, lambda *_: None)
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(len(photos), 16)).astype(np.float32)
    is_mpox = np.array([p.label == "mpox" for p in photos], dtype=np.float32)

    def cache(features):
        rows = torch.tensor(features).half()
        return {
            "as_is": rows,
            "styled": torch.zeros(len(photos), dtype=torch.bool),
            **{f"style_{s}": rows for s in STYLES},
        }

    same = paired_comparison(photos, {"a": cache(noise), "b": cache(noise)}, seed=0, n_boot=20)
    assert same["pooled"]["difference"] == 0 and same["pooled"]["ci95"] == [0.0, 0.0]
    signal = noise.copy()
    signal[:, 0] += 4 * is_mpox
    better = paired_comparison(photos, {"a": cache(noise), "b": cache(signal)}, seed=0, n_boot=20)
    assert {"in_distribution", "pooled", "healthy_abdomen", "syphilis"} <= set(better)
    for key in ("in_distribution", "pooled"):
        assert better[key]["b"] > better[key]["a"] and better[key]["difference"] > 0
        assert better[key]["ci95"][0] <= better[key]["difference"] <= better[key]["ci95"][1]


def test_a_head_fitted_without_nuisance_directions_ignores_moves_along_them():
    """The look-change directions projected out before the fit fold into the head's raw weights:
    moving a photo's features along them leaves every logit where it was."""
    from ml.research.heads import SoftmaxHead

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    look = np.zeros(8, np.float32)
    look[0] = 1.0
    x[:, 0] += 3 * y  # the look happens to separate the classes in training
    x[:, 1] += 1.5 * y  # the lesion does too
    nuisance = np.outer(rng.normal(size=50), look).astype(np.float32)  # the same photos, two looks
    plain = SoftmaxHead(2).fit(x, y)
    robust = SoftmaxHead(2).fit(x, y, nuisance=nuisance, dims=1)
    moved = x + 5 * look
    np.testing.assert_allclose(robust.logits(moved), robust.logits(x), atol=1e-4)
    assert np.abs(plain.logits(moved) - plain.logits(x)).max() > 0.5
    # the lesion direction still separates the classes
    assert robust.binary_logit(x)[y == 1].mean() > robust.binary_logit(x)[y == 0].mean() + 1


def test_restyled_directions_come_from_the_training_photos_restyled_copies_only():
    import torch

    from ml.research.source_study import METHODS, nuisance_rows

    n, width = 6, 4
    harmonised = torch.zeros(n, width)
    cache = {"harmonised": harmonised.half(), "styled": torch.tensor([True, True, False, True, False, False])}
    for k, style in enumerate(STYLES):
        cache[f"style_{style}"] = (harmonised + k + 1).half()  # each look moves every photo by k + 1
    rows = nuisance_rows(cache, np.array([0, 2, 3]), METHODS["probe_as_is-restyled_directions"])
    # photos 0 and 3 are restyled (2 is not), one row per look each
    assert rows.shape == (2 * len(STYLES), width)
    assert sorted(set(rows[:, 0].tolist())) == [float(k + 1) for k in range(len(STYLES))]
    assert nuisance_rows(cache, np.array([0]), METHODS["probe_as_is"]) is None
