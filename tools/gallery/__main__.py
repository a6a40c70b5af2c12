"""Render every card kind and state to PNG (docs/cards/) and check what a person would see.

    python -m tools.gallery [--out DIR] [--check]

Each card from tests/golden/cards is rendered by the adaptivecards library in headless Chromium
with Teams' light, dark and high-contrast host configs, 640 px wide, in the fonts the pinned npm
packages ship (Arimo for Teams' Segoe UI, Noto Color Emoji), so it measures the same on every
machine. It fails (exit code 1), naming the card and theme, when the renderer warns about the
card, a text or button is cut off or runs past the card's edge, a text has less than 4.5:1
contrast on its background, or a text is drawn with a font of the machine instead of a shipped
one. Screenshots: every card in the light theme, the alert cards also in dark and high contrast.
They are written to the output folder only when every card passes: a failed run leaves it as it
was. ``--check`` measures without writing screenshots.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tools.gallery.cases import ROOT, THEMES, all_cards, host_config

DOCS = ROOT / "docs" / "cards"
WIDTH = 640
MIN_CONTRAST = 4.5
# Shown in every theme in the README; the rest in the light theme.
ALL_THEMES = ("alert-open", "alert-acknowledged", "alert-resolved", "alert-reopened", "storm-summary")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def card_hash(card: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(card, sort_keys=True, ensure_ascii=True).encode()).hexdigest()[:16]


def render(cards: list[tuple[str, dict[str, Any]]], out: Path | None) -> list[dict[str, Any]]:
    """The renderer's measurements of each card in each theme (and the screenshots, into ``out``)."""
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is needed to render cards (Node.js 20 or later)")
    if not Path(CHROMIUM).exists():
        raise SystemExit(
            f"Chromium is needed to render cards and was not found at {CHROMIUM}: run 'bash "
            "tools/install_chromium.sh' (make gallery does), "
            "or set CHROMIUM to its path"
        )
    shots: dict[str, Any] = {"light": "all"} | {theme: list(ALL_THEMES) for theme in THEMES if theme != "light"}
    job = {
        "cards": [{"name": name, "card": card} for name, card in cards],
        "themes": {theme: host_config(theme) for theme in THEMES},
        "width": WIDTH,
        "screenshots": shots,
        "out": str(out) if out else None,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as handle:
        json.dump(job, handle)
    try:
        done = subprocess.run(
            [node, str(ROOT / "tools" / "gallery" / "render.mjs"), handle.name],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "CHROMIUM": CHROMIUM},
        )
    finally:
        os.unlink(handle.name)
    if done.returncode != 0:
        raise SystemExit(f"the card renderer failed (exit code {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout)["results"]


def problems(results: list[dict[str, Any]]) -> list[str]:
    found = []
    for r in results:
        where = f"{r['name']} ({r['theme']})"
        found += [f"{where}: the renderer warns: {w}" for w in r["warnings"]]
        found += [f"{where}: drawn with a font of this machine, not a shipped one: {f}" for f in r["systemFonts"]]
        found += [f"{where}: cut off: {t!r}" for t in r["clipped"]]
        found += [f"{where}: runs past the card's edge: {t!r}" for t in r["overflow"]]
        found += [
            (
                f"{where}: contrast {f['ratio']}:1 (< {MIN_CONTRAST}:1) for {f['text']!r} ({f['color']} on "
                f"{f['background']})"
            )
            for f in r["contrast"]["failures"]
        ]
    return found


def write_index(out: Path, cards: list[tuple[str, dict[str, Any]]], results: list[dict[str, Any]]) -> None:
    lowest = {theme: min(r["contrast"]["min"] for r in results if r["theme"] == theme) for theme in THEMES}
    lines = [
        "# The cards",
        "",
        "Every card the connector sends, rendered by `make gallery` with the `adaptivecards` renderer and",
        "Teams' host configs (see `tools/gallery/reference/`), 640 px wide. The inputs are",
        "`tests/golden/cards/NAME.json`; the cards, `NAME.expected.json` beside them. Dates and times",
        "show in the reader's time zone, so they differ from Teams' only by the zone. Teams draws",
        "cards in Segoe UI, which may not be redistributed: these are drawn in Arimo (Arial's",
        "metrics), with Noto Sans Math, Noto Sans JP and Noto Color Emoji for what it lacks, from",
        "the pinned npm packages, so they look the same on every machine.",
        "",
        "Lowest contrast of any text on its background: "
        + ", ".join(f"{theme} {lowest[theme]}:1" for theme in THEMES)
        + " (WCAG AA asks 4.5:1).",
        "",
    ]
    for name, card in cards:
        lines += [f"## {name}", "", f"<!-- card {card_hash(card)} -->"]
        for theme in THEMES:
            png = out / f"{name}.{theme}.png"
            if png.exists():
                lines.append(f"![{name}, {theme} theme]({png.name})")
        lines.append("")
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOCS, help="where the PNGs and their index go (default docs/cards)")
    parser.add_argument("--check", action="store_true", help="measure only; write no screenshots")
    args = parser.parse_args(argv)

    cards = all_cards()
    with tempfile.TemporaryDirectory(prefix="gallery-") as scratch:
        # Rendered beside, and moved into the output folder only when every card passes.
        staging = None if args.check else Path(scratch)
        results = render(cards, staging)
        found = problems(results)
        if staging is not None and not found:
            write_index(staging, cards, results)
            publish(staging, args.out)
            results = [{**r, "png": str(args.out / Path(r["png"]).name) if r["png"] else None} for r in results]
    for theme in THEMES:
        mine = [r for r in results if r["theme"] == theme]
        print(
            f"  {theme:>13}: {len(mine)} cards, lowest contrast {min(r['contrast']['min'] for r in mine)}:1, "
            f"tallest {max(r['height'] for r in mine)} px"
        )
    for problem in found:
        print(f"  ✗ {problem}", file=sys.stderr)
    if found and not args.check:
        print(f"  {len(found)} problem(s): nothing written to {args.out}", file=sys.stderr)
    elif not args.check:
        print(f"  {sum(1 for r in results if r['png'])} screenshots in {args.out}")
    return 1 if found else 0


def publish(staging: Path, out: Path) -> None:
    """Replace the screenshots and index in ``out`` with those in ``staging``."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    for new in sorted(staging.iterdir()):
        shutil.move(str(new), out / new.name)


if __name__ == "__main__":
    sys.exit(main())
