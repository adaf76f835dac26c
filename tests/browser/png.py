"""Just enough PNG decoding (RFC 2083 / PNG 1.2) to tell a blank screenshot from a real one.

Chromium's screenshots are 8-bit RGB or RGBA, non-interlaced; other formats raise ValueError.
Rows are unfiltered with numpy where the filter allows it (None, Sub via a running sum, Up)
and byte by byte for Average and Paeth.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode(data: bytes) -> np.ndarray:
    """PNG bytes -> uint8 array of shape (height, width, channels)."""
    if not data.startswith(_SIGNATURE):
        raise ValueError("not a PNG file")
    pos = len(_SIGNATURE)
    header: tuple[int, ...] | None = None
    idat = bytearray()
    while pos + 8 <= len(data):
        length, ctype = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length:
            raise ValueError("truncated PNG chunk")
        pos += 12 + length
        if ctype == b"IHDR":
            if length != 13:
                raise ValueError("bad PNG IHDR chunk")
            header = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            idat += body
        elif ctype == b"IEND":
            break
    if header is None:
        raise ValueError("PNG without IHDR")
    width, height, depth, color, _, _, interlace = header
    channels = {2: 3, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"unsupported PNG format (depth {depth}, color type {color}, interlace {interlace})")
    try:
        raw = zlib.decompress(bytes(idat))
    except zlib.error as exc:
        raise ValueError(f"bad PNG image data: {exc}") from exc
    stride = width * channels
    if len(raw) != height * (stride + 1):
        raise ValueError("PNG image data has the wrong size")
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        ftype, line = int(rows[y, 0]), rows[y, 1:]
        if ftype == 0:
            cur = line.copy()
        elif ftype == 1:
            sums = np.cumsum(line.reshape(width, channels), axis=0, dtype=np.int64)
            cur = (sums % 256).astype(np.uint8).reshape(stride)
        elif ftype == 2:
            cur = line + prev
        elif ftype in (3, 4):
            cur = _sequential(ftype, line.tolist(), prev.tolist(), channels)
        else:
            raise ValueError(f"unknown PNG filter {ftype}")
        out[y] = cur
        prev = out[y]
    return out.reshape(height, width, channels)


def _sequential(ftype: int, line: list[int], prev: list[int], bpp: int) -> np.ndarray:
    cur = [0] * len(line)
    for i, f in enumerate(line):
        a = cur[i - bpp] if i >= bpp else 0
        b = prev[i]
        if ftype == 3:
            cur[i] = (f + ((a + b) >> 1)) & 0xFF
            continue
        c = prev[i - bpp] if i >= bpp else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        cur[i] = (f + pred) & 0xFF
    return np.array(cur, dtype=np.uint8)


def luma_stats(data: bytes) -> dict[str, float]:
    """Mean and variance of the luma of a PNG image, and how many distinct luma values it has."""
    img = decode(data).astype(np.float64)
    luma = 0.299 * img[:, :, 0] + 0.587 * img[:, :, 1] + 0.114 * img[:, :, 2]
    return {
        "width": float(img.shape[1]),
        "height": float(img.shape[0]),
        "mean": float(luma.mean()),
        "variance": float(luma.var()),
        "distinct": float(len(np.unique(luma.round()))),
    }
