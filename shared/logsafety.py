"""No log line shows a secret, whatever the level: every log record's message passes through
:func:`redact` before any handler formats it.

Libraries log more than their callers choose: at DEBUG, MSAL's token cache logs the
authorization code and the PKCE verifier of a sign-in, and HTTP clients log request lines.
Setting levels cannot guarantee a thing (anyone may turn DEBUG on), so the record factory
itself redacts; installed when ``function_app`` is imported. Standard library only (cold start).
"""

from __future__ import annotations

import logging
import re

REDACTED = "***"

# Names whose values are secrets or single-use credentials, as JSON members, query or form
# parameters, or "name=value" text.
_SECRET_NAMES = (
    "code",
    "code_verifier",
    "client_secret",
    "client_assertion",
    "assertion",
    "refresh_token",
    "access_token",
    "id_token",
    "password",
    "secret",
    "token",
    "state",
    "admin_key",
    "x-admin-key",
    "sig",
    "key",
)
_NAMED = re.compile(
    # Values of 12 characters or more: codes, verifiers, keys and tokens are long, while a short
    # value after such a name ("status code: 404") is not a secret and stays readable.
    r"""(?P<name>["']?\b(?:"""
    + "|".join(re.escape(n) for n in _SECRET_NAMES)
    + r""")\b["']?\s*[:=]\s*["']?)(?P<value>[^"'&\s,;}\]]{12,})""",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# A JSON Web Token: three base64url segments, the first a JSON header ("eyJ").
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")


def redact(text: str) -> str:
    """``text`` with every secret-looking value replaced by ``***``."""
    text = _JWT.sub(REDACTED, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _NAMED.sub(lambda m: m.group("name") + REDACTED, text)


class _RedactingRecord(logging.LogRecord):
    def getMessage(self) -> str:
        return redact(super().getMessage())


_installed = False


def install() -> None:
    """Make every log record redact its message (idempotent), and keep MSAL's token-cache
    logger, which dumps whole token requests, at INFO or above."""
    global _installed
    if _installed:
        return
    base = logging.getLogRecordFactory()
    if base is logging.LogRecord:
        logging.setLogRecordFactory(_RedactingRecord)
    else:  # another factory is installed: wrap what it makes

        def factory(*args, **kwargs):  # type: ignore[no-untyped-def]
            record = base(*args, **kwargs)
            message = redact(record.getMessage())
            record.msg, record.args = message, None
            return record

        logging.setLogRecordFactory(factory)
    token_cache = logging.getLogger("msal.token_cache")
    if token_cache.getEffectiveLevel() < logging.INFO:
        token_cache.setLevel(logging.INFO)
    _installed = True
