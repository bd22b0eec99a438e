"""The benchmark's images: JPEGs cut from scikit-image's photographs.

`write_images`: about 640x480. Each image is a seeded crop of one photograph (a different region
and scale every time), resized to one of a few common sizes near 640x480, sometimes mirrored, and
saved as a JPEG of quality 85-95. `write_small_images`: 64x64 crops (the orchestration ceiling's
inputs, about 2 kB each). The same `count` and `seed` always give the same files.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tests.images import photographs

SIZES = ((640, 480), (640, 480), (640, 480), (640, 427), (600, 450), (480, 640))
"""(width, height) choices, weighted towards 640x480."""


def _crop(photo: np.ndarray, aspect: float, rng: np.random.Generator) -> np.ndarray:
    """A random crop of `photo` with width/height ~ `aspect`, covering 50-100 % of its shorter fit."""
    height, width = photo.shape[:2]
    fit_w = min(width, int(height * aspect))
    fit_h = min(height, int(fit_w / aspect))
    fit_w = int(fit_h * aspect)
    scale = rng.uniform(0.5, 1.0)
    crop_w, crop_h = max(16, int(fit_w * scale)), max(16, int(fit_h * scale))
    x = int(rng.integers(0, width - crop_w + 1))
    y = int(rng.integers(0, height - crop_h + 1))
    return photo[y : y + crop_h, x : x + crop_w]


def write_images(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """Write `count` JPEGs named img-0000.jpg... into `folder`; returns their paths in order."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    photos = photographs()
    paths = []
    for i in range(count):
        width, height = SIZES[int(rng.integers(0, len(SIZES)))]
        crop = _crop(photos[i % len(photos)], width / height, rng)
        image = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
        if rng.random() < 0.3:
            image = cv2.flip(image, 1)
        quality = int(rng.integers(85, 96))
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError(f"could not encode image {i}")
        path = folder / f"img-{i:04d}.jpg"
        path.write_bytes(encoded.tobytes())
        paths.append(path)
    return paths


SMALL_SIDE = 64


def write_small_images(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """Write `count` 64x64 JPEGs (quality 90) named tiny-00000.jpg... into `folder`, cut at seeded
    places from the photographs scaled to 256 pixels wide; returns their paths in order."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    small = [cv2.resize(p, (256, max(SMALL_SIDE, 256 * p.shape[0] // p.shape[1]))) for p in photographs()]
    paths = []
    for i in range(count):
        photo = small[i % len(small)]
        y = int(rng.integers(0, photo.shape[0] - SMALL_SIDE + 1))
        x = int(rng.integers(0, photo.shape[1] - SMALL_SIDE + 1))
        ok, encoded = cv2.imencode(
            ".jpg", photo[y : y + SMALL_SIDE, x : x + SMALL_SIDE], [cv2.IMWRITE_JPEG_QUALITY, 90]
        )
        if not ok:
            raise RuntimeError(f"could not encode image {i}")
        path = folder / f"tiny-{i:05d}.jpg"
        path.write_bytes(encoded.tobytes())
        paths.append(path)
    return paths
