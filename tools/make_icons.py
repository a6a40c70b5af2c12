"""Draws the Teams app icons with the standard library only (zlib + struct).

    python -m tools.make_icons     # rewrites appPackage/color.png and appPackage/outline.png

Teams wants a 192x192 full-colour icon and a 32x32 outline icon: white on a transparent
background. Both show a warning triangle with an exclamation mark.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

APP_PACKAGE = Path(__file__).resolve().parents[1] / "appPackage"
COLOR_SIZE = 192  # Teams manifest schema: icons.color
OUTLINE_SIZE = 32  # Teams manifest schema: icons.outline
ACCENT = (0xC4, 0x31, 0x4B)  # also the manifest's accentColor
WHITE = (0xFF, 0xFF, 0xFF)
SUPERSAMPLE = 4  # samples per pixel side, for smooth edges


def png(width: int, height: int, rgba_rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + row for row in rgba_rows)  # filter type 0 on every row
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def _inside_triangle(x: float, y: float, inset: float) -> bool:
    # Triangle with apex (0.5, 0.14) and base y = 0.84 from x = 0.1 to 0.9, shrunk by `inset`.
    top, bottom, half = 0.14 + inset * 2.2, 0.84 - inset, 0.4 - inset * 1.9
    if not top <= y <= bottom:
        return False
    return abs(x - 0.5) <= half * (y - top) / (bottom - top)


def _exclamation(x: float, y: float) -> bool:
    bar = abs(x - 0.5) <= 0.045 and 0.36 <= y <= 0.64
    dot = (x - 0.5) ** 2 + (y - 0.73) ** 2 <= 0.05**2
    return bar or dot


def draw(size: int, outline: bool) -> bytes:
    rows = []
    for py in range(size):
        row = bytearray()
        for px in range(size):
            hits = 0
            for sy in range(SUPERSAMPLE):
                for sx in range(SUPERSAMPLE):
                    x = (px + (sx + 0.5) / SUPERSAMPLE) / size
                    y = (py + (sy + 0.5) / SUPERSAMPLE) / size
                    if outline:
                        ring = _inside_triangle(x, y, 0.0) and not _inside_triangle(x, y, 0.07)
                        hits += ring or _exclamation(x, y)
                    else:
                        hits += _inside_triangle(x, y, 0.0) and not _exclamation(x, y)
            coverage = hits / SUPERSAMPLE**2
            if outline:  # white, coverage as alpha, transparent elsewhere
                row += bytes((*WHITE, round(255 * coverage)))
            else:  # opaque: white triangle on the accent colour
                colour = [round(a + (w - a) * coverage) for a, w in zip(ACCENT, WHITE, strict=True)]
                row += bytes((*colour, 255))
        rows.append(bytes(row))
    return png(size, size, rows)


def main() -> int:
    APP_PACKAGE.mkdir(exist_ok=True)
    (APP_PACKAGE / "color.png").write_bytes(draw(COLOR_SIZE, outline=False))
    (APP_PACKAGE / "outline.png").write_bytes(draw(OUTLINE_SIZE, outline=True))
    print(f"wrote {APP_PACKAGE / 'color.png'} and {APP_PACKAGE / 'outline.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
