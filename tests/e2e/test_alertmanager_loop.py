"""A real alerting source end to end: Debian's Prometheus evaluates a rule on a metric this test
sets, Debian's Alertmanager sends what fires to the connector's ingest route with its own
webhook receiver, and the card reaches the Agents Playground; when the metric clears,
Alertmanager's resolved notification turns the card to Resolved. Everything runs on loopback
(tools/alerting_loop.py); the pair is installed by tools/install_alertmanager.sh."""

from __future__ import annotations

import json
import os
import time

import aiohttp
import pytest

from tests.e2e.test_playground import alert_card, install, local_run_with_m365, status  # noqa: F401
from tools.alerting_loop import ALERT_NAME, AlertingLoop

pytestmark = [pytest.mark.e2e, pytest.mark.azurite, pytest.mark.playground]

# Prometheus scrapes and evaluates every second, Alertmanager groups for a second: a firing or a
# resolution takes a few seconds to reach the connector.
LOOP_SECONDS = 60.0


async def ingest_setup(host, tenant_id: str, source: str) -> tuple[str, str]:
    """The source's Alertmanager webhook URL and key, as the tenant's admin gets them."""
    from shared.security import tenant_admin_key

    key = {"X-Admin-Key": tenant_admin_key(os.environ["ADMIN_API_KEY"], tenant_id)}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{host.url}/api/tenants/{tenant_id}/sources/{source}", headers=key) as answer,
    ):
        assert answer.status == 200, await answer.text()
        setup = await answer.json()
    url: str = setup["urls"]["alertmanager"]
    # The address is on the connector's public base URL; here the host listens on its own port.
    return host.url + url[url.index("/api/") :], setup["key"]


class TestARealAlertmanager:
    async def test_fires_a_card_and_resolves_it(self, local_run_with_m365):
        host, playground, _queue, _tenant = local_run_with_m365
        chat = await install(playground)
        url, key = await ingest_setup(host, playground.tenant_id, "checkout-prometheus")
        started = time.monotonic()
        async with AlertingLoop(url, key) as loop:
            loop.failing = 3
            posted = await playground.wait_for(
                "the firing alert's card",
                lambda e: e.action == "createMessage" and alert_card(e) and ALERT_NAME in str(e.cards),
                LOOP_SECONDS,
            )
            assert posted.conversation_id == chat and status(posted) == "Open", playground.describe()
            assert "Checkout requests are failing" in str(posted.cards)

            loop.failing = 0
            resolved = await playground.wait_for(
                "the card resolved by Alertmanager's resolved notification",
                lambda e: e.action == "updateMessage" and e.message_id == posted.message_id and status(e) == "Resolved",
                LOOP_SECONDS,
            )
            assert resolved.conversation_id == chat
        cards = [e for e in playground.events if e.action == "createMessage" and alert_card(e)]
        assert cards == [posted], playground.describe()
        print(f"the loop took {time.monotonic() - started:.1f} s")  # the wall time, shown with -s


class TestASourcesApi:
    async def test_is_set_shown_without_its_credential_refused_when_wrong_and_removed(self, local_run_with_m365):
        from shared.security import tenant_admin_key

        host, playground, _queue, _tenant = local_run_with_m365
        tenant = playground.tenant_id
        url = f"{host.url}/api/tenants/{tenant}/sources/checkout-prometheus/api"
        key = {"X-Admin-Key": tenant_admin_key(os.environ["ADMIN_API_KEY"], tenant)}
        body = {
            "kind": "alertmanager",
            "url": "https://alertmanager.example.com",
            "auth": {"type": "basic", "username": "teams", "password": "a-password-for-tests-only"},
        }
        async with aiohttp.ClientSession() as http:
            async with http.get(url, headers=key) as answer:
                assert answer.status == 404 and "has no API set" in (await answer.json())["error"]
            async with http.put(url, json=body, headers=key) as answer:
                shown = await answer.json()
                assert answer.status == 200, shown
            async with http.get(url, headers=key) as answer:
                assert await answer.json() == shown
            assert shown["credentialSet"] is True and "a-password-for-tests-only" not in json.dumps(shown)
            async with http.put(url, json={**body, "url": "http://alertmanager.example.com"}, headers=key) as answer:
                refused = await answer.json()
                assert answer.status == 400 and refused["field"] == "url", refused
            async with http.put(url, json=body, headers={"X-Admin-Key": "wrong"}) as answer:
                assert answer.status in (401, 403)
            async with http.delete(url, headers=key) as answer:
                assert answer.status == 204
            async with http.get(url, headers=key) as answer:
                assert answer.status == 404
        # Stored encrypted: the credential is nowhere in the table's row.
        from shared import bootstrap

        async with aiohttp.ClientSession() as http, http.put(url, json=body, headers=key) as answer:
            assert answer.status == 200
        sealed = await (await bootstrap.container()).store.get_source_api(tenant, "checkout-prometheus")
        assert sealed and "a-password-for-tests-only" not in sealed and "teams" not in sealed


class TestSilencingFromTeams:
    async def test_a_silence_alertmanager_lists_and_honours_then_expired_and_the_card_resolved(
        self, local_run_with_m365
    ):
        """firing → card → Silence (its button) → Alertmanager lists it with the alert's
        matchers and the person's identity → the silenced alert clears, and no notification of
        it comes, while a second, unsilenced alert still arrives → expire-silence → the source
        is asked, and the card of the alert that cleared meanwhile turns Resolved."""
        from shared import bootstrap
        from shared.security import tenant_admin_key

        host, playground, _queue, _tenant = local_run_with_m365
        chat = await install(playground)
        tenant = playground.tenant_id
        store = (await bootstrap.container()).store
        url, key = await ingest_setup(host, tenant, "checkout-prometheus")
        async with AlertingLoop(url, key) as loop:
            # The tenant's admin tells the connector where that Alertmanager's API is.
            admin = {"X-Admin-Key": tenant_admin_key(os.environ["ADMIN_API_KEY"], tenant)}
            async with (
                aiohttp.ClientSession() as http,
                http.put(
                    f"{host.url}/api/tenants/{tenant}/sources/checkout-prometheus/api",
                    json={"kind": "alertmanager", "url": loop.alertmanager_url},
                    headers=admin,
                ) as answer,
            ):
                assert answer.status == 200, await answer.text()

            def card_of(region: str):
                return lambda e: e.action == "createMessage" and alert_card(e) and f"region**: {region}" in str(e.cards)

            loop.regions = {"west": 2}
            west = await playground.wait_for("the west alert's card", card_of("west"), LOOP_SECONDS)
            [state] = await store.list_open_alerts(tenant)

            # Silence on the card: its form's inputs come with the button's data, as the client sends them.
            [show] = [a for card in west.cards for a in card.get("actions", []) if a.get("title") == "Silence"]
            assert show["type"] == "Action.ShowCard", show
            [button] = show["card"]["actions"]
            answer = await playground.press(
                chat,
                west.message_id,
                {**button, "data": {**button["data"], "duration": "1h", "comment": "rolling back the deploy"}},
            )
            said = json.dumps(answer)
            assert "Silenced in alertmanager" in said, said
            silence_id = said.split("(silence ", 1)[1].split(")", 1)[0]
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{loop.alertmanager_url}/api/v2/silences") as answer,
            ):
                [silence] = [s for s in await answer.json() if s["id"] == silence_id]
            assert silence["status"]["state"] == "active" and silence["comment"] == "rolling back the deploy"
            # Who made it: the person's verified link (here their Microsoft 365 account).
            me = playground.config["currentUser"]
            link = await store.get_link(tenant, me["aadObjectId"])
            assert link is not None and link.verified and silence["createdBy"] == link.platform_identity, silence
            matchers = {m["name"]: m["value"] for m in silence["matchers"]}
            assert matchers["alertname"] == ALERT_NAME and matchers["region"] == "west", matchers
            # The pressed card is answered in the invoke response: it says so, and offers the expiry.
            assert "Silenced in its source" in said and "Expire silence" in said

            # The silenced alert clears, a second one fires: only the second reaches Teams.
            loop.regions = {"west": 0, "east": 1}
            east = await playground.wait_for("the east alert's card", card_of("east"), LOOP_SECONDS)
            assert east.message_id != west.message_id
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{loop.prometheus_url}/api/v1/alerts") as answer,
            ):
                firing = [a["labels"].get("region") for a in (await answer.json())["data"]["alerts"]]
            assert firing == ["east"], firing  # Prometheus no longer fires west: Alertmanager holds its resolution
            assert (await store.get_alert(tenant, state.key)).status == "open"  # nothing told the connector

            await playground.send_message(chat, f"expire-silence {state.alert_id}")
            await playground.wait_for(
                "the expiry's reply",
                lambda e: (
                    e.action == "createMessage" and f"Silence {silence_id} expired" in (e.message.get("text") or "")
                ),
                LOOP_SECONDS,
            )
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{loop.alertmanager_url}/api/v2/silence/{silence_id}") as answer,
            ):
                assert (await answer.json())["status"]["state"] == "expired"
            resolved = await playground.wait_for(
                "the west card resolved once its silence ended",
                lambda e: e.action == "updateMessage" and e.message_id == west.message_id and status(e) == "Resolved",
                LOOP_SECONDS,
            )
            assert silence_id not in str(resolved.cards)
        assert (await store.get_alert(tenant, state.key)).status == "resolved"
