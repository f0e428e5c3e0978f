"""Synthetic but realistic inputs: 1024x768 RGB 'skin photos' with a few lesion-like blobs."""

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

WIDTH, HEIGHT = 1024, 768
PHONE_SIZE = (4032, 3024)  # a 12 MP phone camera photo, what patients actually upload
JPEG_QUALITY = 92  # what triage.images.encode_jpeg stores


def make_photo(seed: int) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A noisy skin-toned photo with lesions; returns (image, box around the main lesion)."""
    rng = np.random.default_rng(seed)
    base = np.array([200, 150, 125], dtype=np.float32) + rng.uniform(-25, 25, 3)
    shade = np.linspace(0.85, 1.1, WIDTH, dtype=np.float32)[None, :, None]
    pixels = base * shade + rng.normal(0, 8, (HEIGHT, WIDTH, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    cx, cy, r = int(rng.integers(300, 724)), int(rng.integers(250, 518)), int(rng.integers(40, 90))
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(150, 70, 60), outline=(235, 220, 200), width=6)
    for _ in range(4):
        x, y, s = int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT)), int(rng.integers(8, 30))
        draw.ellipse([x - s, y - s, x + s, y + s], fill=(170, 90, 80))
    box = (cx - 2 * r, cy - 2 * r, cx + 2 * r, cy + 2 * r)
    return image.filter(ImageFilter.GaussianBlur(1.5)), box


def make_photos(count: int) -> tuple[list[Image.Image], list[tuple[int, int, int, int]]]:
    pairs = [make_photo(seed) for seed in range(count)]
    return [image for image, _ in pairs], [box for _, box in pairs]


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def phone_sized(image: Image.Image) -> Image.Image:
    """The photo scaled up to a phone camera's 12 MP, for the worker's decode and render costs."""
    return image.resize(PHONE_SIZE, Image.Resampling.BICUBIC)


def phone_jpeg(seed: int) -> bytes:
    """A phone camera's upload: 12 MP with sensor grain, about 1.35 MB as JPEG (issue 26's upload size)."""
    pixels = np.asarray(phone_sized(make_photo(seed)[0]), dtype=np.float32)
    grain = np.random.default_rng(seed).normal(0, 2.3, pixels.shape)
    return jpeg_bytes(Image.fromarray(np.clip(pixels + grain, 0, 255).astype(np.uint8)))
