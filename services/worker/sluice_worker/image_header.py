"""Reading an image's width and height from its first bytes, without decoding it.

This lets the worker refuse a decompression bomb before allocating its pixels. Covers every
format staging takes (PNG, JPEG, GIF, BMP, WebP and TIFF: classic and BigTIFF, either byte order;
the first page, which is what OpenCV decodes). Anything else, or a header that cannot be read,
returns None; OpenCV's own pixel limit (set in `sluice_worker/__init__.py`) still bounds its decode.
"""

from __future__ import annotations

import struct

_PNG = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers (SOF0-SOF15 except DHT, JPG and DAC) carry the frame size.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xD9)})
_TIFF_BYTE_ORDER = {b"II": "<", b"MM": ">"}
_TIFF_WIDTH, _TIFF_HEIGHT = 256, 257
# Field types a width or height may have: SHORT, LONG and (BigTIFF) LONG8.
_TIFF_VALUE = {3: "H", 4: "I", 16: "Q"}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    index = 2
    while index + 4 <= len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        if marker == 0xFF:  # fill byte
            index += 1
            continue
        if marker in _JPEG_NO_LENGTH:
            index += 2
            continue
        (length,) = struct.unpack(">H", data[index + 2 : index + 4])
        if marker in _JPEG_SOF:
            if index + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return width, height
        if marker == 0xDA:  # start of scan: no frame header before the image data
            return None
        index += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        (bits,) = struct.unpack("<I", data[21:25])
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """ImageWidth and ImageLength of the first image file directory."""
    order = _TIFF_BYTE_ORDER[data[:2]]
    (version,) = struct.unpack_from(order + "H", data, 2)
    if version == 42:  # classic: 32-bit offsets, 16-bit entry count, 12-byte entries
        (offset,) = struct.unpack_from(order + "I", data, 4)
        count_format, entry_format = "H", "HHI4s"
    elif version == 43 and len(data) >= 16:  # BigTIFF: 64-bit offsets and counts, 20-byte entries
        (offset,) = struct.unpack_from(order + "Q", data, 8)
        count_format, entry_format = "Q", "HHQ8s"
    else:
        return None
    start = offset + struct.calcsize(order + count_format)
    if start > len(data):
        return None
    (count,) = struct.unpack_from(order + count_format, data, offset)
    entry_size = struct.calcsize(order + entry_format)
    found: dict[int, int] = {}
    for index in range(min(count, (len(data) - start) // entry_size)):
        tag, kind, values, value = struct.unpack_from(order + entry_format, data, start + index * entry_size)
        if tag not in (_TIFF_WIDTH, _TIFF_HEIGHT) or values < 1 or kind not in _TIFF_VALUE:
            continue
        value_format = order + _TIFF_VALUE[kind]
        if struct.calcsize(value_format) <= len(value):  # a LONG8 does not fit a classic entry
            found[tag] = struct.unpack_from(value_format, value)[0]
    if _TIFF_WIDTH in found and _TIFF_HEIGHT in found:
        return found[_TIFF_WIDTH], found[_TIFF_HEIGHT]
    return None


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    (header,) = struct.unpack_from("<I", data, 14)
    if header == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        width, height = struct.unpack_from("<HH", data, 18)
        return width, height
    width, height = struct.unpack_from("<ii", data, 18)
    return abs(width), abs(height)


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of an encoded image, or None when unknown."""
    if data.startswith(_PNG) and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    if data.startswith(b"BM") and len(data) >= 26:
        return _bmp_size(data)
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data[:2] in _TIFF_BYTE_ORDER and len(data) >= 8:
        return _tiff_size(data)
    return None
