"""The Teams app package (manifest.json and the two icons, zipped) for this deployment: the
manifest template in appPackage/ with the bot's id and the app's host filled in. The console
offers it for download (Connection page); ``make package`` and ``azd up`` build the same bytes
with tools/build_app_package.py, which also validates the manifest against the Teams schema.
"""

from __future__ import annotations

import io
import json
import re
import uuid
import zipfile
from pathlib import Path
from typing import Any

from shared.version import VERSION

APP_PACKAGE = Path(__file__).resolve().parents[1] / "appPackage"
ICONS = ("color.png", "outline.png")
PLACEHOLDER = re.compile(r"\$\{\{([A-Z_]+)\}\}")
GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
HOST = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,63}$")
# Teams identifies an app by this id across versions: derive it from the bot id so every
# rebuild for the same bot updates the same app instead of adding a second one.
TEAMS_APP_ID_NAMESPACE = uuid.UUID("5f1f3c2e-8a47-4b8e-9c55-0d8f5a6b2c11")
ZIP_TIMESTAMP = (2020, 1, 1, 0, 0, 0)  # fixed: the same inputs build the same bytes


class PackageError(ValueError):
    """An option is missing or invalid; the message says which and what to do."""


def teams_app_id_for(bot_app_id: str) -> str:
    return str(uuid.uuid5(TEAMS_APP_ID_NAMESPACE, bot_app_id.lower()))


def _fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            if match.group(1) not in values:
                raise PackageError(f"manifest.json uses ${{{{{match.group(1)}}}}}, which the build does not know.")
            return values[match.group(1)]

        return PLACEHOLDER.sub(replace, value)
    return value


def manifest_for(
    bot_app_id: str,
    app_host: str,
    *,
    teams_app_id: str | None = None,
    version: str = VERSION,
    website_url: str | None = None,
    privacy_url: str | None = None,
    terms_of_use_url: str | None = None,
) -> dict[str, Any]:
    """The manifest template with this deployment's ids and addresses filled in (no
    webApplicationInfo: tools/build_app_package.py adds it when asked)."""
    if not GUID.match(bot_app_id or ""):
        raise PackageError(f"the bot's app id (BOT_APP_ID) must be a GUID; got {bot_app_id!r}")
    app_host = app_host.removeprefix("https://").removeprefix("http://").rstrip("/")
    if not HOST.match(app_host):
        raise PackageError(f"the app's host name must be a DNS name, e.g. func-x.azurewebsites.net; got {app_host!r}")
    home = f"https://{app_host}/"
    values = {
        "BOT_APP_ID": bot_app_id,
        "TEAMS_APP_ID": teams_app_id or teams_app_id_for(bot_app_id),
        "APP_HOST": app_host,
        "APP_VERSION": version,
        "WEBSITE_URL": website_url or home,
        "PRIVACY_URL": privacy_url or home,
        "TERMS_OF_USE_URL": terms_of_use_url or home,
    }
    template = json.loads((APP_PACKAGE / "manifest.json").read_text(encoding="utf-8"))
    manifest: dict[str, Any] = _fill(template, values)
    return manifest


def package_bytes(manifest: dict[str, Any]) -> bytes:
    """The zip Teams takes: manifest.json and the icons, the same bytes for the same manifest."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        entries = [("manifest.json", (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))]
        entries += [(icon, (APP_PACKAGE / icon).read_bytes()) for icon in ICONS]
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buffer.getvalue()
