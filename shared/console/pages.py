"""The console's routes: each reads the request, calls the service the JSON admin route calls,
and renders the answer. No logic of its own beyond who may see what: every page is of the
signed-in person's tenant, taken from their verified session, never from the address or a form.

Routes (under /api/console):
- ``GET /`` the sign-in page, or the Connection page once signed in;
- ``GET /signin`` starts "Sign in with Microsoft"; ``POST /signin`` is its callback (form_post);
- ``POST /signout``;
- ``GET /connection``; ``POST /connection/connect``, ``POST /connection/disconnect``; ``GET
  /connection/app-package`` (this deployment's Teams app package, a zip);
- ``GET /routing``; ``GET /routing/edit`` (``?id=``: an existing one); ``POST /routing/save``,
  ``POST /routing/delete``, ``POST /routing/dry-run``; ``GET /directory?q=`` (the recipient
  picker's search, JSON);
- ``GET /alerts``; ``GET /alerts/view?key=``; ``POST /alerts/send`` (Send to Teams);
- ``GET /problems``; ``POST /problems/link`` (approve or refuse an account link);
- ``GET /sources``; ``POST /sources/show`` (a source's key and settings, asked for), ``POST
  /sources/rotate``; ``POST /sources/api`` and ``POST /sources/api/remove`` (its own API, for
  silences);
- ``GET /static/{file}``.

Every POST but the sign-in callback carries the session's CSRF token (a hidden form field) and,
when the browser sends one, an Origin of the console's own address: else 403.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from shared import bootstrap
from shared.console import forms, render
from shared.console.session import (
    SESSION_COOKIE,
    SESSION_LIFETIME,
    SIGNIN_COOKIE,
    SIGNIN_LIFETIME,
    ConsoleSession,
    cleared,
    cookie,
    open_session,
    open_signin,
    read_cookie,
    seal_session,
    seal_signin,
)
from shared.console.signin import SignIn, SignInRefused, admin_because

log = logging.getLogger(__name__)

BASE = "/api/console"
MAX_FORM_BYTES = 16 * 1024
READ_CONCURRENCY = 25  # Table Storage reads a page makes at once
STATUS_TEXT = {
    "connected": "Connected",
    "needs_reconsent": "Needs consent again",
    "pending": "Consent started, not finished",
    "disconnected": "Disconnected",
}


class _Refused(Exception):
    def __init__(self, response: func.HttpResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


async def handle(req: func.HttpRequest, c: Any) -> func.HttpResponse:
    """One console request; ``c`` is the app's container (shared.bootstrap.Container)."""
    path = (req.route_params.get("rest") or "").strip("/")
    if path.startswith("static/") and req.method == "GET":
        return render.static_file(path[len("static/") :])
    graph = c.settings.graph
    if graph is None:
        return render.page(
            "message.html",
            status=503,
            authority_host="",
            title="The console is off",
            message=(
                "Sign in with Microsoft uses the connector's app registration: set GRAPH_APP_ID and the settings "
                "docs/CONNECTING.md names, then open the console again."
            ),
            session=None,
        )
    console = _Console(req, c)
    try:
        return await console.route(path)
    except _Refused as refused:
        return refused.response


class _Console:
    def __init__(self, req: func.HttpRequest, c: Any) -> None:
        from shared.security import TokenCipher

        self.req = req
        self.c = c
        self.graph = c.settings.graph
        self.authority = self.graph.authority_host
        self.cipher = TokenCipher.from_setting(self.graph.token_encryption_key)
        self.now = c.time.clock()
        self.session = open_session(read_cookie(req.headers.get("Cookie"), SESSION_COOKIE), self.cipher, self.now)
        self._form: dict[str, list[str]] | None = None

    # ------------------------------------------------------------------ plumbing

    def page(self, template: str, *, status: int = 200, cookie: str | None = None, **context: Any) -> func.HttpResponse:
        return render.page(
            template, status=status, authority_host=self.authority, cookie=cookie, session=self.session, **context
        )

    def message(self, status: int, title: str, message: str, *, cookie: str | None = None) -> func.HttpResponse:
        """A page that says one thing (a refusal, or what happened)."""
        return self.page("message.html", status=status, title=title, message=message, cookie=cookie)

    def redirect(self, location: str, *, cookie: str | None = None) -> func.HttpResponse:
        return render.redirect(location, authority_host=self.authority, cookie=cookie)

    def form(self) -> dict[str, str]:
        """The posted form, each field's first value."""
        return {name: values[0] for name, values in self.form_all().items()}

    def form_all(self) -> dict[str, list[str]]:
        """The posted form, every value of each field (the recipient chips share a name)."""
        if self._form is None:
            body = self.req.get_body()
            if len(body) > MAX_FORM_BYTES:
                raise _Refused(
                    self.message(413, "Too much was sent", f"A console form is at most {MAX_FORM_BYTES // 1024} KiB.")
                )
            self._form = {}
            for name, value in parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True):
                self._form.setdefault(name, []).append(value)
        return self._form

    def signed_in(self) -> ConsoleSession:
        if self.session is None:
            raise _Refused(self.redirect(f"{BASE}/"))
        return self.session

    def change(self) -> ConsoleSession:
        """A POST that changes something: signed in, the CSRF token, and our own Origin."""
        session = self.signed_in()
        origin = self.req.headers.get("Origin")
        own = urlsplit(self.graph.public_base_url)
        if origin and origin != f"{own.scheme}://{own.netloc}":
            log.warning(
                "Console change from %s refused: the console is at %s", origin[:200], self.graph.public_base_url
            )
            raise _Refused(self.refused_change("the request came from another site"))
        if not session.csrf_ok(self.form().get("csrf")):
            raise _Refused(self.refused_change("the form's security token is missing or out of date"))
        return session

    def refused_change(self, why: str) -> func.HttpResponse:
        log.warning("Console change refused: %s", why)
        return self.message(
            403, "Nothing was changed", f"The change was refused: {why}. Reload the page and try again."
        )

    def signin_service(self) -> SignIn:
        return SignIn(
            self.c.connect.identity,
            app_id=self.graph.app_id,
            authority_host=self.authority,
            redirect_uri=f"{self.graph.public_base_url}{BASE}/signin",
            clock=self.c.time.clock,
        )

    # ------------------------------------------------------------------ routes

    async def route(self, path: str) -> func.HttpResponse:
        method = self.req.method
        routes = {
            ("", "GET"): self.home,
            ("signin", "GET"): self.signin_start,
            ("signin", "POST"): self.signin_done,
            ("signout", "POST"): self.signout,
            ("connection", "GET"): self.connection,
            ("connection/connect", "POST"): self.connect,
            ("connection/disconnect", "POST"): self.disconnect,
            ("connection/app-package", "GET"): self.app_package,
            ("routing", "GET"): self.routing_list,
            ("routing/edit", "GET"): self.routing_edit,
            ("routing/save", "POST"): self.routing_save,
            ("routing/delete", "POST"): self.routing_delete,
            ("routing/dry-run", "POST"): self.routing_dry_run,
            ("directory", "GET"): self.directory_search,
            ("alerts", "GET"): self.alerts,
            ("alerts/view", "GET"): self.alert_view,
            ("alerts/send", "POST"): self.alert_send,
            ("problems", "GET"): self.problems,
            ("problems/link", "POST"): self.problems_link,
            ("sources", "GET"): self.sources,
            ("sources/show", "POST"): self.sources_show,
            ("sources/rotate", "POST"): self.sources_rotate,
            ("sources/api", "POST"): self.sources_api_save,
            ("sources/api/remove", "POST"): self.sources_api_remove,
        }
        handler = routes.get((path, method))
        if handler is None:
            known = {p for p, _ in routes}
            status = 405 if path in known else 404
            return self.message(status, "Not here", "The console has no such page.")
        return await handler()

    async def home(self) -> func.HttpResponse:
        if self.session is not None:
            return self.redirect(f"{BASE}/connection")
        return self.page("signin.html", title="Sign in")

    async def signin_start(self) -> func.HttpResponse:
        flow = await self.signin_service().begin()
        value = seal_signin(flow, self.cipher, self.now)
        # SameSite=None: the answer comes back as a cross-site POST from Microsoft's sign-in page.
        return self.redirect(
            str(flow["auth_uri"]),
            cookie=cookie(SIGNIN_COOKIE, value, max_age=int(SIGNIN_LIFETIME.total_seconds()), same_site="None"),
        )

    async def signin_done(self) -> func.HttpResponse:
        flow = open_signin(read_cookie(self.req.headers.get("Cookie"), SIGNIN_COOKIE), self.cipher, self.now)
        if flow is None:
            return self.message(
                400,
                "Sign in again",
                "This sign-in was not started here, or took longer than 10 minutes. Nothing was changed.",
            )
        try:
            claims = await self.signin_service().complete(flow, self.form())
        except SignInRefused as exc:
            log.warning("Console sign-in refused: %s", exc)
            return self.message(401, "You are not signed in", f"{exc}.")
        because = admin_because(claims, self.c.settings.connector_admins)
        name = str(claims.get("name") or claims.get("preferred_username") or claims["oid"])
        if because is None:
            log.info("Console sign-in of %s (tenant %s): not an admin of the connector", claims["oid"], claims["tid"])
            return self.page(
                "refused.html", status=403, title="You cannot manage this connector", person=name, claims=claims
            )
        session = ConsoleSession.start(
            tenant_id=str(claims["tid"]),
            user_id=str(claims["oid"]),
            name=name,
            username=str(claims.get("preferred_username") or ""),
            admin_because=because,
            now=self.now,
        )
        log.info("Console sign-in of %s (tenant %s) as %s", session.user_id, session.tenant_id, because)
        value = seal_session(session, self.cipher)
        return self.redirect(
            f"{BASE}/connection",
            cookie=cookie(SESSION_COOKIE, value, max_age=int(SESSION_LIFETIME.total_seconds())),
        )

    async def signout(self) -> func.HttpResponse:
        self.change()
        self.session = None
        return self.page("signin.html", title="Signed out", signed_out=True, cookie=cleared(SESSION_COOKIE))

    async def connection(self) -> func.HttpResponse:
        session = self.signed_in()
        from shared.permissions import APPLICATION_PERMISSIONS, DELEGATED_SCOPES

        store = self.c.store
        connection = await store.get_connection(session.tenant_id)
        needed = APPLICATION_PERMISSIONS if connection is None or connection.method == "bot" else DELEGATED_SCOPES
        granted = set(connection.scopes) if connection is not None else set()
        permissions = [{"name": name, "why": why, "granted": name in granted} for name, why in sorted(needed.items())]
        conversations = [
            r for r in await store.list_conversations(session.tenant_id) if getattr(r, "origin", "teams") == "teams"
        ]
        health = None
        if connection is not None and connection.status == "connected":
            from shared.services import health as checks

            [health] = await checks.run_checks(
                {"Microsoft Graph": checks.tenant_check(self.c.connect.directory, connection)}
            )
        return self.page(
            "connection.html",
            title="Connection",
            nav="connection",
            connection=connection,
            status_text=STATUS_TEXT.get(connection.status, connection.status) if connection else "Not connected",
            permissions=permissions,
            missing=[p["name"] for p in permissions if not p["granted"]] if connection else [],
            conversations=conversations,
            health=health,
        )

    async def connect(self) -> func.HttpResponse:
        session = self.change()
        from shared.services.consent import ConsentInputError

        method = self.form().get("method", "")
        try:
            url = await self.c.connect.consent.start(method, tenant=session.tenant_id, started_by=session.username)
        except ConsentInputError as exc:
            return self.message(400, "Nothing was started", f"{exc}.")
        return self.redirect(url)

    async def disconnect(self) -> func.HttpResponse:
        session = self.change()
        await self.c.connect.consent.disconnect(session.tenant_id)
        return self.redirect(f"{BASE}/connection")

    # ------------------------------------------------------------------ routing

    async def routing(
        self,
        *,
        notice: str = "",
        dry_run: dict[str, Any] | None = None,
        event_text: str = "",
        status: int = 200,
        error: str = "",
    ) -> func.HttpResponse:
        session = self.signed_in()
        from shared.services.workflows import describe

        found = sorted(await self.c.store.list_workflows(session.tenant_id), key=lambda w: w.id)
        recent = await self.c.store.list_recent_alerts(session.tenant_id, limit=forms.MAX_DRY_RUN_ALERTS)
        return self.page(
            "routing.html",
            recent=recent,
            status=status,
            title="Routing",
            nav="routing",
            workflows=[
                {"id": w.id, "revision": w.revision, "summary": describe(w), "enabled": w.enabled} for w in found
            ],
            notice=notice,
            dry_run=dry_run,
            event_text=event_text,
            error=error,
            examples=forms.EXAMPLE_EVENT,
        )

    async def routing_edit(self) -> func.HttpResponse:
        session = self.signed_in()
        workflow_id = self.req.params.get("id", "")
        values = forms.blank_workflow()
        if workflow_id:
            found = await self.c.store.get_workflow(session.tenant_id, workflow_id)
            if found is None:
                return self.message(404, "No such workflow", f"Your organisation has no workflow {workflow_id}.")
            values = forms.workflow_values(found.public())
        return self.workflow_page(values, {}, existing=bool(workflow_id))

    def workflow_page(
        self, values: dict[str, Any], errors: dict[str, str], *, existing: bool, status: int = 200
    ) -> func.HttpResponse:
        from shared.domain.events import SEVERITIES

        return self.page(
            "workflow.html",
            status=status,
            title="Workflow",
            nav="routing",
            form=values,
            errors=errors,
            existing=existing,
            triggers=forms.TRIGGERS,
            severities=SEVERITIES,
            kinds=forms.KINDS,
        )

    async def routing_save(self) -> func.HttpResponse:
        session = self.change()
        from shared.domain.workflows import InvalidWorkflow
        from shared.ports import TransientError
        from shared.services import workflows as workflow_service

        values = forms.read_workflow_form(self.form_all())
        body, problems = forms.workflow_body(values)
        existing = self.form().get("existing") == "1"
        if problems:
            return self.workflow_page(values, problems, existing=existing, status=400)
        try:
            saved = await workflow_service.save_workflow(
                self.c.store,
                bootstrap.delivering(self.c).resolver,
                session.tenant_id,
                values["id"],
                body,
                updated_by=session.username or session.name,
                commands=bootstrap.command_queue(self.c),
            )
        except InvalidWorkflow as exc:
            return self.workflow_page(values, {forms.form_field(exc.field): exc.problem}, existing=existing, status=400)
        except (workflow_service.WorkflowLimit, TransientError) as exc:
            return self.workflow_page(values, {"": str(exc)}, existing=existing, status=409)
        what = "saved" if saved.changed else "unchanged"
        return self.redirect(f"{BASE}/routing?saved={saved.workflow.id}&what={what}&r={saved.workflow.revision}")

    async def routing_delete(self) -> func.HttpResponse:
        session = self.change()
        workflow_id = self.form().get("id", "")
        if await self.c.store.has_workflow(session.tenant_id, workflow_id):
            await self.c.store.delete_workflow(session.tenant_id, workflow_id)
            log.info(
                "Workflow %s of tenant %s deleted in the console by %s", workflow_id, session.tenant_id, session.user_id
            )
        return self.redirect(f"{BASE}/routing")

    async def routing_dry_run(self) -> func.HttpResponse:
        """The dry run on a pasted event, or on a recent alert (as its next change would be)."""
        session = self.change()
        from shared.domain.events import InvalidEvent
        from shared.domain.jsondepth import too_deep
        from shared.services import workflows as workflow_service

        text = self.form().get("event", "")
        key = self.form().get("alert", "")
        try:
            if key:
                state = await self.c.store.get_alert(session.tenant_id, key)
                if state is None:
                    raise ValueError("that alert is no longer stored")
                body: Any = forms.event_for(state)
                text = json.dumps(body, indent=2)
            else:
                if (problem := too_deep(text)) is not None:
                    raise ValueError(problem)
                body = json.loads(text)
            result = await workflow_service.dry_run(
                self.c.store, session.tenant_id, body, bootstrap.delivering(self.c).resolver
            )
        except (ValueError, InvalidEvent) as exc:
            return await self.routing(event_text=text, status=400, error=str(exc))
        return await self.routing(dry_run=result, event_text=text)

    async def directory_search(self) -> func.HttpResponse:
        session = self.signed_in()
        found = await forms.search_recipients(self.c, session.tenant_id, self.req.params.get("q", ""))
        return render.json_answer(found, authority_host=self.authority)

    async def routing_list(self) -> func.HttpResponse:
        saved = self.req.params.get("saved", "")
        notice = ""
        if saved:
            what = (
                "saved as revision " + self.req.params.get("r", "")
                if self.req.params.get("what") == "saved"
                else ("unchanged (the same definition)")
            )
            notice = f"Workflow {saved} {what}."
        return await self.routing(notice=notice)

    # ------------------------------------------------------------------ alerts

    async def alerts(self) -> func.HttpResponse:
        session = self.signed_in()
        store = self.c.store
        found = await store.list_recent_alerts(session.tenant_id, limit=forms.MAX_ALERTS_SHOWN)
        cards: list[Any] = []
        for start in range(0, len(found), READ_CONCURRENCY):  # each alert's cards, read a chunk at a time
            chunk = found[start : start + READ_CONCURRENCY]
            cards += await asyncio.gather(*(store.list_deliveries(session.tenant_id, s.key) for s in chunk))
        rows = [
            {"alert": state, "cards": [forms.card_row(d) for d in shown]}
            for state, shown in zip(found, cards, strict=True)
        ]
        return self.page("alerts.html", title="Alerts", nav="alerts", rows=rows, now=self.now)

    async def alert_view(
        self,
        *,
        key: str | None = None,
        errors: dict[str, str] | None = None,
        notice: str = "",
        values: dict[str, Any] | None = None,
        status: int = 200,
    ) -> func.HttpResponse:
        session = self.signed_in()
        key = key if key is not None else self.req.params.get("key", "")
        state = await self.c.store.get_alert(session.tenant_id, key) if key else None
        if state is None:
            return self.message(
                404,
                "No such alert",
                "Your organisation has no such alert (it may have been removed after its retention).",
            )
        cards = [forms.card_row(d) for d in await self.c.store.list_deliveries(session.tenant_id, state.key)]
        return self.page(
            "alert.html",
            status=status,
            title=f"Alert {state.alert_id}",
            nav="alerts",
            alert=state,
            timeline=forms.timeline(state),
            when=forms.when,
            cards=cards,
            errors=errors or {},
            notice=notice,
            send=values or {"recipients": [], "fallback": [], "comment": ""},
            now=self.now,
        )

    async def alert_send(self) -> func.HttpResponse:
        session = self.change()
        from shared.ports import TransientError
        from shared.services.manual_send import SendRefused, send_alert

        form = self.form_all()
        key = self.form().get("key", "")
        values = forms.read_send_form(form)
        state = await self.c.store.get_alert(session.tenant_id, key)
        if state is None:
            return await self.alert_view(key=key)
        body = {
            "recipients": [c["recipient"] for c in values["recipients"]],
            "fallbackRecipients": [c["recipient"] for c in values["fallback"]],
            "comment": values["comment"],
        }
        try:
            queued = await send_alert(
                self.c.store,
                bootstrap.delivering(self.c).resolver,
                bootstrap.command_queue(self.c),
                session.tenant_id,
                state.alert_id,
                body,
                requested_by=session.name,
            )
        except SendRefused as exc:
            return await self.alert_view(
                key=key, errors={forms.form_field(exc.field) or "": str(exc)}, values=values, status=exc.status
            )
        except TransientError as exc:
            return await self.alert_view(key=key, errors={"": str(exc)}, values=values, status=503)
        log.info(
            "Alert %s of tenant %s sent to Teams from the console by %s (%s)",
            state.alert_id,
            session.tenant_id,
            session.user_id,
            queued["eventId"],
        )
        return await self.alert_view(
            key=key, notice="Sent: the cards go out in a moment; this page shows them once posted."
        )

    # ------------------------------------------------------------------ problems

    async def problems(self, *, notice: str = "") -> func.HttpResponse:
        session = self.signed_in()
        store = self.c.store
        undeliverable = await store.list_undeliverable(session.tenant_id, limit=100)
        links = [link for link in await store.list_links(session.tenant_id) if not link.verified]
        rejected = await store.list_rejected(limit=100, tenant_id=session.tenant_id)
        return self.page(
            "problems.html",
            title="Problems",
            nav="problems",
            undeliverable=undeliverable,
            links=links,
            rejected=rejected,
            notice=notice,
        )

    async def problems_link(self) -> func.HttpResponse:
        session = self.change()
        from dataclasses import replace

        form = self.form()
        person = form.get("person", "").lower()
        link = await self.c.store.get_link(session.tenant_id, person) if person else None
        if link is None:
            return await self.problems(notice="That request is gone: nothing was changed.")
        if form.get("decision") == "approve":
            await self.c.store.save_link(replace(link, method="admin", updated=self.now))
            log.info(
                "Account link of %s in tenant %s approved in the console by %s",
                person,
                session.tenant_id,
                session.user_id,
            )
            return await self.problems(notice=f"{link.upn or person} is linked to {link.platform_identity}.")
        await self.c.store.delete_link(session.tenant_id, person)
        log.info(
            "Account link of %s in tenant %s refused in the console by %s", person, session.tenant_id, session.user_id
        )
        return await self.problems(notice=f"The link of {link.upn or person} to {link.platform_identity} was refused.")

    # ------------------------------------------------------------------ sources

    def sources_page(
        self,
        *,
        name: str,
        setup: dict[str, Any] | None = None,
        error: str = "",
        rotated: bool = False,
        status: int = 200,
        api: dict[str, Any] | None = None,
        api_for: str = "",
        api_error: tuple[str, str] | None = None,
        api_notice: str = "",
        typed: dict[str, str] | None = None,
    ) -> func.HttpResponse:
        return self.page(
            "sources.html",
            status=status,
            title="Sources",
            nav="sources",
            setup=setup,
            error=error,
            name=name,
            snippets=forms.source_snippets(setup) if setup else {},
            rotated=rotated,
            api=api,
            api_for=api_for or (setup or {}).get("source", ""),
            api_error=api_error,
            api_notice=api_notice,
            typed=typed or {},
        )

    async def _shown_api(self, tenant_id: str, source: str) -> dict[str, Any] | None:
        from shared.services.sources import source_api

        api = await source_api(self.c.store, bootstrap.source_cipher(self.c), tenant_id, source)
        return api.public() if api is not None else None

    async def sources_api_save(self) -> func.HttpResponse:
        """Set a source's own API (where silences go): the same check and encrypted store as
        the admin route; the credential is never shown again, not even to whoever typed it."""
        session = self.change()
        from shared.domain.source_api import InvalidSourceApi
        from shared.services.sources import InvalidSource, check_source_name, set_source_api
        from shared.settings import local_development

        form = self.form()
        source = form.get("source", "").strip()
        try:
            check_source_name(source)
        except InvalidSource as exc:
            return self.sources_page(name=source, error=str(exc), status=400)
        kind = form.get("authType", "none")
        auth: dict[str, str] = {"type": kind}
        if kind == "basic":
            auth |= {"username": form.get("username", ""), "password": form.get("secret", "")}
        elif kind == "bearer":
            auth |= {"token": form.get("secret", "")}
        body = {"kind": form.get("kind", ""), "url": form.get("url", ""), "auth": auth}
        typed = {k: form.get(k, "") for k in ("kind", "url", "authType", "username")}  # never the secret
        try:
            shown = await set_source_api(
                self.c.store,
                bootstrap.source_cipher(self.c),
                session.tenant_id,
                source,
                body,
                allow_local_http=local_development(),
                changed_by=session.user_id,
            )
        except InvalidSourceApi as exc:
            return self.sources_page(
                name=source,
                api=await self._shown_api(session.tenant_id, source),
                api_for=source,
                api_error=(exc.field, exc.message),
                typed=typed,
                status=400,
            )
        return self.sources_page(
            name=source, api=shown, api_for=source, api_notice=f"The API of {source} was saved: Silence is offered."
        )

    async def sources_api_remove(self) -> func.HttpResponse:
        session = self.change()
        from shared.services.sources import InvalidSource, check_source_name, clear_source_api

        source = self.form().get("source", "").strip()
        try:
            check_source_name(source)
        except InvalidSource as exc:
            return self.sources_page(name=source, error=str(exc), status=400)
        await clear_source_api(self.c.store, session.tenant_id, source, changed_by=session.user_id)
        return self.sources_page(
            name=source, api_for=source, api_notice=f"The API of {source} was removed: its alerts offer no Silence."
        )

    async def sources(self) -> func.HttpResponse:
        self.signed_in()
        return self.sources_page(name="alertmanager")

    async def sources_show(self) -> func.HttpResponse:
        return await self.source_setup(rotate=False)

    async def sources_rotate(self) -> func.HttpResponse:
        return await self.source_setup(rotate=True)

    async def source_setup(self, *, rotate: bool) -> func.HttpResponse:
        """A source's key and its settings for every format: shown only when asked for (a POST,
        never cached), and after a rotation the new key."""
        session = self.change()
        from shared.services.sources import InvalidSource, source_setup

        name = self.form().get("source", "").strip()
        admin_key = self.c.settings.admin_api_key
        if not admin_key:
            return self.message(
                503,
                "Sources are off",
                "The connector's operator has not set ADMIN_API_KEY, from which the keys derive.",
            )
        try:
            setup = await source_setup(
                self.c.store,
                admin_key,
                self.graph.public_base_url,
                session.tenant_id,
                name,
                rotate=rotate,
                rotated_by=session.user_id,
            )
        except InvalidSource as exc:
            return self.sources_page(name=name, error=str(exc), status=400)
        api = await self._shown_api(session.tenant_id, setup["source"])
        return self.sources_page(name=name, setup=setup, rotated=rotate, api=api)

    async def app_package(self) -> func.HttpResponse:
        """This deployment's Teams app package, to upload in the Teams admin center."""
        self.signed_in()
        from urllib.parse import urlsplit

        from shared.app_package import PackageError, manifest_for, package_bytes

        try:
            manifest = manifest_for(
                self.c.settings.bot_app_id or "", urlsplit(self.graph.public_base_url).hostname or ""
            )
        except PackageError as exc:
            return self.message(409, "No app package here", f"{exc}.")
        return func.HttpResponse(
            package_bytes(manifest),
            status_code=200,
            mimetype="application/zip",
            headers={
                **render.security_headers(self.authority),
                "Content-Disposition": 'attachment; filename="teams-alert-connector.zip"',
            },
        )
