"""Who is signed in to the console: a sealed cookie, and the CSRF token every change carries.

The session cookie holds the signed-in person's verified identity (tenant, object id, name) and
why they may manage the tenant, encrypted and authenticated with ``TOKEN_ENCRYPTION_KEY``
(AES-GCM, bound to its purpose), ``HttpOnly``, ``Secure``, ``SameSite=Lax``, for
:data:`SESSION_LIFETIME`. Nothing in it can be changed by the browser without the cookie
failing to open; a change of the key signs everyone out.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.security import DecryptionError, TokenCipher, same_secret

SESSION_COOKIE = "__Host-tac-console"
SIGNIN_COOKIE = "__Host-tac-signin"
SESSION_LIFETIME = timedelta(hours=1)
SIGNIN_LIFETIME = timedelta(minutes=10)
MAX_COOKIE_CHARS = 3800  # a browser keeps 4,096 bytes per cookie
_SESSION_PURPOSE = "console-session/v1"
_SIGNIN_PURPOSE = "console-signin/v1"


@dataclass(frozen=True)
class ConsoleSession:
    tenant_id: str
    user_id: str  # Microsoft Entra object id (the ID token's oid)
    name: str
    username: str
    admin_because: str  # e.g. "Global Administrator", "listed in CONNECTOR_ADMINS"
    csrf: str
    expires: float  # epoch seconds

    @classmethod
    def start(
        cls, *, tenant_id: str, user_id: str, name: str, username: str, admin_because: str, now: datetime
    ) -> ConsoleSession:
        return cls(
            tenant_id=tenant_id,
            user_id=user_id,
            name=name[:200],
            username=username[:200],
            admin_because=admin_because,
            csrf=secrets.token_urlsafe(24),
            expires=(now + SESSION_LIFETIME).timestamp(),
        )

    def csrf_ok(self, presented: str | None) -> bool:
        return same_secret(presented, self.csrf)


def seal_session(session: ConsoleSession, cipher: TokenCipher) -> str:
    return cipher.encrypt(json.dumps(asdict(session), separators=(",", ":")), _SESSION_PURPOSE)


def open_session(value: str | None, cipher: TokenCipher, now: datetime) -> ConsoleSession | None:
    """The session the cookie holds; None when there is none, it does not open, or it expired."""
    data = _open(value, cipher, _SESSION_PURPOSE)
    if data is None:
        return None
    try:
        session = ConsoleSession(**data)
    except TypeError:
        return None
    return session if session.expires > now.timestamp() else None


def seal_signin(flow: dict[str, Any], cipher: TokenCipher, now: datetime) -> str:
    """The sign-in under way (MSAL's flow: state, nonce, PKCE verifier), until the callback."""
    return cipher.encrypt(
        json.dumps({"flow": flow, "expires": (now + SIGNIN_LIFETIME).timestamp()}, separators=(",", ":")),
        _SIGNIN_PURPOSE,
    )


def open_signin(value: str | None, cipher: TokenCipher, now: datetime) -> dict[str, Any] | None:
    data = _open(value, cipher, _SIGNIN_PURPOSE)
    if data is None or float(data.get("expires", 0)) <= now.timestamp() or not isinstance(data.get("flow"), dict):
        return None
    flow: dict[str, Any] = data["flow"]
    return flow


def _open(value: str | None, cipher: TokenCipher, purpose: str) -> dict[str, Any] | None:
    if not value or len(value) > MAX_COOKIE_CHARS:
        return None
    try:
        data = json.loads(cipher.decrypt(value, purpose))
    except (DecryptionError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def cookie(name: str, value: str, *, max_age: int, same_site: str = "Lax", path: str = "/") -> str:
    """A Set-Cookie value: HttpOnly and Secure always (a ``__Host-`` name needs Secure, Path=/
    and no Domain; browsers treat http://localhost as secure)."""
    return f"{name}={value}; Max-Age={max_age}; Path={path}; HttpOnly; Secure; SameSite={same_site}"


def cleared(name: str) -> str:
    return cookie(name, "", max_age=0)


def read_cookie(header: str | None, name: str) -> str | None:
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None
