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
            "--bootstrap",
            "50",
        ]
    )
    report = json.loads((tmp_path / "out" / "sources.json").read_text())
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
    model = ml.load(checkpoint, auto_roi=False)
    analysis = model.analyse(textured(99))
    assert set(analysis.differential) == set(CLASSES)
    assert sum(analysis.differential.values()) == pytest.approx(1.0, abs=1e-4)
    assert model.metadata["differential"]["classes"] == list(CLASSES)
    assert "research use" in model.metadata["training_data"]


def test_sources_cam_reports_the_heatmap_share_on_borders_and_captions(tmp_path):
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
    for source in ("msld_mpox", "healthy_abdomen", "syphilis"):
        for key in ("border_mass", "caption_mass"):
            entry = report[source][key]
            # syphilis's draw may hold the unreadable file, which is left out
            assert 0.0 <= entry["value"] <= 1.0 and entry["n"] in ((2, 3) if source == "syphilis" else (3,))
