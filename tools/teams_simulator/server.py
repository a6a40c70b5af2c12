"""The simulator's aiohttp application and the thread that runs it on loopback."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from . import auth as auth_module
from .activities import ActivityBuilder, Kind
from .auth import AuthService, Signing
from .connector import MAX_ACTIVITY_BYTES, ConnectorRoutes
from .directory import Directory
from .faults import Fault, FaultInjector
from .graph import GRAPH_PREFIX, GraphRoutes, graph_error_body
from .identity import IdentityRoutes
from .limits import RateLimits
from .state import Conversation, RequestRecord, SimulatorState
from .tls import LocalCertificates

HOST = "127.0.0.1"
SIM_PREFIX = "/_sim"
# Statuses whose responses carry Retry-After when a fault gives one (Teams rate-limit docs).
RETRY_AFTER_STATUSES = (429, 503)


class TeamsSimulator:
    """A loopback stand-in for Teams' Bot Connector service and the Bot Framework identity.

    Start it, point the bot's serviceUrl at ``service_url`` and its inbound validation at
    ``openid_metadata_url``, then assert on what the bot sent (``conversation``) and how
    (``requests``). The server runs on its own thread and event loop, so it serves sync and
    async tests alike.

    ``enforce_limits`` answers bot sends beyond Teams' documented rate limits with 429 (see
    :meth:`enforce_limits` and limits.py); ``limits_clock`` is its clock (default
    ``time.monotonic``).
    """

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = HOST,
        enforce_limits: bool = False,
        limits_clock: Callable[[], float] | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self.state = SimulatorState()
        self.auth = AuthService()
        self.faults = FaultInjector()
        self.require_connector_auth = True
        self.max_activity_bytes = MAX_ACTIVITY_BYTES
        self._enforce_limits_by_default = enforce_limits
        self._limits_clock = limits_clock
        self._limits: RateLimits | None = RateLimits(limits_clock) if enforce_limits else None
        # Microsoft 365 behind the identity and Graph endpoints, served over TLS too (MSAL and
        # azure-identity accept https authorities only): see tls.py.
        self.directory = Directory()
        self.tls: LocalCertificates | None = None
        self._tls_port: int | None = None
        # Bot Framework caches OpenID metadata per URL for a day (JwtTokenExtractor); a
        # distinct query per instance keeps a new key from meeting a stale cache.
        self._instance = secrets.token_hex(4)
        self._builder: ActivityBuilder | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> TeamsSimulator:
        """Start serving on a background thread; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("the Teams simulator is already running")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # noqa: BLE001 - reported to start()'s caller, which re-raises it
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="teams-simulator", daemon=True)
        self._thread.start()
        ready.wait(timeout=10)
        if failure or self._port is None:
            self._thread.join(timeout=5)
            self._thread = None
            reason = failure[0] if failure else "timed out"
            raise RuntimeError(f"the Teams simulator could not start on {self.host}:{self._requested_port}: {reason}")
        self._builder = ActivityBuilder(service_url=self.service_url)
        return self

    async def _serve(self) -> None:
        self._runner = web.AppRunner(self.build_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port)
        await site.start()
        self._port = self._runner.addresses[0][1]
        self.tls = LocalCertificates()
        tls_site = web.TCPSite(self._runner, self.host, 0, ssl_context=self.tls.server_context())
        await tls_site.start()
        self._tls_port = self._runner.addresses[1][1]

    def stop(self) -> None:
        """Stop the server and its thread."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None
        self._loop = None
        if self.tls is not None:
            self.tls.cleanup()
            self.tls = None

    def __enter__(self) -> TeamsSimulator:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    async def __aenter__(self) -> TeamsSimulator:
        return self.start()

    async def __aexit__(self, *exc_info: Any) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget conversations, requests, faults and issued tokens; keep registered bots.

        Rate limits go back to the constructor's choice, with no sends counted.
        """
        self.state.reset()
        self.faults.clear()
        self.auth.reset()
        self.directory.reset()
        self.require_connector_auth = True
        self.max_activity_bytes = MAX_ACTIVITY_BYTES
        self._limits = RateLimits(self._limits_clock) if self._enforce_limits_by_default else None

    # -- addresses ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the Teams simulator is not started: call start() first")
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    @property
    def service_url(self) -> str:
        """The serviceUrl of simulated conversations, Teams style with a trailing slash."""
        return f"{self.url}/teams/"

    @property
    def openid_metadata_url(self) -> str:
        """For botbuilder's ``TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL``."""
        return f"{self.url}{auth_module.OPENID_CONFIGURATION_PATH}?sim={self._instance}"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}{auth_module.JWKS_PATH}"

    @property
    def https_url(self) -> str:
        """The TLS base URL (identity and Graph), e.g. ``https://127.0.0.1:54322``; trust ``ca_file``."""
        if self._tls_port is None:
            raise RuntimeError("the Teams simulator is not started: call start() first")
        return f"https://{self.host}:{self._tls_port}"

    @property
    def ca_file(self) -> str:
        """PEM file of the CA that signed the TLS certificate (made when the simulator started)."""
        if self.tls is None:
            raise RuntimeError("the Teams simulator is not started: call start() first")
        return self.tls.ca_file

    @property
    def authority_host(self) -> str:
        """For AUTHORITY_HOST: ``{https_url}/{tenant}/oauth2/v2.0/...`` are served."""
        return self.https_url

    @property
    def graph_url(self) -> str:
        """For GRAPH_BASE_URL: ``{https_url}/v1.0``."""
        return self.https_url + GRAPH_PREFIX

    def token_url(self, tenant: str = auth_module.BOT_FRAMEWORK_TENANT) -> str:
        """The client-credentials token endpoint, e.g. ``{url}/botframework.com/oauth2/v2.0/token``."""
        return f"{self.url}/{tenant}/oauth2/v2.0/token"

    # -- auth -----------------------------------------------------------------------------

    def register_bot(self, app_id: str, secret: str) -> None:
        """Let ``app_id`` get connector tokens with ``secret``."""
        self.auth.register_bot(app_id, secret)

    def revoke_tokens(self) -> None:
        """Invalidate every access token issued so far."""
        self.auth.revoke_tokens()

    def mint_bot_jwt(
        self,
        audience: str,
        service_url: str | None = None,
        *,
        issuer: str = auth_module.BOT_FRAMEWORK_ISSUER,
        expires_in: float = 300,
        signing: Signing = "trusted",
        kid: str | None = None,
        extra_claims: dict[str, Any] | None = None,
    ) -> str:
        """A channel → bot JWT as the Bot Framework sends it with each activity.

        ``signing``: ``trusted`` (the key in the JWKS), ``untrusted`` (a different key under
        the same kid: a forgery), ``none`` (``alg: none``, unsigned). botbuilder allows
        five minutes of clock skew, so an expired token needs ``expires_in`` below -300.
        ``service_url`` defaults to this simulator's.
        """
        return self.auth.mint_bot_jwt(
            audience,
            service_url or self.service_url,
            issuer=issuer,
            expires_in=expires_in,
            signing=signing,
            kid=kid,
            extra_claims=extra_claims,
        )

    def auth_header(self, audience: str, service_url: str | None = None, **kwargs: Any) -> str:
        """``Bearer <mint_bot_jwt(...)>`` for the bot's Authorization header."""
        return f"Bearer {self.mint_bot_jwt(audience, service_url, **kwargs)}"

    # -- faults ---------------------------------------------------------------------------

    def add_fault(
        self,
        method: str | None = "POST",
        path_pattern: str = r"/activities$",
        status: int | None = 429,
        retry_after: float | None = 2,
        times: int = 1,
        delay: float = 0.0,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """The next ``times`` requests matching method and ``path_pattern`` (``re.search`` on
        the decoded path) get ``status`` with a Bot Connector error body (or ``body``).

        ``retry_after`` is sent as Retry-After only with 429 and 503. ``delay`` seconds are
        waited first; with ``status=None`` the request is then served normally.
        """
        if status not in RETRY_AFTER_STATUSES:
            retry_after = None
        return self.faults.add(
            method=method,
            path_pattern=path_pattern,
            status=status,
            retry_after=retry_after,
            times=times,
            delay=delay,
            body=body,
            headers=headers,
        )

    # -- rate limits ----------------------------------------------------------------------

    def enforce_limits(self, clock: Callable[[], float] | None = None) -> RateLimits:
        """From now on, answer bot sends beyond Teams' rate limits with 429 Throttled.

        Every send, reply, update and conversation creation is counted per bot per
        conversation (7 / 1 s, 8 / 2 s, 60 / 30 s, 1,800 / 3,600 s) and per bot per tenant
        (50 / 1 s) before it is stored; one beyond a limit gets Retry-After and is not stored
        or counted. Faults answer first and are not counted. Counting starts afresh;
        ``clock`` defaults to the constructor's ``limits_clock``, then ``time.monotonic``.
        :meth:`reset` goes back to the constructor's choice.
        """
        self._limits = RateLimits(clock or self._limits_clock)
        return self._limits

    @property
    def limits(self) -> RateLimits | None:
        """The enforced limits with the log of accepted sends, or None when not enforced."""
        return self._limits

    # -- inspection -----------------------------------------------------------------------

    def conversation(self, conversation_id: str) -> Conversation:
        """What the bot sent to a conversation (a ``;messageid=`` thread suffix is ignored)."""
        conversation = self.state.get_conversation(conversation_id)
        if conversation is None:
            known = ", ".join(c.id for c in self.state.conversations()) or "none"
            raise KeyError(f"no conversation {conversation_id!r} in the simulator (known: {known})")
        return conversation

    def conversations(self) -> list[Conversation]:
        """Every conversation the simulator knows."""
        return self.state.conversations()

    @property
    def requests(self) -> list[RequestRecord]:
        """The requests answered so far, in order (``/_sim`` inspection calls excluded)."""
        return self.state.requests()

    def set_members(self, conversation_id: str, members: list[dict[str, Any]]) -> None:
        """The roster ``GET .../members`` returns for a conversation."""
        self.state.ensure_conversation(conversation_id).members = [dict(m) for m in members]

    # -- activity builders ----------------------------------------------------------------

    @property
    def activities(self) -> ActivityBuilder:
        """The builder behind ``installation_update`` and friends (its defaults are editable)."""
        if self._builder is None:
            raise RuntimeError("the Teams simulator is not started: call start() first")
        return self._builder

    def _known(self, activity: dict[str, Any]) -> dict[str, Any]:
        conversation = activity["conversation"]
        self.state.ensure_conversation(
            conversation["id"],
            kind=conversation["conversationType"],
            tenant_id=conversation.get("tenantId"),
            members=[dict(activity["from"])],
        )
        return activity

    def installation_update(self, kind: Kind = "personal", **kwargs: Any) -> dict[str, Any]:
        """See ``ActivityBuilder.installation_update``."""
        return self._known(self.activities.installation_update(kind, **kwargs))

    def conversation_update(self, kind: Kind = "channel", **kwargs: Any) -> dict[str, Any]:
        """See ``ActivityBuilder.conversation_update``."""
        return self._known(self.activities.conversation_update(kind, **kwargs))

    def message(self, text: str, kind: Kind = "personal", **kwargs: Any) -> dict[str, Any]:
        """See ``ActivityBuilder.message``."""
        return self._known(self.activities.message(text, kind, **kwargs))

    def invoke_adaptive_card_action(
        self, verb: str, data: dict[str, Any] | None = None, kind: Kind = "personal", **kwargs: Any
    ) -> dict[str, Any]:
        """See ``ActivityBuilder.invoke_adaptive_card_action``."""
        return self._known(self.activities.invoke_adaptive_card_action(verb, data, kind, **kwargs))

    # -- the application ------------------------------------------------------------------

    def bot_not_in(self, conversation_id: str, app_id: str | None) -> bool:
        """A private or shared channel of the simulated Microsoft 365 that the bot (``app_id``)
        was not added to (:meth:`add_bot_to_channel`)."""
        channel = self.directory.channel_by_id(conversation_id)
        return channel is not None and channel.membership_type != "standard" and (app_id or "") not in channel.apps

    def add_bot_to_channel(self, channel_id: str, app_id: str) -> None:
        """Add the bot to a private or shared channel, as a channel owner does in Teams."""
        channel = self.directory.channel_by_id(channel_id)
        if channel is None:
            raise KeyError(f"no channel {channel_id}")
        with self.directory.lock:
            channel.apps.add(app_id)

    def build_app(self) -> web.Application:
        """The aiohttp application (exposed for embedding in another server)."""
        app = web.Application(middlewares=[self._middleware], client_max_size=4 * 1024 * 1024)
        ConnectorRoutes(self.state, self.auth, self).add_routes(app)
        identity = IdentityRoutes(self.directory, self.auth.signing_key, lambda: self.https_url)
        identity.add_routes(app)
        auth_module.add_routes(app, self.auth, lambda: self.url, identity)
        self.graph = GraphRoutes(self.directory, lambda: self.https_url)
        self.graph.add_routes(app)
        app.router.add_get(SIM_PREFIX + "/conversations", self._sim_conversations)
        app.router.add_get(SIM_PREFIX + "/conversations/{conversationId}", self._sim_conversation)
        app.router.add_get(SIM_PREFIX + "/requests", self._sim_requests)
        app.router.add_get(SIM_PREFIX + "/limits", self._sim_limits)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith(SIM_PREFIX):
            return await handler(request)
        body = await self._json_body(request)
        fault = self.faults.take(request.method, request.path)
        if fault is not None and fault.delay > 0:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            body = fault.response_body()
            if fault.body is None and request.path.startswith(GRAPH_PREFIX + "/"):
                body = graph_error_body(fault.status)  # Graph's error shape on Graph paths
            response: web.StreamResponse = web.json_response(
                body, status=fault.status, headers=fault.response_headers()
            )
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                response = exc
        self.state.log_request(
            RequestRecord(
                method=request.method,
                path=request.path,
                status=response.status,
                time=time.time(),
                app_id=request.get(auth_module.CALLER_APP_ID),
                body=body,
                fault=fault is not None and fault.status is not None,
            )
        )
        if isinstance(response, web.HTTPException):
            raise response
        return response

    @staticmethod
    async def _json_body(request: web.Request) -> Any:
        if not request.can_read_body or request.content_type != "application/json":
            return None
        try:
            return json.loads(await request.read())
        except ValueError:
            return None

    async def _sim_conversations(self, request: web.Request) -> web.Response:
        return web.json_response([c.to_dict() for c in self.state.conversations()])

    async def _sim_conversation(self, request: web.Request) -> web.Response:
        conversation = self.state.get_conversation(request.match_info["conversationId"])
        if conversation is None:
            return web.json_response(
                {"error": {"code": "ConversationNotFound", "message": "Conversation not found."}},
                status=404,
            )
        return web.json_response(conversation.to_dict())

    async def _sim_requests(self, request: web.Request) -> web.Response:
        return web.json_response(
            [
                {
                    "method": r.method,
                    "path": r.path,
                    "status": r.status,
                    "time": r.time,
                    "appId": r.app_id,
                    "fault": r.fault,
                }
                for r in self.state.requests()
            ]
        )

    async def _sim_limits(self, request: web.Request) -> web.Response:
        limits = self._limits
        if limits is None:
            return web.json_response({"enforced": False})
        return web.json_response(
            {
                "enforced": True,
                "sends": [
                    {"time": t, "tenantId": tenant, "conversationId": conversation}
                    for t, tenant, conversation in limits.sends
                ],
                "refusals": limits.refusals,
                "refused": limits.refused,
            }
        )
