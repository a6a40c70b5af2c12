"""Microsoft identity platform endpoints for the connector's Graph app registration.

- ``GET /{tenant}/v2.0/adminconsent``: redirects back with ``admin_consent``, ``tenant``,
  ``scope``, ``state`` (or ``error``, ``error_description``, and ``admin_consent=True``, as
  the real endpoint may send both).
- ``GET /{tenant}/oauth2/v2.0/authorize``: the authorization code flow with PKCE (S256);
  redirects back with ``code``, ``state``, ``session_state`` or an ``error``. With
  ``prompt=select_account`` it first shows an account picker (every user of every tenant), as
  Microsoft's sign-in page does; the one chosen signs in for that request only.
- ``GET /{tenant}/discovery/v2.0/keys``: the keys that sign the ID tokens (JWKS).
- ``POST /{tenant}/oauth2/v2.0/token``: client credentials (secret or client assertion),
  authorization code (PKCE checked) and refresh token (rotated on every use; ``invalid_grant``
  on demand), with Azure AD's error body.
- ``GET /{tenant}/v2.0/.well-known/openid-configuration`` for MSAL's tenant discovery.
- ``GET /msi/token``: App Service's managed identity endpoint (``IDENTITY_ENDPOINT``, with the
  ``X-IDENTITY-HEADER`` of ``IDENTITY_HEADER``, api-version 2019-08-01) for the identities in
  ``Directory.managed_identities``: tokens signed by the simulator, issued by
  ``{https base}/{tenant}/v2.0`` about the identity's principal id.

Client assertions are accepted when their ``iss``/``sub`` name a registered app (a certificate
credential: the signature is not checked, the simulator is not a security boundary), or when
they match a federated identity credential of the app: then the assertion must be a token the
simulator signed, for the credential's audience, not expired (Entra's AADSTS70021/700212).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import jwt
from aiohttp import web

from .directory import AuthorizationCode, Directory, IssuedAccessToken, RefreshGrant

GRAPH_RESOURCE = "https://graph.microsoft.com/"
GRAPH_DEFAULT_SCOPE = GRAPH_RESOURCE + ".default"
OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
CODE_LIFETIME_SECONDS = 600
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def aad_error(status: int, error: str, code: int, description: str) -> web.Response:
    now = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    return web.json_response(
        {
            "error": error,
            "error_description": (
                f"AADSTS{code}: {description} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {now}"
            ),
            "error_codes": [code],
            "timestamp": now,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
        },
        status=status,
    )


def graph_scopes(scope: str) -> tuple[str, ...]:
    """Short Graph permission names of a space-separated scope parameter."""
    names = []
    for item in scope.split():
        if item in OIDC_SCOPES:
            continue
        names.append(item[len(GRAPH_RESOURCE) :] if item.startswith(GRAPH_RESOURCE) else item)
    return tuple(names)


class IdentityRoutes:
    """Handlers bound to the simulated directory. ``base_url()`` is the https base URL."""

    def __init__(self, directory: Directory, signing_key: Any, base_url: Callable[[], str]) -> None:
        self.directory = directory
        self.signing_key = signing_key
        self.base_url = base_url

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self.openid_configuration)
        app.router.add_get("/{tenant}/v2.0/adminconsent", self.admin_consent)
        app.router.add_get("/{tenant}/oauth2/v2.0/authorize", self.authorize)
        app.router.add_post("/{tenant}/oauth2/v2.0/authorize", self.account_chosen)
        app.router.add_get("/{tenant}/discovery/v2.0/keys", self.keys)
        app.router.add_get("/msi/token", self.managed_identity_token)

    # -- managed identity (App Service) ---------------------------------------------------

    async def managed_identity_token(self, request: web.Request) -> web.Response:
        if request.headers.get("X-IDENTITY-HEADER") != self.directory.identity_header:
            return web.json_response(
                {"statusCode": 401, "message": "The X-IDENTITY-HEADER is missing or wrong."}, status=401
            )
        resource = request.query.get("resource", "")
        with self.directory.lock:
            identity = self.directory.managed_identities.get(request.query.get("client_id", ""))
        if identity is None or not resource:
            return web.json_response(
                {
                    "statusCode": 400,
                    "message": (
                        "No User Assigned or Delegated Managed Identity found for specified "
                        "ClientId/ResourceId/PrincipalId."
                    ),
                },
                status=400,
            )
        now = int(time.time())
        expires = now + 3600
        claims = {
            "aud": resource,
            "iss": f"{self.base_url()}/{identity.tenant_id}/v2.0",
            "sub": identity.principal_id,
            "oid": identity.principal_id,
            "azp": identity.client_id,
            "tid": identity.tenant_id,
            "iat": now,
            "nbf": now,
            "exp": expires,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(
            claims, self.signing_key.private_key, algorithm="RS256", headers={"kid": self.signing_key.kid}
        )
        return web.json_response(
            {
                "access_token": token,
                "expires_on": str(expires),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": identity.client_id,
            }
        )

    # -- browser steps --------------------------------------------------------------------

    async def openid_configuration(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        base = f"{self.base_url()}/{tenant}"
        return web.json_response(
            {
                "issuer": f"{self.base_url()}/{tenant}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
                "tenant_region_scope": "EU",
            }
        )

    def _signed_in(self) -> tuple[str, str] | None:
        with self.directory.lock:
            return self.directory.signed_in

    def _take_consent_error(self) -> tuple[str, str] | None:
        with self.directory.lock:
            error, self.directory.consent_error = self.directory.consent_error, None
            return error

    async def admin_consent(self, request: web.Request) -> web.Response:
        query = request.query
        client_id, redirect_uri, state = (
            query.get("client_id", ""),
            query.get("redirect_uri", ""),
            query.get("state", ""),
        )
        if client_id not in self.directory.apps:
            return web.Response(
                status=400, text=f"AADSTS700016: Application with identifier '{client_id}' was not found."
            )
        if not redirect_uri:
            return web.Response(
                status=400, text="AADSTS900144: The request body must contain the following parameter: 'redirect_uri'."
            )
        signed_in = self._signed_in()
        error = self._take_consent_error()
        if error is not None or signed_in is None:
            error = error or ("access_denied", "AADSTS65004: User declined to consent to access the app.")
            params = {"error": error[0], "error_description": error[1], "admin_consent": "True", "state": state}
            if signed_in:
                params["tenant"] = signed_in[0]
        else:
            tenant_id, _user = signed_in
            self.directory.grant_admin_consent(tenant_id, client_id)
            params = {
                "admin_consent": "True",
                "tenant": tenant_id,
                "scope": query.get("scope", GRAPH_DEFAULT_SCOPE),
                "state": state,
            }
        raise web.HTTPFound(f"{redirect_uri}?{urlencode(params)}")

    async def keys(self, request: web.Request) -> web.Response:
        return web.json_response({"keys": [self.signing_key.jwk([])]})

    def _account_picker(self, request: web.Request) -> web.Response:
        """Microsoft's "Pick an account" page, stood in: one button per user, each posting the
        authorization request back with the account chosen."""
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in request.query.items()
        )
        rows = []
        with self.directory.lock:
            people = [(t, u) for t in self.directory.tenants.values() for u in t.users.values()]
        for tenant, user in people:
            rows.append(
                f'<li><form method="post">{hidden}'
                f'<input type="hidden" name="login_account" value="{html.escape(tenant.id)}/{html.escape(user.id)}">'
                f'<button type="submit">{html.escape(user.display_name)} '
                f"&lt;{html.escape(user.user_principal_name)}&gt; ({html.escape(tenant.display_name)})</button>"
                "</form></li>"
            )
        page = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in to your account</title></head>'
            f"<body><main><h1>Pick an account</h1><ul>{''.join(rows)}</ul></main></body></html>"
        )
        return web.Response(text=page, content_type="text/html")

    async def account_chosen(self, request: web.Request) -> web.Response:
        form = await request.post()
        tenant_id, _, user_id = str(form.get("login_account", "")).partition("/")
        with self.directory.lock:
            known = tenant_id in self.directory.tenants and user_id in self.directory.tenants[tenant_id].users
        if not known:
            return web.Response(status=400, text="AADSTS50034: The user account does not exist in that directory.")
        query = {k: str(v) for k, v in form.items() if k != "login_account"}
        return self._authorize(query, (tenant_id, user_id))

    async def authorize(self, request: web.Request) -> web.Response:
        if request.query.get("prompt") == "select_account":
            return self._account_picker(request)
        return self._authorize(request.query, self._signed_in())

    def _authorize(self, query: Any, signed_in: tuple[str, str] | None) -> web.Response:
        client_id, redirect_uri, state = (
            query.get("client_id", ""),
            query.get("redirect_uri", ""),
            query.get("state", ""),
        )
        if client_id not in self.directory.apps:
            return web.Response(
                status=400, text=f"AADSTS700016: Application with identifier '{client_id}' was not found."
            )
        if query.get("response_type") != "code":
            return web.Response(status=400, text="AADSTS900144: response_type must be 'code'.")
        if query.get("code_challenge_method", "S256") != "S256" or not query.get("code_challenge"):
            return web.Response(status=400, text="AADSTS501491: PKCE is required (code_challenge with S256).")
        error = self._take_consent_error()
        if error is not None or signed_in is None:
            error = error or ("access_denied", "AADSTS65004: User declined to consent to access the app.")
            return self._respond(
                query, redirect_uri, {"error": error[0], "error_description": error[1], "state": state}
            )
        code = self.directory.new_id("code-")
        with self.directory.lock:
            self.directory.codes[code] = AuthorizationCode(
                client_id=client_id,
                redirect_uri=redirect_uri,
                code_challenge=query.get("code_challenge"),
                scopes=graph_scopes(query.get("scope", "")),
                tenant_id=signed_in[0],
                user_id=signed_in[1],
                nonce=query.get("nonce"),
                expires_at=time.time() + CODE_LIFETIME_SECONDS,
            )
        params = {"code": code, "state": state, "session_state": str(uuid.uuid4())}
        return self._respond(query, redirect_uri, params)

    @staticmethod
    def _respond(query: Any, redirect_uri: str, params: dict[str, str]) -> web.Response:
        """``response_mode=form_post``: a page that POSTs the response; else a redirect."""
        if query.get("response_mode") != "form_post":
            raise web.HTTPFound(f"{redirect_uri}?{urlencode(params)}")
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in params.items()
        )
        page = (
            f'<html><body onload="document.forms[0].submit()"><form method="post" action="{html.escape(redirect_uri)}">'
            f"{inputs}</form></body></html>"
        )
        return web.Response(text=page, content_type="text/html")

    # -- the token endpoint ---------------------------------------------------------------

    def handles(self, form: Any) -> bool:
        """Whether a token request is for this app registration (not the bot's)."""
        return str(form.get("client_id", "")) in self.directory.apps or form.get("grant_type") in (
            "authorization_code",
            "refresh_token",
        )

    def _client_ok(self, form: Any) -> web.Response | None:
        client_id = str(form.get("client_id", ""))
        if client_id not in self.directory.apps:
            return aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory.",
            )
        secret = self.directory.apps[client_id]
        if form.get("client_assertion"):
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                return aad_error(400, "invalid_request", 50027, "Invalid client_assertion_type.")
            try:
                claims = jwt.decode(str(form["client_assertion"]), options={"verify_signature": False})
            except jwt.PyJWTError:
                return aad_error(401, "invalid_client", 50027, "Invalid JWT token in client_assertion.")
            if claims.get("iss") == client_id and claims.get("sub") == client_id:
                return None
            with self.directory.lock:
                trusted = [
                    c
                    for c in self.directory.federated_credentials.get(client_id, ())
                    if (c.issuer, c.subject) == (claims.get("iss"), claims.get("sub"))
                ]
            if not trusted:
                if not self.directory.federated_credentials.get(client_id):
                    return aad_error(
                        401,
                        "invalid_client",
                        700021,
                        "Client assertion application identifier doesn't match 'client_id' parameter.",
                    )
                return aad_error(
                    401,
                    "invalid_client",
                    70021,
                    f"No matching federated identity record found for presented assertion. "
                    f"Assertion Issuer: '{claims.get('iss')}'. Assertion Subject: '{claims.get('sub')}'.",
                )
            try:
                jwt.decode(
                    str(form["client_assertion"]),
                    self.signing_key.private_key.public_key(),
                    algorithms=["RS256"],
                    audience=trusted[0].audience,
                )
            except jwt.InvalidAudienceError:
                return aad_error(
                    401,
                    "invalid_client",
                    700212,
                    (
                        "No matching federated identity record found for presented assertion audience "
                        f"'{claims.get('aud')}'."
                    ),
                )
            except jwt.PyJWTError as exc:
                return aad_error(401, "invalid_client", 700024, f"Client assertion is not valid: {exc}.")
            return None
        if secret is None or str(form.get("client_secret", "")) != secret:
            return aad_error(401, "invalid_client", 7000215, "Invalid client secret provided.")
        return None

    async def token(self, request: web.Request, form: Any) -> web.Response:
        tenant = request.match_info["tenant"]
        grant = form.get("grant_type")
        with self.directory.lock:
            self.directory.token_requests.append(
                {
                    "tenant": tenant,
                    "grant_type": grant,
                    "scope": form.get("scope", ""),
                    "client_authentication": "assertion"
                    if form.get("client_assertion")
                    else "secret"
                    if form.get("client_secret")
                    else "none",
                }
            )
        denied = self._client_ok(form)
        if denied is not None:
            return denied
        client_id = str(form["client_id"])
        if grant == "client_credentials":
            return self._client_credentials(tenant, client_id, str(form.get("scope", "")))
        if grant == "authorization_code":
            return self._authorization_code(form, client_id)
        if grant == "refresh_token":
            return self._refresh(form, client_id)
        return aad_error(
            400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant}'."
        )

    def _client_credentials(self, tenant: str, client_id: str, scope: str) -> web.Response:
        if scope != GRAPH_DEFAULT_SCOPE:
            return aad_error(
                400,
                "invalid_scope",
                1002012,
                (
                    f"The provided value for scope {scope} is not valid. Client credential flows must have a scope "
                    "value with /.default suffixed to the resource identifier."
                ),
            )
        with self.directory.lock:
            known = self.directory.tenants.get(tenant)
            roles = known.app_grants.get(client_id) if known else None
            roles = set(roles) if roles is not None else None
        if known is None:
            return aad_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        if roles is None:
            return aad_error(
                400,
                "unauthorized_client",
                700016,
                (
                    f"Application with identifier '{client_id}' was not found in the directory '{tenant}'. This "
                    "can happen if the application has not been installed by the administrator of the tenant."
                ),
            )
        access = self._access_token(tenant, client_id, None, frozenset(roles), self.directory.app_token_lifetime)
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": int(self.directory.app_token_lifetime),
                "ext_expires_in": int(self.directory.app_token_lifetime),
                "access_token": access,
            }
        )

    def _authorization_code(self, form: Any, client_id: str) -> web.Response:
        with self.directory.lock:
            grant = self.directory.codes.pop(str(form.get("code", "")), None)
        if grant is None or grant.expires_at < time.time() or grant.client_id != client_id:
            return aad_error(
                400,
                "invalid_grant",
                70008,
                (
                    "The provided authorization code or refresh token has expired due to inactivity or was already "
                    "redeemed."
                ),
            )
        if str(form.get("redirect_uri", "")) != grant.redirect_uri:
            return aad_error(
                400,
                "invalid_grant",
                50011,
                (
                    "The redirect URI specified in the request does not match the redirect URI of the "
                    "authorization request."
                ),
            )
        verifier = str(form.get("code_verifier", ""))
        if grant.code_challenge and _b64url(hashlib.sha256(verifier.encode()).digest()) != grant.code_challenge:
            return aad_error(
                400,
                "invalid_grant",
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            )
        return self._user_tokens(client_id, grant.tenant_id, grant.user_id, grant.scopes, nonce=grant.nonce)

    def _refresh(self, form: Any, client_id: str) -> web.Response:
        with self.directory.lock:
            failure = self.directory.refresh_error
            grant = self.directory.refresh_tokens.pop(str(form.get("refresh_token", "")), None)
        if failure is not None:
            return aad_error(400, failure[0], 50173 if failure[0] == "invalid_grant" else 50076, failure[1])
        if grant is None or grant.client_id != client_id:
            return aad_error(
                400,
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to inactivity.",
            )
        requested = graph_scopes(str(form.get("scope", ""))) or grant.scopes
        return self._user_tokens(
            client_id, grant.tenant_id, grant.user_id, tuple(s for s in requested if s in grant.scopes) or grant.scopes
        )

    def _user_tokens(
        self, client_id: str, tenant_id: str, user_id: str, scopes: tuple[str, ...], nonce: str | None = None
    ) -> web.Response:
        with self.directory.lock:
            user = self.directory.tenants[tenant_id].users[user_id]
        lifetime = self.directory.delegated_token_lifetime
        access = self._access_token(tenant_id, client_id, user_id, frozenset(scopes), lifetime)
        refresh = self.directory.new_id("rt-")
        with self.directory.lock:
            self.directory.refresh_tokens[refresh] = RefreshGrant(client_id, tenant_id, user_id, scopes)
        now = int(time.time())
        id_claims = {
            "aud": client_id,
            "iss": f"{self.base_url()}/{tenant_id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": user.display_name,
            "oid": user.id,
            "preferred_username": user.user_principal_name,
            "sub": hashlib.sha256(f"{client_id}{user.id}".encode()).hexdigest()[:43],
            "tid": tenant_id,
            "ver": "2.0",
        }
        if nonce:
            id_claims["nonce"] = nonce
        if user.roles:
            # Entra sends wids when the app registration's groupMembershipClaims includes
            # DirectoryRole (the Bicep sets it); the simulator always does.
            id_claims["wids"] = list(user.roles)
        id_token = jwt.encode(
            id_claims, self.signing_key.private_key, algorithm="RS256", headers={"kid": self.signing_key.kid}
        )
        client_info = _b64url(json.dumps({"uid": user.id, "utid": tenant_id}).encode())
        return web.json_response(
            {
                "token_type": "Bearer",
                "scope": " ".join(GRAPH_RESOURCE + s for s in scopes),
                "expires_in": int(lifetime),
                "ext_expires_in": int(lifetime),
                "access_token": access,
                "refresh_token": refresh,
                "id_token": id_token,
                "client_info": client_info,
            }
        )

    def _access_token(
        self, tenant_id: str, client_id: str, user_id: str | None, permissions: frozenset[str], lifetime: float
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": "https://graph.microsoft.com",
            "iss": f"https://sts.windows.net/{tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": int(now + lifetime),
            "appid": client_id,
            "tid": tenant_id,
            "jti": uuid.uuid4().hex,
        }
        if user_id:
            claims.update(oid=user_id, scp=" ".join(sorted(permissions)))
        else:
            claims.update(roles=sorted(permissions))
        token = jwt.encode(
            claims, self.signing_key.private_key, algorithm="RS256", headers={"kid": self.signing_key.kid}
        )
        with self.directory.lock:
            self.directory.access_tokens[token] = IssuedAccessToken(
                tenant_id, client_id, user_id, permissions, now + lifetime
            )
        return token
