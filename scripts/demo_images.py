"""Copy the real photographs that ship in the scikit-image wheel into a folder for the demo."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import skimage

PHOTOS = (
    "astronaut.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "hubble_deep_field.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "page.png",
    "retina.jpg",
    "rocket.jpg",
    "text.png",
)


def main(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    source = Path(skimage.__file__).parent / "data"
    for name in PHOTOS:
        shutil.copyfile(source / name, target / name)
    print(f"{len(PHOTOS)} photographs in {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
