"""App settings the way Core Tools loads them, and ``%NAME%`` binding expressions."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path

#: Core Tools reads this file's "Values" into the environment of the host.
LOCAL_SETTINGS_FILE = "local.settings.json"
#: The committed template, used when no local.settings.json exists.
SAMPLE_SETTINGS_FILE = "local.settings.sample.json"

_EXPRESSION = re.compile(r"%([^%]+)%")


class SettingsError(Exception):
    """A settings file or an app setting is missing or malformed."""


def find_settings_file(directory: Path | str = ".") -> Path | None:
    """Return local.settings.json in ``directory``, else the sample file, else None."""
    directory = Path(directory)
    for name in (LOCAL_SETTINGS_FILE, SAMPLE_SETTINGS_FILE):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def read_settings_file(path: Path | str) -> dict[str, str]:
    """Return the "Values" of a local.settings.json-style file, as strings."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"settings file {path} does not exist") from None
    except json.JSONDecodeError as error:
        raise SettingsError(f"settings file {path} is not valid JSON: {error}") from None
    values = document.get("Values", {}) if isinstance(document, dict) else None
    if not isinstance(values, dict):
        raise SettingsError(f'settings file {path}: "Values" must be a JSON object')
    return {str(key): "" if value is None else str(value) for key, value in values.items()}


def load_settings(
    path: Path | str | None = None,
    *,
    directory: Path | str = ".",
    environ: MutableMapping[str, str] | None = None,
) -> tuple[Path | None, dict[str, str]]:
    """Copy a settings file's "Values" into the environment, like Core Tools.

    ``path`` names the file; without it, local.settings.json in ``directory`` is used,
    else local.settings.sample.json, else nothing. Variables already set in the
    environment win. Returns the file used and the values it actually set.
    """
    environ = os.environ if environ is None else environ
    chosen = Path(path) if path is not None else find_settings_file(directory)
    if chosen is None:
        return None, {}
    applied = {}
    for key, value in read_settings_file(chosen).items():
        if key not in environ:
            environ[key] = value
            applied[key] = value
    return chosen, applied


def lookup_setting(name: str, directory: Path | str = ".") -> str | None:
    """Return a setting from the environment, else from the settings file, else None."""
    if name in os.environ:
        return os.environ[name]
    chosen = find_settings_file(directory)
    if chosen is None:
        return None
    try:
        return read_settings_file(chosen).get(name)
    except SettingsError:
        return None


def resolve_expression(value: str, settings: Mapping[str, str], *, where: str) -> str:
    """Replace every ``%NAME%`` in ``value`` with the app setting NAME.

    ``where`` describes the binding property for the error message, which names the
    missing setting and how to provide it.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in settings:
            raise SettingsError(
                f"{where} uses the app setting %{name}%, which is not set: add {name!r} to "
                f'the "Values" of {LOCAL_SETTINGS_FILE} or to the environment'
            )
        return settings[name]

    return _EXPRESSION.sub(replace, value)
