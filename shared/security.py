"""Signed consent state, encryption of stored token caches, and admin keys. Pure Python on
``cryptography`` and the standard library (no Azure SDK).

- :class:`StateSigner`: HMAC-SHA256 over a compact JSON payload with an expiry. Single use is
  enforced by the store (the pending flow the state names is removed when used).
- :class:`TokenCipher`: AES-256-GCM with a random 96-bit nonce and associated data that binds a
  ciphertext to its row. Every ciphertext names the id of its key, so keys can rotate: the first
  key of ``TOKEN_ENCRYPTION_KEY`` encrypts, every listed key decrypts.
- :func:`tenant_admin_key`: the admin key bound to one tenant, derived from ``ADMIN_API_KEY``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# The consent state expires after ten minutes (Entra's own authorization codes live about as
# long).
STATE_TTL_SECONDS = 600
STATE_VERSION = 1
CIPHER_VERSION = "v1"
AES_KEY_BYTES = 32
NONCE_BYTES = 12
MIN_SIGNING_KEY_CHARS = 32


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class InvalidState(Exception):
    """The consent state was tampered with, has expired, or is not ours."""


class DecryptionError(Exception):
    """A stored ciphertext cannot be decrypted: unknown key id, wrong row, or tampered."""


class StateSigner:
    def __init__(self, key: str, *, ttl: float = STATE_TTL_SECONDS, clock: Callable[[], float] = time.time) -> None:
        if len(key) < MIN_SIGNING_KEY_CHARS:
            raise ValueError(f"the state signing key must have at least {MIN_SIGNING_KEY_CHARS} characters")
        # Domain separation: this key signs consent state and nothing else.
        self._key = hmac.new(key.encode(), b"teams-alert-connector/consent-state", hashlib.sha256).digest()
        self._ttl = ttl
        self._clock = clock

    def _mac(self, body: str) -> str:
        return b64url(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())

    def sign(self, payload: Mapping[str, object]) -> str:
        data = {"v": STATE_VERSION, "exp": int(self._clock() + self._ttl), **payload}
        body = b64url(json.dumps(data, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{self._mac(body)}"

    def verify(self, token: str) -> dict[str, Any]:
        """The payload of a valid, unexpired state; raises :class:`InvalidState` otherwise."""
        body, dot, mac = (token or "").partition(".")
        if not dot or not body or not mac:
            raise InvalidState("the state parameter is missing or malformed")
        if not hmac.compare_digest(self._mac(body), mac):
            raise InvalidState(
                "the state parameter's signature does not match (it was altered or is not from this connector)"
            )
        try:
            # A JSON object: the signature matched, so sign() above made it.
            data: dict[str, Any] = json.loads(unb64url(body))
        except (ValueError, binascii.Error) as exc:
            raise InvalidState("the state parameter is malformed") from exc
        if data.get("v") != STATE_VERSION or not isinstance(data.get("exp"), int):
            raise InvalidState("the state parameter has an unknown version")
        if data["exp"] < self._clock():
            raise InvalidState("the consent link has expired (it is valid for 10 minutes)")
        return data


def key_id(key: bytes) -> str:
    """A short, stable id of a key (not secret: a hash prefix)."""
    return hashlib.sha256(b"teams-alert-connector/key-id" + key).hexdigest()[:12]


def parse_keys(text: str, setting: str = "TOKEN_ENCRYPTION_KEY") -> list[bytes]:
    """Comma-separated urlsafe base64 keys of 32 bytes; the first one encrypts."""
    keys = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            key = unb64url(part)
        except (ValueError, binascii.Error):
            key = b""
        if len(key) != AES_KEY_BYTES:
            raise ValueError(
                f"{setting} must be urlsafe base64 of {AES_KEY_BYTES} random bytes "
                "(comma-separated to rotate, newest first); "
                f"one entry decodes to {len(key)} bytes"
            )
        keys.append(key)
    if not keys:
        raise ValueError(f"{setting} is empty")
    return keys


def new_key() -> str:
    """A fresh key for TOKEN_ENCRYPTION_KEY (or STATE_SIGNING_KEY / ADMIN_API_KEY)."""
    return b64url(os.urandom(AES_KEY_BYTES))


class TokenCipher:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("TokenCipher needs at least one key")
        self._keys = {key_id(k): AESGCM(k) for k in keys}
        self._current = key_id(keys[0])

    @classmethod
    def from_setting(cls, text: str) -> TokenCipher:
        return cls(parse_keys(text))

    @property
    def current_key_id(self) -> str:
        return self._current

    def encrypt(self, plaintext: str, associated: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self._current].encrypt(nonce, plaintext.encode("utf-8"), associated.encode("utf-8"))
        return f"{CIPHER_VERSION}.{self._current}.{b64url(nonce + sealed)}"

    def decrypt(self, token: str, associated: str) -> str:
        version, _, rest = token.partition(".")
        kid, _, payload = rest.partition(".")
        if version != CIPHER_VERSION or not payload:
            raise DecryptionError("the stored ciphertext has an unknown format")
        cipher = self._keys.get(kid)
        if cipher is None:
            raise DecryptionError(
                f"the stored ciphertext was made with key {kid}, which TOKEN_ENCRYPTION_KEY no longer lists"
            )
        try:
            raw = unb64url(payload)
            return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], associated.encode("utf-8")).decode("utf-8")
        except (InvalidTag, ValueError, binascii.Error) as exc:
            raise DecryptionError(
                "the stored ciphertext does not authenticate (altered, or stored for another row)"
            ) from exc

    def needs_rotation(self, token: str) -> bool:
        """True when ``token`` was encrypted with an older key (re-encrypt it on the next write)."""
        return token.split(".")[1:2] != [self._current]


def tenant_admin_key(admin_api_key: str, tenant_id: str) -> str:
    """The admin key for one tenant's management routes: HMAC of the tenant id under
    ``ADMIN_API_KEY``. A tenant's key opens that tenant's routes only."""
    return b64url(
        hmac.new(admin_api_key.encode(), f"tenant-admin-key/v1/{tenant_id.lower()}".encode(), hashlib.sha256).digest()
    )


def ingest_key(admin_api_key: str, tenant_id: str, source: str, version: int = 1) -> str:
    """The key of one alert source of one tenant for ``POST /api/events/{format}``: HMAC of
    both (and the source's key version, after a rotation) under ``ADMIN_API_KEY``. It names the
    tenant its events go to, so a source can never post into another tenant, and one source's
    key is rotated alone (its version goes up; every other key stays)."""
    message = f"ingest-key/v1/{tenant_id.lower()}/{source}" + (f"/{version}" if version > 1 else "")
    return b64url(hmac.new(admin_api_key.encode(), message.encode(), hashlib.sha256).digest())


def same_secret(presented: str | None, expected: str) -> bool:
    """Constant-time comparison (a missing value never matches)."""
    if not presented or not expected:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def cache_associated_data(tenant_id: str) -> str:
    """Binds an encrypted token cache to its connector row: a cache copied to another tenant's
    row does not decrypt."""
    return f"connector-token-cache:{tenant_id}"
