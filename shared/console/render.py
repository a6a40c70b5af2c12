"""Pages from templates (Jinja2, autoescaped: every value is escaped unless a template says
otherwise, and none does), with the console's security headers on every answer."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

import azure.functions as func

HERE = Path(__file__).parent
STATIC = HERE / "static"
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml", ".woff2": "font/woff2"}


def security_headers(authority_host: str) -> dict[str, str]:
    """No inline script or style, nothing from elsewhere; forms post only here or, for Connect
    and sign-in, are sent on to Microsoft's sign-in host; framed only by Teams (the personal tab)."""
    policy = "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            f"form-action 'self' {authority_host.rstrip('/')}",
            "frame-ancestors 'self' https://teams.microsoft.com https://*.teams.microsoft.com https://*.cloud.microsoft",
            "base-uri 'none'",
        )
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on the
        # console's own form posts, which the CSRF check would refuse.
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


@cache
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static"] = static_url
    return env


@cache
def static_url(name: str) -> str:
    """A static file's address with its content hash: cached for long, never stale."""
    digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]
    return f"/api/console/static/{name}?v={digest}"


def page(
    template: str,
    *,
    status: int = 200,
    authority_host: str,
    cookie: str | None = None,
    **context: Any,
) -> func.HttpResponse:
    """One cookie at most per answer: a header the Functions host passes on as it is."""
    body = _environment().get_template(template).render(**{"nav": None, "session": None, **context})
    headers = security_headers(authority_host)
    if cookie:
        headers["Set-Cookie"] = cookie
    return func.HttpResponse(body, status_code=status, mimetype="text/html", charset="utf-8", headers=headers)


def redirect(location: str, *, authority_host: str, cookie: str | None = None) -> func.HttpResponse:
    headers = {"Location": location, **security_headers(authority_host)}
    if cookie:
        headers["Set-Cookie"] = cookie
    return func.HttpResponse(status_code=303, headers=headers)


def static_file(name: str) -> func.HttpResponse:
    path = (STATIC / name).resolve()
    if path.parent != STATIC.resolve() or path.suffix not in STATIC_TYPES or not path.is_file():
        return func.HttpResponse("not found", status_code=404, mimetype="text/plain")
    return func.HttpResponse(
        path.read_bytes(),
        status_code=200,
        mimetype=STATIC_TYPES[path.suffix],
        headers={"Cache-Control": "public, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"},
    )


def json_answer(value: Any, *, authority_host: str, status: int = 200) -> func.HttpResponse:
    import json

    return func.HttpResponse(
        json.dumps(value), status_code=status, mimetype="application/json", headers=security_headers(authority_host)
    )
