"""A source's own API, set by the tenant's admin for one alert source: where to make silences
in it and with which credential. Pure Python.

Alertmanager's API v2, and Grafana alerting's Alertmanager-compatible one under
``/api/alertmanager/grafana`` (a service-account token as the bearer). The credential is
stored encrypted (shared.services.sources) and never shown again: :meth:`SourceApi.public`
is what the admin routes answer.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

KINDS = ("alertmanager", "grafana")
AUTH_TYPES = ("none", "basic", "bearer")
# Named size limits of what an admin sends for a source's API.
MAX_URL_CHARS = 2048
MAX_USERNAME_CHARS = 256
MAX_SECRET_CHARS = 4096
MAX_BODY_BYTES = 16 * 1024
# Where each kind's silences API is, under the address the admin gives.
API_PATHS = {"alertmanager": "/api/v2", "grafana": "/api/alertmanager/grafana/api/v2"}


class InvalidSourceApi(ValueError):
    """The admin's settings for a source's API, refused: ``field`` names what was wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class SourceApi:
    kind: str
    url: str  # the source's address, without the API path (https://alertmanager.example.com)
    auth: str = "none"
    username: str = ""
    secret: str = ""  # the password (basic) or token (bearer)

    @property
    def api_base(self) -> str:
        return self.url.rstrip("/") + API_PATHS[self.kind]

    def public(self) -> dict[str, Any]:
        """What may be shown: everything but the secret, and whether one is set."""
        return {
            "kind": self.kind,
            "url": self.url,
            "auth": self.auth,
            "username": self.username,
            "credentialSet": bool(self.secret),
        }

    def to_json(self) -> str:
        return json.dumps(
            {"kind": self.kind, "url": self.url, "auth": self.auth, "username": self.username, "secret": self.secret},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> SourceApi:
        data = json.loads(text)
        return cls(
            data["kind"], data["url"], data.get("auth", "none"), data.get("username", ""), data.get("secret", "")
        )


def silenceable_source(source: str | None) -> bool:
    """An alert's ``source`` names one of :data:`KINDS` (as "alertmanager/<receiver>" or
    "grafana/<receiver>" from their webhooks): silences for it are made through that API."""
    return (source or "").split("/", 1)[0] in KINDS


def is_private_address(address: str) -> bool:
    """Loopback, private, link-local (the instance metadata service), reserved or unspecified."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_unspecified


def is_private_host(host: str | None) -> bool:
    """A host name that names this machine, or an address :func:`is_private_address` refuses."""
    if not host:
        return False
    return host.lower() in ("localhost", "localhost.localdomain") or is_private_address(host.strip("[]"))


def parse_source_api(body: Any, *, allow_local_http: bool = False) -> SourceApi:
    """The admin's JSON (``kind``, ``url``, ``auth``: ``{"type": "basic", "username",
    "password"}`` or ``{"type": "bearer", "token"}``), checked: a clear refusal names the field.
    ``allow_local_http`` (local development only): an address on this machine or a private
    network is accepted, plain http too; otherwise both are refused, since the connector would
    send its requests (and the credential) there."""
    if not isinstance(body, dict):
        raise InvalidSourceApi("body", "must be a JSON object with kind, url and auth")
    kind = body.get("kind", "alertmanager")
    if kind not in KINDS:
        raise InvalidSourceApi("kind", f"must be one of {', '.join(KINDS)}")
    url = body.get("url")
    if not isinstance(url, str) or not url.strip():
        raise InvalidSourceApi("url", "is required: the source's address, e.g. https://alertmanager.example.com")
    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise InvalidSourceApi("url", f"is longer than {MAX_URL_CHARS} characters")
    parts = urlsplit(url)
    if parts.scheme != "https" and not (
        allow_local_http and parts.scheme == "http" and is_private_host(parts.hostname)
    ):
        raise InvalidSourceApi("url", "must be an https address (the credential goes with every request)")
    if is_private_host(parts.hostname) and not allow_local_http:
        raise InvalidSourceApi(
            "url", "must be a public address: loopback, private and link-local addresses are refused"
        )
    if not parts.hostname or parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidSourceApi("url", "must be a plain address: a host and an optional path, no credentials or query")
    auth = body.get("auth") or {"type": "none"}
    if not isinstance(auth, dict) or auth.get("type", "none") not in AUTH_TYPES:
        raise InvalidSourceApi("auth.type", f"must be one of {', '.join(AUTH_TYPES)}")
    kind_of_auth = auth.get("type", "none")
    username, secret = "", ""
    if kind_of_auth == "basic":
        given_name, given_password = auth.get("username"), auth.get("password")
        if not isinstance(given_name, str) or not given_name or len(given_name) > MAX_USERNAME_CHARS:
            raise InvalidSourceApi("auth.username", f"is required, at most {MAX_USERNAME_CHARS} characters")
        if not isinstance(given_password, str) or not given_password:
            raise InvalidSourceApi("auth.password", "is required")
        username, secret = given_name, given_password
    elif kind_of_auth == "bearer":
        given_token = auth.get("token")
        if not isinstance(given_token, str) or not given_token:
            raise InvalidSourceApi("auth.token", "is required")
        secret = given_token
    if len(secret) > MAX_SECRET_CHARS:
        raise InvalidSourceApi("auth", f"the credential is longer than {MAX_SECRET_CHARS} characters")
    if kind == "grafana" and kind_of_auth == "none":
        raise InvalidSourceApi("auth.type", "Grafana needs a service account token (bearer)")
    return SourceApi(kind, url.rstrip("/"), kind_of_auth, username, secret)


def matchers_for(labels: dict[str, str]) -> list[dict[str, Any]]:
    """Equality matchers on an alert's identifying labels, in a stable order (Alertmanager's
    API v2 ``matchers``)."""
    return [{"name": name, "value": value, "isRegex": False, "isEqual": True} for name, value in sorted(labels.items())]
