"""Keys, tokens and the identity endpoints of the simulator.

Outbound (bot → connector): a client-credentials token endpoint shaped like Azure AD's, and
the check of the bearer tokens it issued.
Inbound (channel → bot): OpenID metadata and a JWKS endorsed for ``msteams``, plus minting of
channel tokens that botbuilder's own validation accepts or rejects.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

# botframework.connector.auth.AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER
BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
# AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE + "/.default"
BOT_FRAMEWORK_SCOPE = "https://api.botframework.com/.default"
# The tenant Bot Framework multi-tenant bots get channel tokens from
# (AuthenticationConstants.DEFAULT_CHANNEL_AUTH_TENANT).
BOT_FRAMEWORK_TENANT = "botframework.com"
# Endorsements on the real Bot Framework signing keys name the channels a key may speak for;
# botbuilder requires the activity's channelId among them (EndorsementsValidator).
KEY_ENDORSEMENTS = ["msteams", "webchat", "directline", "emulator"]
# botbuilder allows this much clock skew (VerifyOptions clock_tolerance in
# _parameterized_bot_framework_authentication.py).
BOTBUILDER_CLOCK_SKEW_SECONDS = 5 * 60
# Azure AD client-credential tokens for the Bot Framework live an hour.
ACCESS_TOKEN_LIFETIME_SECONDS = 3600

OPENID_CONFIGURATION_PATH = "/v1/.well-known/openidconfiguration"
JWKS_PATH = "/v1/.well-known/keys"
TOKEN_PATH_TEMPLATE = "/{tenant}/oauth2/v2.0/token"

# The app id a request was made for (token endpoint) or authenticated as (connector).
CALLER_APP_ID = web.RequestKey("teams_simulator_caller_app_id", str)

Signing = Literal["trusted", "untrusted", "none"]


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class SigningKey:
    """An RSA key pair made in memory; its public half is published in the JWKS."""

    def __init__(self, kid: str | None = None) -> None:
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self.private_key.public_key().public_numbers()
        self.n = _b64url_uint(numbers.n)
        self.e = _b64url_uint(numbers.e)
        self.kid = kid or base64.urlsafe_b64encode(hashlib.sha1(self.n.encode()).digest()).rstrip(b"=").decode("ascii")

    def jwk(self, endorsements: list[str]) -> dict[str, Any]:
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": self.n,
            "e": self.e,
            "endorsements": list(endorsements),
        }


@dataclass(frozen=True)
class IssuedToken:
    app_id: str
    expires_at: float


class AuthService:
    """Registered bots, issued access tokens and the signing keys."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bots: dict[str, str] = {}
        self._tokens: dict[str, IssuedToken] = {}
        self.signing_key = SigningKey()
        self._forged_key: SigningKey | None = None
        self.endorsements = list(KEY_ENDORSEMENTS)

    # -- bots and outbound tokens -------------------------------------------------------

    def register_bot(self, app_id: str, secret: str) -> None:
        with self._lock:
            self._bots[app_id] = secret

    def check_client(self, client_id: str, secret: str) -> Literal["ok", "unknown_client", "bad_secret"]:
        """Whether a client-credentials pair belongs to a registered bot."""
        with self._lock:
            expected = self._bots.get(client_id)
        if expected is None:
            return "unknown_client"
        return "ok" if secrets.compare_digest(expected, secret) else "bad_secret"

    def issue_token(self, app_id: str, lifetime: float) -> str:
        now = int(time.time())
        claims = {
            "aud": BOT_FRAMEWORK_ISSUER,
            "iss": f"https://login.microsoftonline.com/{BOT_FRAMEWORK_TENANT}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": int(now + lifetime),
            "appid": app_id,
            "azp": app_id,
            "ver": "2.0",
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(
            claims,
            self.signing_key.private_key,
            algorithm="RS256",
            headers={"kid": self.signing_key.kid},
        )
        with self._lock:
            self._tokens[token] = IssuedToken(app_id, now + lifetime)
        return token

    def app_id_for(self, authorization: str | None) -> str | None:
        """The app id a bearer token was issued to, if it is ours and unexpired."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        with self._lock:
            issued = self._tokens.get(token.strip())
        if issued is None or issued.expires_at <= time.time():
            return None
        return issued.app_id

    def revoke_tokens(self) -> None:
        """Forget every issued token (the bot's next call gets 401 until it fetches a new one)."""
        with self._lock:
            self._tokens.clear()

    def reset(self) -> None:
        self.revoke_tokens()

    # -- inbound channel tokens ---------------------------------------------------------

    @property
    def forged_key(self) -> SigningKey:
        with self._lock:
            if self._forged_key is None:
                self._forged_key = SigningKey(kid=self.signing_key.kid)
            return self._forged_key

    def mint_bot_jwt(
        self,
        audience: str,
        service_url: str,
        *,
        issuer: str = BOT_FRAMEWORK_ISSUER,
        expires_in: float = 300,
        signing: Signing = "trusted",
        kid: str | None = None,
        extra_claims: dict[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "serviceurl": service_url,
            "nbf": min(now, int(now + expires_in)) - 5,
            "exp": int(now + expires_in),
            "iss": issuer,
            "aud": audience,
        }
        claims.update(extra_claims or {})
        headers = {"kid": kid or self.signing_key.kid, "x5t": kid or self.signing_key.kid}
        if signing == "trusted":
            return jwt.encode(claims, self.signing_key.private_key, "RS256", headers=headers)
        if signing == "untrusted":
            return jwt.encode(claims, self.forged_key.private_key, "RS256", headers=headers)
        if signing == "none":
            return jwt.encode(claims, None, algorithm="none", headers=headers)
        raise ValueError(f"signing must be 'trusted', 'untrusted' or 'none', got {signing!r}")

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.signing_key.jwk(self.endorsements)]}


def _aad_error(status: int, error: str, code: str, description: str) -> web.Response:
    now = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    return web.json_response(
        {
            "error": error,
            "error_description": (
                f"{code}: {description} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {now}"
            ),
            "error_codes": [int(code.removeprefix("AADSTS"))],
            "timestamp": now,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
        },
        status=status,
    )


def _client_credentials(request: web.Request, form: Any) -> tuple[str, str]:
    client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic" and value:
        decoded = base64.b64decode(value).decode()
        client_id, _, client_secret = decoded.partition(":")
    return str(client_id), str(client_secret)


def add_routes(app: web.Application, auth: AuthService, base_url: Any, identity: Any = None) -> None:
    """Register the token endpoint and OpenID routes. ``base_url()`` gives the public URL.
    Token requests of the Graph app registration go to ``identity`` (identity.IdentityRoutes)."""

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        if identity is not None and identity.handles(form):
            return await identity.token(request, form)
        if form.get("grant_type") != "client_credentials":
            return _aad_error(
                400,
                "unsupported_grant_type",
                "AADSTS70003",
                f"The app requested an unsupported grant type '{form.get('grant_type', '')}'.",
            )
        client_id, client_secret = _client_credentials(request, form)
        scope = form.get("scope", "")
        verdict = auth.check_client(client_id, client_secret)
        if verdict == "unknown_client":
            return _aad_error(
                400,
                "unauthorized_client",
                "AADSTS700016",
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{request.match_info['tenant']}'.",
            )
        if verdict == "bad_secret":
            return _aad_error(
                401,
                "invalid_client",
                "AADSTS7000215",
                "Invalid client secret provided. Ensure the secret being sent in the request "
                f"is the client secret value, not the client secret ID, for a secret added to "
                f"app '{client_id}'.",
            )
        if scope != BOT_FRAMEWORK_SCOPE:
            return _aad_error(
                400,
                "invalid_scope",
                "AADSTS70011",
                f"The provided request must include a 'scope' input parameter. The provided "
                f"value for the input parameter 'scope' is not valid: '{scope}'.",
            )
        access_token = auth.issue_token(client_id, ACCESS_TOKEN_LIFETIME_SECONDS)
        request[CALLER_APP_ID] = client_id
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": ACCESS_TOKEN_LIFETIME_SECONDS,
                "ext_expires_in": ACCESS_TOKEN_LIFETIME_SECONDS,
                "access_token": access_token,
            }
        )

    async def openid_configuration(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": BOT_FRAMEWORK_ISSUER,
                "authorization_endpoint": "https://invalid.botframework.com",
                "jwks_uri": f"{base_url()}{JWKS_PATH}",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }
        )

    async def keys(request: web.Request) -> web.Response:
        return web.json_response(auth.jwks())

    app.router.add_post(TOKEN_PATH_TEMPLATE, token)
    app.router.add_get(OPENID_CONFIGURATION_PATH, openid_configuration)
    app.router.add_get(JWKS_PATH, keys)
