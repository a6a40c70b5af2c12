"""Builds the Teams app package (manifest.json + icons, zipped) with the ids filled in.

    python -m tools.build_app_package --bot-app-id <guid> --app-host <func>.azurewebsites.net \
        --out build/appPackage.zip

Every option can also come from the environment (BOT_APP_ID, APP_HOST, TEAMS_APP_ID,
AAD_APP_ID, AAD_APP_RESOURCE, APP_VERSION). The manifest has no ``webApplicationInfo`` unless
``--aad-app-id`` names an app registration: the connector uses neither Teams single sign-on nor
resource-specific consent, and an id whose registration exposes no Application ID URI (the bot's
managed identity, for one) would be a wrong one. The manifest is validated against the Teams schema shipped in the
pinned npm package @microsoft/app-manifest before it is zipped. Development-only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

from shared.app_package import GUID, HOST, PackageError, manifest_for, package_bytes, teams_app_id_for

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "node_modules" / "@microsoft" / "app-manifest" / "build" / "json-schemas" / "teams"


def project_version() -> str:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["version"]


def schema_path(manifest_version: str) -> Path:
    return SCHEMAS / f"v{manifest_version}" / "MicrosoftTeams.schema.json"


def newest_schema_version() -> str:
    versions = [p.name[1:] for p in SCHEMAS.glob("v[0-9]*") if re.fullmatch(r"v\d+\.\d+", p.name)]
    if not versions:
        raise PackageError(f"No Teams manifest schemas under {SCHEMAS}: run `npm ci`.")
    return max(versions, key=lambda v: tuple(int(x) for x in v.split(".")))


def manifest_validator(schema: dict[str, Any]):
    """A validator for the schema's draft. The Teams schemas declare draft-04 but use the
    draft-06 keyword `const` (manifestVersion); draft-04 would ignore it, so it is added."""
    import jsonschema

    base = jsonschema.validators.validator_for(schema)
    if "const" not in base.VALIDATORS:
        base = jsonschema.validators.extend(base, {"const": jsonschema.Draft6Validator.VALIDATORS["const"]})
    return base(schema)


def validation_errors(manifest: dict[str, Any]) -> list[str]:
    path = schema_path(str(manifest.get("manifestVersion")))
    if not path.exists():
        return [f"No schema for manifestVersion {manifest.get('manifestVersion')!r} at {path}."]
    validator = manifest_validator(json.loads(path.read_text(encoding="utf-8")))
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in sorted(validator.iter_errors(manifest), key=lambda e: list(map(str, e.absolute_path)))
    ]


def build_manifest(
    *,
    bot_app_id: str,
    app_host: str,
    teams_app_id: str | None = None,
    aad_app_id: str | None = None,
    aad_resource: str | None = None,
    version: str | None = None,
    website_url: str | None = None,
    privacy_url: str | None = None,
    terms_of_use_url: str | None = None,
) -> dict[str, Any]:
    if not bot_app_id or not GUID.match(bot_app_id):
        raise PackageError(f"--bot-app-id (or BOT_APP_ID) must be the bot's app id, a GUID; got {bot_app_id!r}.")
    app_host = app_host.removeprefix("https://").rstrip("/")
    if not HOST.match(app_host):
        raise PackageError(
            "--app-host (or APP_HOST) must be the function app's host name, e.g. func-x.azurewebsites.net; "
            f"got {app_host!r}."
        )
    teams_app_id = teams_app_id or teams_app_id_for(bot_app_id)
    for option, value in (("--teams-app-id", teams_app_id), ("--aad-app-id", aad_app_id or teams_app_id)):
        if not GUID.match(value):
            raise PackageError(f"{option} must be a GUID; got {value!r}.")
    if aad_resource and not aad_app_id:
        raise PackageError("--aad-resource needs --aad-app-id, the app registration that exposes it.")
    if aad_resource and not re.match(r"^(api|https)://\S+$", aad_resource):
        raise PackageError(
            f"--aad-resource must be the app registration's Application ID URI (api://...); got {aad_resource!r}."
        )
    manifest = manifest_for(
        bot_app_id,
        app_host,
        teams_app_id=teams_app_id,
        version=version or project_version(),
        website_url=website_url,
        privacy_url=privacy_url,
        terms_of_use_url=terms_of_use_url,
    )
    if aad_app_id:
        # Teams docs, app manifest: webApplicationInfo.id is the Entra app id; resource (optional)
        # its Application ID URI, which the registration must expose.
        manifest["webApplicationInfo"] = {"id": aad_app_id} | ({"resource": aad_resource} if aad_resource else {})
    return manifest


def write_package(manifest: dict[str, Any], out: Path) -> Path:
    errors = validation_errors(manifest)
    if errors:
        raise PackageError("The manifest does not match the Teams schema:\n  " + "\n  ".join(errors))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(package_bytes(manifest))
    return out


def main(argv: list[str] | None = None) -> int:
    env = os.environ  # dev tool: its options may come from the shell
    parser = argparse.ArgumentParser(prog="python -m tools.build_app_package", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bot-app-id", default=env.get("BOT_APP_ID", ""), help="the Azure Bot's Microsoft App ID (BOT_APP_ID)"
    )
    parser.add_argument(
        "--app-host",
        default=env.get("APP_HOST") or env.get("FUNCTION_APP_HOST_NAME", ""),
        help="the function app's host name, output FUNCTION_APP_HOST_NAME of the deployment (APP_HOST)",
    )
    parser.add_argument(
        "--teams-app-id", default=env.get("TEAMS_APP_ID"), help="Teams app id; default: derived from the bot id"
    )
    parser.add_argument(
        "--aad-app-id",
        default=env.get("AAD_APP_ID"),
        help="app registration for webApplicationInfo (single sign-on, resource-specific consent); default: none",
    )
    parser.add_argument(
        "--aad-resource",
        default=env.get("AAD_APP_RESOURCE"),
        help="its Application ID URI (api://...) for webApplicationInfo.resource; default: none",
    )
    parser.add_argument("--version", default=env.get("APP_VERSION"), help="app version; default: pyproject.toml's")
    parser.add_argument("--website-url")
    parser.add_argument("--privacy-url")
    parser.add_argument("--terms-of-use-url")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "appPackage.zip")
    args = parser.parse_args(argv)
    try:
        manifest = build_manifest(
            bot_app_id=args.bot_app_id,
            app_host=args.app_host,
            teams_app_id=args.teams_app_id,
            aad_app_id=args.aad_app_id,
            aad_resource=args.aad_resource,
            version=args.version,
            website_url=args.website_url,
            privacy_url=args.privacy_url,
            terms_of_use_url=args.terms_of_use_url,
        )
        out = write_package(manifest, args.out)
    except PackageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"wrote {out} (Teams app id {manifest['id']}, bot {manifest['bots'][0]['botId']}, version "
        f"{manifest['version']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
