"""A grouped bar chart written as PNG with numpy and zlib only.

- PNG (ISO/IEC 15948, W3C): https://www.w3.org/TR/png/ (signature, IHDR, IDAT with zlib
  data of filter-byte-prefixed scanlines, IEND; every chunk CRC-32 protected)

Why not matplotlib: the benchmark's chart is a handful of bars and labels, and the product
should not pull a plotting stack (and its wheels) into a sizing tool that runs on servers.
Text uses a built-in 5x7 bitmap font (upper-case letters, digits, a few signs), drawn at 2x.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

_GLYPHS: dict[str, tuple[str, ...]] = {
    "0": (".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."),
    "1": ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "2": (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),
    "3": ("####.", "....#", "....#", ".###.", "....#", "....#", "####."),
    "4": ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),
    "5": ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),
    "6": (".###.", "#....", "#....", "####.", "#...#", "#...#", ".###."),
    "7": ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),
    "8": (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),
    "9": (".###.", "#...#", "#...#", ".####", "....#", "....#", ".###."),
    "A": (".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "B": ("####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."),
    "C": (".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."),
    "D": ("####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."),
    "E": ("#####", "#....", "#....", "####.", "#....", "#....", "#####"),
    "F": ("#####", "#....", "#....", "####.", "#....", "#....", "#...."),
    "G": (".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"),
    "H": ("#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "I": (".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "J": ("..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."),
    "K": ("#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"),
    "L": ("#....", "#....", "#....", "#....", "#....", "#....", "#####"),
    "M": ("#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"),
    "N": ("#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#", "#...#"),
    "O": (".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "P": ("####.", "#...#", "#...#", "####.", "#....", "#....", "#...."),
    "Q": (".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"),
    "R": ("####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"),
    "S": (".####", "#....", "#....", ".###.", "....#", "....#", "####."),
    "T": ("#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."),
    "U": ("#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "V": ("#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."),
    "W": ("#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."),
    "X": ("#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"),
    "Y": ("#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."),
    "Z": ("#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"),
    " ": (".....",) * 7,
    ".": (".....", ".....", ".....", ".....", ".....", ".##..", ".##.."),
    ",": (".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."),
    ":": (".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."),
    "%": ("##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"),
    "/": (".....", "....#", "...#.", "..#..", ".#...", "#....", "....."),
    "-": (".....", ".....", ".....", "#####", ".....", ".....", "....."),
    "+": (".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."),
    "(": ("...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."),
    ")": (".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."),
    "=": (".....", ".....", "#####", ".....", "#####", ".....", "....."),
    "_": (".....", ".....", ".....", ".....", ".....", ".....", "#####"),
    "?": (".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."),
    "*": (".....", "#.#.#", ".###.", "#####", ".###.", "#.#.#", "....."),
    ";": (".....", ".##..", ".##..", ".....", ".##..", "..#..", ".#..."),
    "'": ("..#..", "..#..", ".#...", ".....", ".....", ".....", "....."),
    "<": ("...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#."),
    ">": (".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#..."),
}
_BITMAPS = {ch: np.array([[c == "#" for c in row] for row in rows], dtype=bool) for ch, rows in _GLYPHS.items()}

Color = tuple[int, int, int]
WHITE: Color = (255, 255, 255)
BLACK: Color = (20, 20, 20)
GRID: Color = (225, 225, 225)
PALETTE: tuple[Color, ...] = ((31, 119, 180), (255, 127, 14), (150, 150, 150), (44, 160, 44), (214, 39, 40))


class Canvas:
    """An RGB raster with rectangles, lines and bitmap text."""

    def __init__(self, width: int, height: int, background: Color = WHITE) -> None:
        if width < 1 or height < 1:
            raise ValueError("canvas size must be positive")
        self.px = np.empty((height, width, 3), dtype=np.uint8)
        self.px[:, :] = background

    @property
    def width(self) -> int:
        return int(self.px.shape[1])

    @property
    def height(self) -> int:
        return int(self.px.shape[0])

    def rect(self, x0: float, y0: float, x1: float, y1: float, color: Color) -> None:
        xa, xb = sorted((int(round(x0)), int(round(x1))))
        ya, yb = sorted((int(round(y0)), int(round(y1))))
        xa, ya = max(xa, 0), max(ya, 0)
        xb, yb = min(xb, self.width), min(yb, self.height)
        if xa < xb and ya < yb:
            self.px[ya:yb, xa:xb] = color

    def hline(self, x0: float, x1: float, y: float, color: Color) -> None:
        self.rect(x0, y, x1, y + 1, color)

    def vline(self, x: float, y0: float, y1: float, color: Color) -> None:
        self.rect(x, y0, x + 1, y1, color)

    @staticmethod
    def text_width(text: str, scale: int = 2) -> int:
        return len(text) * 6 * scale

    def text(self, x: float, y: float, text: str, color: Color = BLACK, scale: int = 2,
             anchor: str = "left") -> None:
        """Draw ``text`` with its top at ``y``; anchor left, center or right at ``x``."""
        w = self.text_width(text, scale)
        cx = int(round(x - (w / 2 if anchor == "center" else w if anchor == "right" else 0)))
        cy = int(round(y))
        for ch in text.upper():
            glyph = _BITMAPS.get(ch, _BITMAPS["?"])
            big = np.kron(glyph, np.ones((scale, scale), dtype=bool))
            h, gw = big.shape
            ys, xs = slice(max(cy, 0), min(cy + h, self.height)), slice(max(cx, 0), min(cx + gw, self.width))
            sub = big[ys.start - cy:ys.stop - cy, xs.start - cx:xs.stop - cx]
            if sub.size:
                self.px[ys, xs][sub] = color
            cx += 6 * scale

    def png(self) -> bytes:
        return encode_png(self.px)


def encode_png(px: np.ndarray) -> bytes:
    """8-bit RGB PNG of an (H, W, 3) uint8 array (filter 0 on every scanline)."""
    if not isinstance(px, np.ndarray) or px.ndim != 3 or px.shape[2] != 3 or px.dtype != np.uint8:
        raise ValueError("expected an (H, W, 3) uint8 array")
    h, w = int(px.shape[0]), int(px.shape[1])
    raw = np.concatenate([np.zeros((h, 1), dtype=np.uint8), px.reshape(h, w * 3)], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack("!I", len(data)) + kind + data + struct.pack("!I", zlib.crc32(kind + data))

    ihdr = struct.pack("!IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


@dataclass(frozen=True)
class Panel:
    """One chart panel: a title, group labels, series names and values[group][series]
    (None = no bar)."""

    title: str
    groups: tuple[str, ...]
    series: tuple[str, ...]
    values: tuple[tuple[float | None, ...], ...]
    unit: str = ""


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    exp = 10 ** np.floor(np.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp:
            return float(m * exp)
    return float(10 * exp)


def _fmt(v: float) -> str:
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def bar_chart(panels: list[Panel], title: str, width: int = 1200, panel_height: int = 380,
              note: str = "") -> bytes:
    """Panels stacked vertically, one legend on top, an optional note at the bottom; returns
    PNG bytes."""
    if not panels:
        raise ValueError("no panels")
    series = panels[0].series
    legend_h = 70
    note_h = 30 if note else 0
    c = Canvas(width, legend_h + panel_height * len(panels) + note_h)
    if note:
        c.text(20, c.height - 24, note, scale=2)
    c.text(width / 2, 10, title, anchor="center", scale=2)
    x = 40
    for i, name in enumerate(series):
        c.rect(x, 42, x + 18, 60, PALETTE[i % len(PALETTE)])
        c.text(x + 26, 45, name, scale=2)
        x += 26 + Canvas.text_width(name) + 40
    for k, panel in enumerate(panels):
        top = legend_h + k * panel_height
        left, right, bottom = 90, width - 20, top + panel_height - 60
        plot_top = top + 40
        c.text(left, top + 10, panel.title + (f" ({panel.unit})" if panel.unit else ""), scale=2)
        vmax = _nice_max(max((v for row in panel.values for v in row if v is not None), default=1.0))
        for t in range(6):
            val = vmax * t / 5
            y = bottom - (bottom - plot_top) * t / 5
            c.hline(left, right, y, GRID)
            c.text(left - 8, y - 7, _fmt(val), anchor="right", scale=2)
        c.vline(left, plot_top, bottom, BLACK)
        c.hline(left, right, bottom, BLACK)
        ng = max(len(panel.groups), 1)
        gw = (right - left) / ng
        ns = max(len(panel.series), 1)
        bw = min(60.0, gw * 0.8 / ns)
        for g, label in enumerate(panel.groups):
            gx = left + g * gw + (gw - bw * ns) / 2
            for s in range(ns):
                v = panel.values[g][s] if s < len(panel.values[g]) else None
                if v is None:
                    continue
                h = (bottom - plot_top) * min(v, vmax) / vmax
                c.rect(gx + s * bw + 2, bottom - h, gx + (s + 1) * bw - 2, bottom, PALETTE[s % len(PALETTE)])
                c.text(gx + s * bw + bw / 2, bottom - h - 18, _fmt(v), anchor="center", scale=1)
            c.text(left + g * gw + gw / 2, bottom + 12, label, anchor="center", scale=2)
    return c.png()
