"""What every entry point shares: JSON answers, the early answer a check gives (:class:`Answer`),
the container (or the 500 of a misconfigured app), and the operator's and tenants' admin keys.

Imported when a trigger of this surface first runs: no SDK at module level.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import azure.functions as func

from shared import bootstrap
from shared.settings import SettingsError, unresolved_message

if TYPE_CHECKING:
    from shared.bootstrap import Container
    from shared.bootstrap import _LazyConnect as _Connect

log = logging.getLogger(__name__)


def json_response(status: int, body: object | None) -> func.HttpResponse:
    if body is None:
        return func.HttpResponse(status_code=status)
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


class Answer(Exception):
    """The answer a route gives before doing its work: the app is misconfigured, the caller is
    refused, the input is bad. Raised by the checks below; :func:`answers` returns it."""

    def __init__(self, response: func.HttpResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


Route = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]


def answers(route: Route) -> Route:
    @functools.wraps(route)
    async def run(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return await route(req)
        except Answer as answer:
            return answer.response

    return run


async def configured() -> Container:
    """The container, or the 500 a misconfigured app answers (the reason goes to the log)."""
    try:
        return await bootstrap.container()
    except SettingsError as exc:
        log.error("Configuration error: %s", exc)
        raise Answer(json_response(500, {"error": "the connector is not configured; see its log"})) from None


ADMIN_KEY_HEADER = "X-Admin-Key"


# Only /api/connect is opened by a browser, which cannot add a header: it may carry the key
# in the query, like a function key's ?code=.
ADMIN_KEY_QUERY = "admin_key"


def html_page(status: int, title: str, message: str) -> func.HttpResponse:
    import html

    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="font-family:sans-serif;max-width:40em;margin:3em auto">'
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
        "<p><small>Teams Alert Connector</small></p></body></html>"
    )
    return func.HttpResponse(
        body,
        status_code=status,
        mimetype="text/html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


async def connect_container() -> tuple[Container, _Connect]:
    c = await configured()
    if c.connect is None:
        off = (
            unresolved_message(c.settings.unresolved)
            if c.settings.unresolved
            else "tenant connection is off: set GRAPH_APP_ID and the settings docs/CONNECTING.md names"
        )
        raise Answer(json_response(503, {"error": off}))
    return c, c.connect


def master_key(c: Container) -> str:
    """ADMIN_API_KEY: 503 while it is not set (every admin route is then closed)."""
    if not c.settings.admin_api_key:
        why = "is an unresolved Key Vault reference" if "ADMIN_API_KEY" in c.settings.unresolved else "is not set"
        raise Answer(json_response(503, {"error": f"ADMIN_API_KEY {why}: admin routes are closed"}))
    return c.settings.admin_api_key


def admin_check(req: func.HttpRequest, c: Container, tenant_id: str | None = None, allow_query: bool = False) -> None:
    """The admin key (or, with ``tenant_id``, that tenant's key) must be presented: 503, 401 or 403 otherwise."""
    from shared.security import same_secret, tenant_admin_key

    master = master_key(c)
    presented = req.headers.get(ADMIN_KEY_HEADER) or (req.params.get(ADMIN_KEY_QUERY) if allow_query else None)
    expected = tenant_admin_key(master, tenant_id) if tenant_id else master
    if not same_secret(presented, expected):
        what = f"the admin key of tenant {tenant_id}" if tenant_id else "the admin key"
        raise Answer(json_response(401 if not presented else 403, {"error": f"{ADMIN_KEY_HEADER} must carry {what}"}))


def route_tenant(req: func.HttpRequest) -> str:
    """The route's {tenant_id}, checked before it is used as a key: 400 when it is not one."""
    from shared.domain.tenants import InvalidTenantId, tenant_id

    try:
        return tenant_id(req.route_params.get("tenant_id", ""))
    except InvalidTenantId as exc:
        raise Answer(json_response(400, {"error": f"the tenant in the address {exc}"})) from None


# A workflow definition or a send request is a few KiB; anything near this is a mistake.
MAX_ADMIN_BODY_BYTES = 64 * 1024


async def tenant_admin(req: func.HttpRequest) -> tuple[Container, str]:
    c = await configured()
    tenant_id = route_tenant(req)
    admin_check(req, c, tenant_id=tenant_id)
    return c, tenant_id


def json_body(req: func.HttpRequest) -> Any:
    """The request's JSON (size-limited): 413 or 400 otherwise."""
    raw = req.get_body() or b""
    if len(raw) > MAX_ADMIN_BODY_BYTES:
        raise Answer(json_response(413, {"error": f"the request body is larger than {MAX_ADMIN_BODY_BYTES} bytes"}))
    from shared.domain.jsondepth import too_deep

    try:
        text = raw.decode("utf-8") if raw else "null"
        if (problem := too_deep(text)) is not None:
            raise Answer(json_response(400, {"error": problem}))
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Answer(json_response(400, {"error": f"the request body is not valid JSON ({exc})"})) from None


async def tenant_admin_body(req: func.HttpRequest) -> tuple[Container, str, Any]:
    """The tenant admin check, then the JSON body (size-limited)."""
    c, tenant_id = await tenant_admin(req)
    return c, tenant_id, json_body(req)


def caller(req: func.HttpRequest) -> str:
    return req.headers.get("X-MS-CLIENT-PRINCIPAL-NAME", "") or "admin API"
