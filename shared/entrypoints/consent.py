"""Connecting a tenant: the connect link and Microsoft's consent callback.

Imported when a trigger of this surface first runs: no SDK at module level.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.entrypoints.common import admin_check, answers, connect_container, html_page, json_response

log = logging.getLogger(__name__)


@answers
async def connect_start(req: func.HttpRequest) -> func.HttpResponse:
    c, connect = await connect_container()
    admin_check(req, c, allow_query=True)
    from shared.services.consent import ConsentInputError, parse_targets

    try:
        targets = parse_targets(req.params)
        url = await connect.consent.start(
            req.params.get("method", ""),
            tenant=req.params.get("tenant") or None,
            targets=targets,
            started_by=req.headers.get("X-MS-CLIENT-PRINCIPAL-NAME", ""),
        )
    except ConsentInputError as exc:
        return json_response(400, {"error": str(exc)})
    return func.HttpResponse(status_code=302, headers={"Location": url, "Cache-Control": "no-store"})


@answers
async def consent_callback(req: func.HttpRequest) -> func.HttpResponse:
    _c, connect = await connect_container()
    params = dict(req.params)
    if req.method == "POST":  # response_mode=form_post (the delegated flow)
        from urllib.parse import parse_qsl

        params.update(parse_qsl(req.get_body().decode("utf-8", errors="replace")))
    page = await connect.consent.complete(params)
    return html_page(page.status, page.title, page.message)
