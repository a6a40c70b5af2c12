"""The console in a real browser (Chromium through Playwright) against what `make run` starts:
the local host, the Agents Playground, and the simulator's Microsoft 365 with the Playground's
organisation, connected by admin consent. People sign in through the simulator's Microsoft
sign-in page (its account picker), as they would at login.microsoftonline.com."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.e2e.test_playground import install, local_run_with_m365  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.azurite, pytest.mark.playground]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
OTHER_TENANT = "dddddddd-0000-4000-8000-00000000000d"


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield browser
        finally:
            await browser.close()


async def sign_in(browser, host, who: str, **context):
    """A new browser context signed in as ``who`` (the account picker's button text)."""
    # The simulator's sign-in page is https with its own CA: this browser does not know it.
    ctx = await browser.new_context(ignore_https_errors=True, **context)
    page = await ctx.new_page()
    await page.goto(f"{host.url}/api/console/")
    await page.get_by_role("link", name="Sign in with Microsoft").click()
    await page.get_by_role("button", name=who).click()
    await page.wait_for_load_state("networkidle")
    return ctx, page


async def serious_violations(page) -> list[str]:
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


class TestTheSeedFlow:
    async def test_an_admin_connects_routes_sends_and_sees_what_went_wrong_and_no_one_else_sees_it(
        self, local_run_with_m365, browser, tmp_path
    ):
        """The console walked through as an admin meets it, in one run of `make run`'s parts:
        sign in → Connected → a workflow made with the pickers (two people, a fallback channel,
        a comment, new or updated) → its dry run → an alert whose card reaches the people's
        chats → Send to Teams with a comment to the on-call person, which goes into their card's
        thread → Problems with an undeliverable alert's two reasons and a rejected event. Then who
        else signs in: someone who is not an admin, another tenant's admin; a change without the
        CSRF token; an alert titled with markup.

        The admin is a second Global Administrator of the Playground's organisation; the on-call
        person is the Playground's user, whose chats its stream shows. The Playground streams no
        other user's chat (isOtherUserChat in its bundle), so the second person's chat is read
        from its Bot Connector instead: the chat it made for them, with them as its member."""
        import asyncio
        import io
        import json

        import aiohttp

        from shared import bootstrap
        from shared.console.signin import GLOBAL_ADMINISTRATOR
        from shared.security import tenant_admin_key
        from tools import publish as publisher

        host, playground, _queue, tenant = local_run_with_m365
        on_call = playground.config["currentUser"]
        person = next(u for u in playground.config["users"] if u["aadObjectId"] != playground.user_id)
        admin = tenant.add_user("Teams Admin Tester", "teams.admin@playground.example", roles=(GLOBAL_ADMINISTRATOR,))

        async def publish(title: str, alert_id: str, exit_code: int = 0) -> None:
            event = json.loads((ROOT / "examples" / "alert-created.json").read_text())
            event["id"] = f"event-{alert_id}"
            event["data"].update(id=alert_id, title=title)
            path = tmp_path / f"{alert_id}.json"
            path.write_text(json.dumps(event))
            out = io.StringIO()
            args = [str(path), "--tenant", playground.tenant_id, "--host", host.url, "--wait", "20"]
            assert await asyncio.to_thread(publisher.main, args, out) == exit_code, out.getvalue()
            await host.wait_idle(timeout=20)

        # Sign in as the tenant's admin: the connection made by admin consent.
        ctx, page = await sign_in(browser, host, admin.display_name)
        assert page.url.endswith("/api/console/connection"), page.url
        status = await page.locator("section[aria-labelledby=status-heading]").inner_text()
        assert "Connected" in status and "Bot identity (application permissions)" in status, status
        connected_by = await page.locator("dt:text-is('Connected by') + dd").inner_text()
        assert connected_by.strip() not in ("", "—"), status
        assert playground.tenant_id in await page.inner_text("main")
        assert "Global Administrator" in await page.inner_text("header")
        # Here the app has no public DNS name and the bot no id: the package says so instead.
        answer = await page.request.get(f"{host.url}/api/console/connection/app-package")
        assert answer.status == 409 and "BOT_APP_ID" in await answer.text()
        response = await page.reload()
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy

        # A workflow made with the pickers: two people, the General channel as fallback.
        await page.get_by_role("link", name="Routing").click()
        await page.get_by_role("link", name="New workflow").click()
        await page.get_by_label("Id").fill("on-call")
        await page.get_by_label("Name").fill("On call: everything high")
        await pick(page, "recipients", on_call["name"].split()[0], on_call["name"])
        await pick(page, "recipients", person["name"].split()[0], person["name"])
        await pick(page, "fallback", "General", "General")
        await page.get_by_label("Comment").fill("Look at it within 15 minutes.")
        await page.get_by_role("radio", name=re.compile(r"^New or updated \(")).check()
        await page.get_by_label("Severity at least").select_option("high")
        await page.get_by_role("button", name="Save").click()
        await page.wait_for_load_state("networkidle")
        text = await page.inner_text("main")
        assert "Workflow on-call saved as revision 1." in text and "On call: everything high" in text, text
        stored = await (await bootstrap.container()).store.get_workflow(playground.tenant_id, "on-call")
        assert [(r.to_json()["kind"], r.user) for r in stored.recipients] == [
            ("person", on_call["aadObjectId"]),
            ("person", person["aadObjectId"]),
        ]
        assert [r.to_json()["kind"] for r in stored.fallback_recipients] == ["channel"]
        assert stored.comment == "Look at it within 15 minutes." and stored.trigger == "new_or_updated"

        # The dry run: who gets it and why.
        await page.get_by_role("button", name="Run the dry run").click()
        await page.wait_for_load_state("networkidle")
        result = await page.locator(".result").inner_text()
        for who in (on_call, person):
            assert f"{who['name']}: workflow On call: everything high (severity>=high)" in result, result

        # An alert, titled with markup: its card reaches both people's chats; the page shows the title as text.
        title = "<img src=x onerror=alert(1)>"
        await publish(title, "XSS-1")
        card = await playground.wait_for(
            "the alert's card in the on-call person's chat",
            lambda e: e.action == "createMessage" and bool(e.cards) and "XSS-1" in json.dumps(e.cards),
            20,
        )
        assert card.conversation_id == playground.personal_chat_id, card
        assert "Look at it within 15 minutes." in json.dumps(card.cards)
        store = (await bootstrap.container()).store
        [state] = await store.find_alerts(playground.tenant_id, "XSS-1")
        theirs = [
            d for d in await store.list_deliveries(playground.tenant_id, state.key) if d.recipient == person["name"]
        ]
        assert [d.status for d in theirs] == ["posted"] and theirs[0].activity_id, theirs
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{playground.url}/_connector/v3/conversations/{theirs[0].conversation_id}/members") as answer,
        ):
            assert answer.status == 200, await answer.text()
            members = await answer.json()
        assert [m.get("objectId") for m in members] == [person["aadObjectId"]], members
        await page.get_by_role("link", name="Alerts").click()
        text = await page.inner_text("main")
        assert title in text, text  # shown as text, not as an element
        assert await page.locator("main img").count() == 0
        await page.get_by_role("link", name="XSS-1").click()
        alert_page = page.url
        state_key = alert_page.split("key=", 1)[1]
        cards = await page.locator("#cards-heading + .table-wrap").inner_text()
        assert on_call["name"] in cards and person["name"] in cards and "On call: everything high" in cards, cards
        # The dry run on that alert, as its next change.
        await page.goto(f"{host.url}/api/console/routing")
        await page.get_by_label("Or a recent alert, as its next change").select_option(value=state_key)
        await page.get_by_role("button", name="Dry run this alert").click()
        await page.wait_for_load_state("networkidle")
        result = await page.locator(".result").inner_text()
        assert "Alert XSS-1 (updated)" in result and on_call["name"] in result, result
        await page.goto(alert_page)

        # Send to Teams, to the on-call person, with a comment: it goes into the thread of their card.
        await pick(page, "recipients", on_call["name"].split()[0], on_call["name"])
        await page.get_by_label("Comment").fill("Can you take this one?")
        await page.get_by_role("button", name="Send").click()
        await page.wait_for_load_state("networkidle")
        assert "Sent" in await page.locator(".notice").inner_text()
        await host.wait_idle(timeout=20)
        reply = await playground.wait_for(
            "the comment in the card's thread",
            lambda e: e.action == "createMessage" and "Can you take this one?" in json.dumps(e.message),
            20,
        )
        # A 1:1 chat has no threads: the comment is the bot's reply to the card (the Playground
        # keeps no replyToId in its stream), a message of its own after it, and no second card.
        assert reply.conversation_id == card.conversation_id and not reply.cards, reply
        assert "Teams Admin Tester" in json.dumps(reply.message)  # who sent it on
        shown = [
            e
            for e in playground.events
            if e.action == "createMessage" and e.conversation_id == card.conversation_id and e.cards
        ]
        assert [e.message_id for e in shown if "XSS-1" in json.dumps(e.cards)] == [card.message_id], shown
        assert playground.events.index(card) < playground.events.index(reply)

        # What went wrong: a workflow (made through the JSON route) whose recipient and fallback
        # both cannot be reached, and an event on the queue that names this tenant and cannot be read.
        key = {"X-Admin-Key": tenant_admin_key(os.environ["ADMIN_API_KEY"], playground.tenant_id)}
        nowhere = {
            "id": "nowhere",
            "name": "Nowhere",
            "match": {"titleContains": "orphan"},
            "trigger": "new_or_updated",
            "recipients": [{"kind": "person", "user": "nobody@example.com"}],
            "fallbackRecipients": [{"kind": "person", "user": "ghost@example.com"}],
        }
        async with aiohttp.ClientSession() as http:
            url = f"{host.url}/api/tenants/{playground.tenant_id}/workflows/nowhere"
            async with http.put(url, json=nowhere, headers=key) as answer:
                assert answer.status == 201, await answer.text()
        await publish("An orphan alert", "ORPHAN-1", exit_code=1)  # make publish says it was undeliverable
        bad = json.loads((ROOT / "examples" / "alert-created.json").read_text())
        bad.update(id="event-bad-1", tenantid=playground.tenant_id)
        bad["data"]["severity"] = "urgent"
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(bad))
        args = [str(path), "--queue", "--host", host.url, "--wait", "20"]
        await asyncio.to_thread(publisher.main, args, io.StringIO())
        await host.wait_idle(timeout=20)
        await page.get_by_role("link", name="Problems").click()
        row = await page.locator("tr", has_text="ORPHAN-1").inner_text()
        assert "nobody@example.com was not found in the organisation's directory" in row, row  # the reason
        assert "ghost@example.com: ghost@example.com was not found" in row, row  # and the fallback's
        rejected = await page.locator("tr", has_text="event-bad-1").inner_text()
        assert "data.severity" in rejected and "urgent" in rejected, rejected

        # A change without the CSRF token is refused and changes nothing; with it, it goes through.
        answer = await page.request.post(f"{host.url}/api/console/connection/disconnect", form={"csrf": "guessed"})
        assert answer.status == 403 and "Nothing was changed" in await answer.text()
        await page.get_by_role("link", name="Connection").click()
        assert "Connected" in await page.locator("section[aria-labelledby=status-heading]").inner_text()
        await ctx.close()

        # Someone who is not an admin: told why, shown nothing, and no page opens for them.
        ctx, page = await sign_in(browser, host, person["name"])
        text = await page.inner_text("main")
        assert "You cannot manage this connector" in text and "Teams Administrator" in text, text
        assert playground.tenant_id not in text and "Connected" not in text
        for path in ("connection", "alerts"):
            await page.goto(f"{host.url}/api/console/{path}")
            assert "Sign in with Microsoft" in await page.inner_text("main")
        await ctx.close()

        # Another tenant's admin sees none of this tenant's data.
        other = host.m365.directory.add_tenant(OTHER_TENANT, "Fabrikam")
        other.add_user("Fabrikam Admin", "admin@fabrikam.example", roles=(GLOBAL_ADMINISTRATOR,))
        ctx, page = await sign_in(browser, host, "Fabrikam Admin")
        text = await page.inner_text("main")
        assert OTHER_TENANT in text and "Not connected" in text, text
        assert playground.tenant_id not in text
        for channel in playground.config["teams"][0]["channels"]:
            assert channel["name"] not in text
        for path in ("routing", "alerts", "problems", "sources", "directory?q=General"):
            await page.goto(f"{host.url}/api/console/{path}")
            shown = await page.inner_text("body")
            assert playground.tenant_id not in shown and "General" not in shown.replace("q=General", ""), (path, shown)
            for secret in ("XSS-1", "ORPHAN-1", "on-call", "event-bad-1", person["name"]):
                assert secret not in shown, (path, secret)
        await ctx.close()


class TestAccessibility:
    @pytest.mark.parametrize("scheme", ["light", "dark"])
    async def test_no_serious_or_critical_violation_on_any_page(self, local_run_with_m365, browser, scheme):
        host, playground, _queue, _tenant = local_run_with_m365
        from datetime import UTC, datetime

        from shared import bootstrap
        from shared.domain.model import AlertState, Undeliverable

        store = (await bootstrap.container()).store
        now = datetime.now(UTC)
        state = await store.save_alert(
            AlertState(
                playground.tenant_id,
                "k-a11y",
                "A11Y-1",
                "prom",
                "https://am",
                "Disk full",
                "open",
                "critical",
                created=now,
                updated=now,
            )
        )
        await store.record_undeliverable(
            Undeliverable(
                playground.tenant_id, state.key, "A11Y-1", "nobody@example.com", "not found", "no fallback", now
            )
        )
        # axe is injected as a script: this context lets it past the page's policy.
        ctx = await browser.new_context(ignore_https_errors=True, color_scheme=scheme, bypass_csp=True)
        page = await ctx.new_page()
        await page.goto(f"{host.url}/api/console/")
        found = {"sign-in": await serious_violations(page)}
        await page.get_by_role("link", name="Sign in with Microsoft").click()
        await page.get_by_role("button", name=playground.config["currentUser"]["name"]).click()
        await page.wait_for_load_state("networkidle")
        found["connection"] = await serious_violations(page)
        for name, path in (
            ("routing", "routing"),
            ("alerts", "alerts"),
            ("problems", "problems"),
            ("sources", "sources"),
            ("alert", "alerts/view?key=k-a11y"),
            ("workflow editor", "routing/edit"),  # last: its picker is opened below
        ):
            await page.goto(f"{host.url}/api/console/{path}")
            found[name] = await serious_violations(page)
        await page.locator("#recipients-search").fill("General")  # the picker, open
        await page.locator("#recipients-options [role=option]").first.wait_for()
        found["picker"] = await serious_violations(page)
        await page.goto(f"{host.url}/api/console/sources")
        await page.get_by_role("button", name="Show its key and settings").click()
        await page.wait_for_load_state("networkidle")
        found["source settings"] = await serious_violations(page)
        await page.goto(f"{host.url}/api/console/routing")
        await page.get_by_role("button", name="Run the dry run").click()
        await page.wait_for_load_state("networkidle")
        found["dry run"] = await serious_violations(page)
        assert found == {page_name: [] for page_name in found}
        await ctx.close()


async def pick(page, picker: str, text: str, option: str) -> None:
    """Type into a recipient picker and choose the option whose text contains ``option``."""
    search = page.locator(f"#{picker}-search")
    await search.fill(text)
    await page.locator(f"#{picker}-options [role=option]", has_text=option).first.wait_for()
    while True:  # move down with the keyboard until the option is the active one
        active = await search.get_attribute("aria-activedescendant")
        if active and option in await page.locator(f"#{active}").inner_text():
            break
        await search.press("ArrowDown")
    await search.press("Enter")


class TestRouting:
    async def test_a_refused_workflow_says_why_next_to_the_field_and_keeps_what_was_typed(
        self, local_run_with_m365, browser
    ):
        host, playground, _queue, _tenant = local_run_with_m365
        ctx, page = await sign_in(browser, host, playground.config["currentUser"]["name"])
        await page.goto(f"{host.url}/api/console/routing/edit")
        await page.get_by_label("Id").fill("no-fallback")
        await page.get_by_label("Name").fill("Without a fallback")
        await pick(page, "recipients", "General", "General")
        await page.get_by_role("button", name="Save").click()
        await page.wait_for_load_state("networkidle")
        error = await page.locator("#fallback-error").inner_text()
        assert error == "must name at least one recipient", error  # the parser's words, under the fallback field
        assert await page.get_by_label("Name").input_value() == "Without a fallback"
        assert "General" in await page.locator("#recipients-picker .chips").inner_text()
        await ctx.close()


class TestSources:
    async def test_a_sources_key_is_shown_when_asked_for_works_and_a_rotation_stops_it(
        self, local_run_with_m365, browser
    ):
        import aiohttp

        host, playground, _queue, _tenant = local_run_with_m365
        ctx, page = await sign_in(browser, host, playground.config["currentUser"]["name"])
        await page.get_by_role("link", name="Sources").click()
        assert await page.locator("code.secret").count() == 0  # no key until asked for
        await page.get_by_label("Source name").fill("prometheus-prod")
        await page.get_by_role("button", name="Show its key and settings").click()
        key = (await page.locator("code.secret").inner_text()).strip()
        alertmanager = await page.get_by_label("alertmanager settings").inner_text()
        url = f"/api/events/alertmanager?tenant={playground.tenant_id}&source=prometheus-prod"
        assert url in alertmanager and f"credentials: {key}" in alertmanager, alertmanager
        firing = (ROOT / "examples" / "alertmanager-firing.json").read_bytes()

        async def post(with_key: str) -> int:
            async with aiohttp.ClientSession() as http:
                headers = {"Authorization": f"Bearer {with_key}", "Content-Type": "application/json"}
                async with http.post(f"{host.url}{url}", data=firing, headers=headers) as answer:
                    return answer.status

        assert await post(key) == 202
        await page.get_by_role("button", name="Rotate the key of prometheus-prod").click()
        assert "The key was rotated" in await page.locator(".notice").inner_text()
        new_key = (await page.locator("code.secret").inner_text()).strip()
        assert new_key != key
        assert await post(key) in (401, 403) and await post(new_key) == 202
        await host.wait_idle(timeout=20)

        # Its own API, for silences: set, never shown again, refused when wrong, removed.
        assert "No API is set" in await page.locator("#api-heading").locator("..").inner_text()
        await page.get_by_label("Address").fill("https://alertmanager.example.com")
        await page.get_by_label("User name (for a password)").fill("teams")
        await page.get_by_label("Password or token").fill("a-password-for-tests-only")
        await page.get_by_role("button", name="Save the API of prometheus-prod").click()
        section = await page.locator("#api-heading").locator("..").inner_text()
        assert "was saved" in section and "https://alertmanager.example.com" in section and "basic as teams" in section
        assert "a-password-for-tests-only" not in await page.content()
        from shared import bootstrap

        store = (await bootstrap.container()).store
        sealed = await store.get_source_api(playground.tenant_id, "prometheus-prod")
        assert sealed and "a-password-for-tests-only" not in sealed
        await page.get_by_label("Address").fill("ftp://alertmanager.example.com")
        await page.get_by_label("Password or token").fill("x")
        await page.get_by_role("button", name="Save the API of prometheus-prod").click()
        assert "url: must be an https address" in await page.locator("#api-error").inner_text()
        assert await page.get_by_label("Address").get_attribute("aria-invalid") == "true"
        assert await store.get_source_api(playground.tenant_id, "prometheus-prod") == sealed  # unchanged
        await page.get_by_role("button", name="Remove the API of prometheus-prod").click()
        assert "was removed" in await page.locator(".notice").inner_text()
        assert not await store.get_source_api(playground.tenant_id, "prometheus-prod")
        await ctx.close()


# Every console page, as the gallery shows it (docs/console/<name>.<theme>.png).
GALLERY_PAGES = (
    "sign-in",
    "refused",
    "connection",
    "routing",
    "workflow",
    "dry-run",
    "alerts",
    "alert",
    "sources",
    "problems",
)
GALLERY_THEMES = ("light", "dark")
GALLERY_WIDTH = 1280


class TestGallery:
    """Screenshots of every page, in light and dark at 1280 px, from this test's data. With
    CONSOLE_GALLERY_DIR set (make console-gallery) they are written there: docs/console."""

    async def test_every_page_is_drawn_in_both_themes(self, local_run_with_m365, browser, tmp_path):
        import struct
        from datetime import UTC, datetime, timedelta

        from shared import bootstrap
        from shared.domain.model import AlertState, Delivery, StatusStep, Undeliverable

        host, playground, _queue, _tenant = local_run_with_m365
        out = Path(os.environ.get("CONSOLE_GALLERY_DIR") or tmp_path)
        out.mkdir(parents=True, exist_ok=True)
        store = (await bootstrap.container()).store
        tenant = playground.tenant_id
        me = playground.config["currentUser"]
        other = next(u for u in playground.config["users"] if u["aadObjectId"] != playground.user_id)
        [general] = [c for c in playground.config["teams"][0]["channels"] if c["name"] == "General"]
        now = datetime.now(UTC)
        state = await store.save_alert(
            AlertState(
                tenant,
                "k-disk",
                "ALRT-2001",
                "Prometheus",
                "https://prometheus.example.com",
                "Disk almost full on db-1",
                "acknowledged",
                "critical",
                description="/var/lib/postgresql is 96% full.",
                created=now - timedelta(minutes=42),
                updated=now,
                steps=(StatusStep("acknowledged", now - timedelta(minutes=30), me["name"], "Teams"),),
            )
        )
        await store.save_delivery(
            Delivery(
                tenant,
                state.key,
                general["id"],
                activity_id="1",
                rendered_version=1,
                status="posted",
                reason="workflow Production: critical",
                conversation={
                    "id": general["id"],
                    "type": "channel",
                    "name": "My Team / General",
                    "tenantId": tenant,
                    "serviceUrl": "",
                    "reference": {},
                },
            )
        )
        await store.record_undeliverable(
            Undeliverable(
                tenant,
                state.key,
                "ALRT-2001",
                "nobody@example.com",
                "nobody@example.com was not found in the organisation's directory",
                "no fallback recipients",
                now,
            )
        )
        workflow = {
            "id": "prod-critical",
            "name": "Production: critical",
            "match": {"minSeverity": "critical"},
            "trigger": "new_or_updated",
            "recipients": [
                {
                    "kind": "channel",
                    "teamId": "00000000-0000-0000-0000-000000000031",
                    "channelId": general["id"],
                    "name": "My Team / General",
                }
            ],
            "fallbackRecipients": [{"kind": "person", "user": me["aadObjectId"], "name": me["name"]}],
            "comment": "Acknowledge within 15 minutes.",
        }
        from shared.domain.workflows import parse_workflow
        from shared.services.workflows import put_workflow

        await put_workflow(store, tenant, parse_workflow(workflow, tenant, "prod-critical"))

        drawn: list[Path] = []
        for theme in GALLERY_THEMES:
            ctx = await browser.new_context(
                ignore_https_errors=True, color_scheme=theme, viewport={"width": GALLERY_WIDTH, "height": 800}
            )
            page = await ctx.new_page()

            async def shot(name: str, page=page, theme=theme) -> None:
                await page.wait_for_load_state("networkidle")
                path = out / f"{name}.{theme}.png"
                await page.screenshot(path=str(path), full_page=True)
                drawn.append(path)

            await page.goto(f"{host.url}/api/console/")
            await shot("sign-in")
            await page.get_by_role("link", name="Sign in with Microsoft").click()
            await page.get_by_role("button", name=other["name"]).click()
            await shot("refused")
            await page.goto(f"{host.url}/api/console/signin")
            await page.get_by_role("button", name=me["name"]).click()
            await shot("connection")
            await page.goto(f"{host.url}/api/console/routing")
            await shot("routing")
            await page.goto(f"{host.url}/api/console/routing/edit?id=prod-critical")
            await pick(page, "recipients", other["name"].split()[0], other["name"])
            await page.locator("#recipients-search").fill("Gen")
            await page.locator("#recipients-options [role=option]").first.wait_for()
            await shot("workflow")
            await page.goto(f"{host.url}/api/console/routing")
            await page.get_by_role("button", name="Run the dry run").click()
            await shot("dry-run")
            await page.goto(f"{host.url}/api/console/alerts")
            await shot("alerts")
            await page.goto(f"{host.url}/api/console/alerts/view?key=k-disk")
            await shot("alert")
            await page.goto(f"{host.url}/api/console/sources")
            await page.get_by_role("button", name="Show its key and settings").click()
            await shot("sources")
            await page.goto(f"{host.url}/api/console/problems")
            await shot("problems")
            await ctx.close()

        assert sorted(p.name for p in drawn) == sorted(
            f"{name}.{theme}.png" for name in GALLERY_PAGES for theme in GALLERY_THEMES
        )
        # docs/console shows the same pages (make console-gallery draws them again).
        assert sorted(p.name for p in (ROOT / "docs" / "console").glob("*.png")) == sorted(p.name for p in drawn)
        for path in drawn:
            data = path.read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">I", data[16:20])[0] == GALLERY_WIDTH, path


class TestANarrowWindow:
    async def test_no_page_scrolls_sideways_at_390_px(self, local_run_with_m365, browser):
        host, playground, _queue, _tenant = local_run_with_m365
        ctx, page = await sign_in(
            browser, host, playground.config["currentUser"]["name"], viewport={"width": 390, "height": 800}
        )
        wide = {}
        for path in ("connection", "routing", "routing/edit", "alerts", "sources", "problems"):
            await page.goto(f"{host.url}/api/console/{path}")
            if path == "sources":
                await page.get_by_role("button", name="Show its key and settings").click()
                await page.wait_for_load_state("networkidle")
            width = await page.evaluate("document.documentElement.scrollWidth")
            if width > 390:
                wide[path] = width
        assert wide == {}, wide
        await ctx.close()
