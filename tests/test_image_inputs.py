"""The worker's decoding of inputs: sizes from headers, decompression bombs, every staged format."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from sluice.ids import is_image_name
from sluice_worker.image_header import image_size
from sluice_worker.inputs import TOO_LARGE, decode_image

GiB = 1024**3


def _tiff_header(order: str, big: bool, kind: int, width: int, height: int) -> bytes:
    """A TIFF's header and first directory: ImageWidth and ImageLength of field type `kind`."""
    value = {3: "H", 4: "I", 16: "Q"}[kind]
    slot = 8 if big else 4
    entries = [
        struct.pack(order + "HH" + ("Q" if big else "I"), tag, kind, 1)
        + struct.pack(order + value, size).ljust(slot, b"\0")
        for tag, size in ((254, 0), (256, width), (257, height))
    ]
    mark = b"II" if order == "<" else b"MM"
    if big:
        head = mark + struct.pack(order + "HHHQ", 43, 8, 0, 16) + struct.pack(order + "Q", len(entries))
    else:
        head = mark + struct.pack(order + "HI", 42, 8) + struct.pack(order + "H", len(entries))
    return head + b"".join(entries) + b"\0" * slot


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("kind", [3, 4])
def test_tiff_size_comes_from_the_header(order: str, big: bool, kind: int) -> None:
    assert image_size(_tiff_header(order, big, kind, 40000, 30001)) == (40000, 30001)


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("bigtiff", [False, True])
def test_tiff_size_of_real_files_matches_the_decoded_image(
    tmp_path: Path, byteorder: str, bigtiff: bool
) -> None:
    path = tmp_path / "small.tif"
    pixels = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    tifffile.imwrite(path, pixels, byteorder=byteorder, bigtiff=bigtiff, compression="zlib")
    data = path.read_bytes()
    loaded = decode_image("small.tif", data)
    assert loaded.image is not None
    assert image_size(data) == (53, 37) == (loaded.image.shape[1], loaded.image.shape[0])


def test_truncated_or_odd_headers_give_no_size() -> None:
    whole = _tiff_header("<", False, 3, 10, 20)
    long8_in_classic = whole[:24] + struct.pack("<H", 16) + whole[26:]  # the width's field type
    for data in (whole[:7], whole[:20], b"II*\0\xff\xff\xff\x7f", b"MM\0\x2c" + bytes(12), long8_in_classic):
        assert image_size(data) is None
    # A BMP with an OS/2 core header keeps its sizes in 16 bits.
    core = b"BM" + bytes(12) + struct.pack("<IHHHH", 12, 9000, 7000, 1, 24)
    assert image_size(core) == (9000, 7000)


def _deflate_bomb(path: Path, side: int = 30000, tile: int = 1024) -> None:
    """A real deflate-compressed, tiled TIFF of side x side pixels, written tile by tile from one
    compressed tile of zeros, so its pixels are never held in memory (~1 MB on disk)."""
    compressed = zlib.compress(bytes(tile * tile), 9)
    tiles = (-(-side // tile)) ** 2
    tifffile.imwrite(
        path,
        iter([compressed] * tiles),
        shape=(side, side),
        dtype=np.uint8,
        tile=(tile, tile),
        compression="zlib",
        photometric="minisblack",
    )


_DECODE = """
import json, sys, time
from pathlib import Path
from sluice_worker.inputs import decode_image
import cv2
import numpy as np

data = Path(sys.argv[1]).read_bytes()
start = time.monotonic()
loaded = decode_image("bomb.tif", data)
seconds = time.monotonic() - start
# Without the header check, OpenCV's own limit (set by importing sluice_worker) refuses it.
try:
    direct = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    opencv = "decoded" if direct is not None else "refused"
except cv2.error:
    opencv = "refused"
# Its own peak RSS: VmHWM is this program's, where wait4's ru_maxrss also counts the parent's
# pages copied by the fork before exec (a test run that has loaded models is over 0.5 GiB).
status = Path("/proc/self/status").read_text()
peak = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) * 1024
print(json.dumps({"error": loaded.error, "seconds": seconds, "opencv": opencv, "peak": peak}))
"""


def _run_child(argv: list[str], folder: Path, timeout_s: float) -> tuple[int, str]:
    """Run `argv`; its exit status and its stdout (the test fails when it runs over `timeout_s`)."""
    out = folder / "stdout"
    with out.open("wb") as stdout:
        child = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.STDOUT)
    try:
        status = child.wait(timeout_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        pytest.fail(f"{argv[:2]} ran over {timeout_s} s:\n{out.read_text()}")
    return status, out.read_text()


def test_a_deflate_tiff_bomb_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.tif"
    _deflate_bomb(bomb)
    assert bomb.stat().st_size < 2 * 1024 * 1024
    status, out = _run_child([sys.executable, "-c", _DECODE, str(bomb)], tmp_path, 120)
    assert status == 0, out
    result = json.loads(out.splitlines()[-1])
    assert result["error"].startswith(f"{TOO_LARGE} (30000x30000 pixels"), result
    assert result["seconds"] < 1.0
    assert result["opencv"] == "refused"
    assert result["peak"] < GiB / 2, f"peak RSS {result['peak'] / GiB:.2f} GiB"


def test_a_gif_is_an_image_and_the_worker_decodes_it() -> None:
    pixels = np.zeros((24, 40, 3), dtype=np.uint8)
    pixels[4:12, 6:30] = (0, 0, 255)
    ok, encoded = cv2.imencode(".gif", pixels)  # OpenCV's own GIF codec, which decodes it too
    assert ok
    data = encoded.tobytes()
    assert data.startswith(b"GIF89a")
    assert is_image_name("scan.gif") and is_image_name("SCAN.GIF")
    assert image_size(data) == (40, 24)
    loaded = decode_image("scan.gif", data)
    assert loaded.image is not None and loaded.image.shape == (24, 40, 3)
    assert loaded.image[8, 10].tolist()[2] > 200 and loaded.image[20, 35].tolist() == [0, 0, 0]
