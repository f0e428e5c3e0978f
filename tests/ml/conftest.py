"""Fixtures for the ML tests: tiny random checkpoints and synthetic image folders (no real data)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import ml


@pytest.fixture(scope="session")
def checkpoint_path(tmp_path_factory):
    return ml.testing.make_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "random.pt")


@pytest.fixture(scope="session")
def model(checkpoint_path):
    return ml.load(checkpoint_path)


@pytest.fixture(scope="session")
def photo():
    """Factory for random photos: photo(width, height, seed=0, mode="RGB")."""
    return random_photo


@pytest.fixture(scope="session")
def class_folder():
    """Factory writing a tiny two-class image folder: class_folder(root, ...) -> paths."""
    return write_class_folder


def random_photo(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else 1
    pixels = rng.integers(0, 256, size=(height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels)


def write_class_folder(root, n_patients: int = 4, per_patient: int = 2, size: int = 40):
    """root/mpox/... and root/non_mpox/... with nested folders, mixed formats, two classes of
    distinguishable colour so a tiny model can learn something."""
    paths = []
    for label, (prefix, colour) in enumerate([("NM", (40, 120, 200)), ("M", (200, 60, 40))]):
        folder = root / ("mpox" if label else "non_mpox")
        for p in range(n_patients):
            sub = folder / f"batch{p % 2}"
            sub.mkdir(parents=True, exist_ok=True)
            for k in range(per_patient):
                rng = np.random.default_rng(label * 1000 + p * 10 + k)
                base = np.array(colour, dtype=np.int16) + rng.integers(-30, 30, size=(size, size, 3))
                image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
                ext = ".png" if k % 2 else ".jpg"
                path = sub / f"{prefix}{p:02d}_{k:02d}{ext}"
                image.save(path)
                paths.append(path)
    return paths
