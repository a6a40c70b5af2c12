"""The console's Fluent 2 design tokens: the values of Microsoft's ``@fluentui/tokens`` (pinned
in package-lock.json) for its light and dark web themes, written as CSS custom properties into
shared/console/static/console.css between its two marker comments. The deployed app serves
that file; nothing is built when it runs or deploys. ``make test`` checks the file still holds
the pinned package's values (tests/unit/test_console.py).

    python -m tools.fluent_tokens          # rewrite the block
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CSS = ROOT / "shared" / "console" / "static" / "console.css"
PACKAGE = ROOT / "node_modules" / "@fluentui" / "tokens" / "lib" / "index.js"
BEGIN, END = "/* Fluent 2 tokens (tools/fluent_tokens.py): begin */", "/* Fluent 2 tokens: end */"
TOKENS = (
    "colorNeutralBackground1",
    "colorNeutralBackground2",
    "colorNeutralBackground3",
    "colorNeutralBackground1Hover",
    "colorNeutralForeground1",
    "colorNeutralForeground2",
    "colorNeutralForeground3",
    "colorNeutralForegroundOnBrand",
    "colorNeutralStroke1",
    "colorNeutralStroke2",
    "colorBrandBackground",
    "colorBrandBackgroundHover",
    "colorBrandBackgroundPressed",
    "colorBrandForeground1",
    "colorBrandForegroundLink",
    "colorStrokeFocus2",
    "colorStatusDangerForeground1",
    "colorStatusDangerBackground1",
    "colorStatusSuccessForeground1",
    "colorStatusSuccessBackground1",
    "colorStatusWarningForeground1",
    "colorStatusWarningBackground1",
    "borderRadiusMedium",
    "borderRadiusLarge",
    "fontFamilyBase",
    "fontSizeBase200",
    "fontSizeBase300",
    "fontSizeBase400",
    "fontSizeBase500",
    "fontSizeBase600",
    "lineHeightBase300",
    "fontWeightSemibold",
    "shadow4",
)


def themes() -> dict[str, dict[str, str]]:
    node = shutil.which("node")
    if node is None or not PACKAGE.is_file():
        raise SystemExit("node and node_modules/@fluentui/tokens are needed: run make setup")
    script = (
        f"import * as t from {json.dumps(PACKAGE.as_uri())};"
        f"const names = {json.dumps(TOKENS)};"
        "const pick = (th) => Object.fromEntries(names.map((n) => [n, String(t[th][n])]));"
        "console.log(JSON.stringify({light: pick('webLightTheme'), dark: pick('webDarkTheme')}));"
    )
    done = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, check=True)
    values: dict[str, dict[str, str]] = json.loads(done.stdout)
    return values


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def block(values: dict[str, dict[str, str]]) -> str:
    def declarations(theme: dict[str, str], indent: str) -> str:
        return "\n".join(f"{indent}--{_kebab(k)}: {v};" for k, v in theme.items())

    # The dark theme overrides only what differs from the light one (its colours and shadows).
    dark = {k: v for k, v in values["dark"].items() if values["light"].get(k) != v}
    return (
        f"{BEGIN}\n:root {{\n  color-scheme: light dark;\n{declarations(values['light'], '  ')}\n}}\n"
        f"@media (prefers-color-scheme: dark) {{\n  :root {{\n{declarations(dark, '    ')}\n  }}\n}}\n{END}"
    )


def current_block(text: str) -> str:
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[start:end]


def main() -> None:
    text = CSS.read_text(encoding="utf-8")
    CSS.write_text(text.replace(current_block(text), block(themes())), encoding="utf-8")
    print(f"wrote the Fluent 2 tokens into {CSS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
