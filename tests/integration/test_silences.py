"""Silences made through a real Alertmanager's API v2 (Debian's, started on loopback with
Prometheus firing a rule: tools/alerting_loop.py): made with the alert's labels as matchers and
who made it, listed and honoured by Alertmanager, expired; a refusal carries Alertmanager's
own words. And a source's API settings kept encrypted, never shown back."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from shared.adapters.silences import Silences
from shared.domain.source_api import InvalidSourceApi, SourceApi, matchers_for, parse_source_api
from shared.ports import SourceRefused
from tools.alerting_loop import ALERT_NAME, AlertingLoop

WAIT_SECONDS = 30.0


async def firing(silences: Silences) -> dict:
    """The rule's alert, once Prometheus has sent it to Alertmanager."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        alerts = await silences.alerts({"alertname": ALERT_NAME})
        if alerts:
            return alerts[0]
        assert time.monotonic() < deadline, "Prometheus's alert never reached Alertmanager"
        await asyncio.sleep(0.5)


class TestARealAlertmanager:
    async def test_a_silence_is_listed_honoured_and_expired(self):
        # Alertmanager's webhook goes nowhere here: this test talks to its API only.
        async with AlertingLoop("http://127.0.0.1:9/nowhere", "unused") as loop:
            loop.failing = 1
            silences = Silences(SourceApi("alertmanager", loop.alertmanager_url), allow_private=True)
            alert = await firing(silences)
            now = datetime.now(UTC)
            silence_id = await silences.create(
                matchers_for(alert["labels"]),
                now,
                now + timedelta(hours=1),
                "Alex Wilber (00000000-0000-0000-0000-0000000000020)",
                "Silenced from Teams: a deploy is rolling back",
            )
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{loop.alertmanager_url}/api/v2/silences") as answer,
            ):
                listed = await answer.json()
            [silence] = [s for s in listed if s["id"] == silence_id]
            assert silence["createdBy"] == "Alex Wilber (00000000-0000-0000-0000-0000000000020)"
            assert silence["status"]["state"] == "active"
            assert {(m["name"], m["value"]) for m in silence["matchers"]} == set(alert["labels"].items())
            assert all(m["isEqual"] and not m["isRegex"] for m in silence["matchers"])
            [now_silenced] = await silences.alerts({"alertname": ALERT_NAME})
            assert now_silenced["status"]["state"] == "suppressed", now_silenced
            assert now_silenced["status"]["silencedBy"] == [silence_id]

            await silences.expire(silence_id)
            assert (await silences.get(silence_id))["status"]["state"] == "expired"
            [again] = await silences.alerts({"alertname": ALERT_NAME})
            assert again["status"]["state"] == "active"

    async def test_a_refusal_says_what_alertmanager_said(self):
        async with AlertingLoop("http://127.0.0.1:9/nowhere", "unused") as loop:
            silences = Silences(SourceApi("alertmanager", loop.alertmanager_url), allow_private=True)
            now = datetime.now(UTC)
            with pytest.raises(SourceRefused) as refused:
                await silences.create([], now, now + timedelta(hours=1), "someone", "no matchers")
            assert refused.value.status == 422, refused.value
            assert str(refused.value) == "alertmanager answered 422: matchers in body should have at least 1 items"

    async def test_an_unreachable_source_says_so(self):
        silences = Silences(SourceApi("alertmanager", "http://127.0.0.1:9"), allow_private=True)
        with pytest.raises(SourceRefused, match="could not be reached"):
            await silences.alerts({"alertname": ALERT_NAME})


class TestSourceApiSettings:
    def test_the_credential_is_never_shown_back(self):
        api = parse_source_api(
            {"kind": "grafana", "url": "https://grafana.example.com/", "auth": {"type": "bearer", "token": "glsa_x"}}
        )
        assert api.api_base == "https://grafana.example.com/api/alertmanager/grafana/api/v2"
        assert "glsa_x" not in str(api.public()) and api.public()["credentialSet"] is True

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"url": "http://am.example.com"}, "url"),  # the credential would go in the clear
            ({"url": "https://user:pw@am.example.com"}, "url"),
            ({"url": "https://am.example.com", "auth": {"type": "basic", "username": "a"}}, "auth.password"),
            ({"url": "https://am.example.com", "auth": {"type": "token"}}, "auth.type"),
            ({"kind": "grafana", "url": "https://grafana.example.com"}, "auth.type"),
            ({"kind": "nagios", "url": "https://n.example.com"}, "kind"),
            ({"url": "https://am.example.com/" + "a" * 3000}, "url"),
            # Addresses of this instance, its metadata service or a private network.
            ({"url": "https://127.0.0.1:9093"}, "url"),
            ({"url": "http://127.0.0.1:9093"}, "url"),
            ({"url": "https://localhost"}, "url"),
            ({"url": "https://10.0.0.5"}, "url"),
            ({"url": "https://169.254.169.254"}, "url"),
            ({"url": "https://[::1]:9093"}, "url"),
        ],
    )
    def test_a_refusal_names_the_field(self, body, field):
        with pytest.raises(InvalidSourceApi) as refused:
            parse_source_api(body)
        assert refused.value.field == field

    async def test_stored_encrypted_for_its_own_source_only(self):
        from shared.adapters.state_store import memory_store
        from shared.security import DecryptionError, TokenCipher, new_key
        from shared.services.sources import set_source_api, source_api

        store, cipher = memory_store(), TokenCipher.from_setting(new_key())
        body = {"url": "https://am.example.com", "auth": {"type": "basic", "username": "teams", "password": "s3cret!"}}
        shown = await set_source_api(store, cipher, "t1", "prod-am", body)
        assert shown == {
            "kind": "alertmanager",
            "url": "https://am.example.com",
            "auth": "basic",
            "username": "teams",
            "credentialSet": True,
        }
        sealed = await store.get_source_api("t1", "prod-am")
        assert sealed and "s3cret!" not in sealed and "teams" not in sealed
        assert (await source_api(store, cipher, "t1", "prod-am")).secret == "s3cret!"
        # The same ciphertext under another source does not open.
        await store.save_source_api("t1", "other", sealed)
        with pytest.raises(DecryptionError):
            await source_api(store, cipher, "t1", "other")
        # A key rotation keeps the API settings.
        await store.rotate_source_key("t1", "prod-am")
        assert (await source_api(store, cipher, "t1", "prod-am")).username == "teams"


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ({"type": "basic", "username": "teams", "password": "s3cret!"}, "Basic dGVhbXM6czNjcmV0IQ=="),
        ({"type": "bearer", "token": "glsa_abc"}, "Bearer glsa_abc"),
        ({"type": "none"}, None),
    ],
)
async def test_the_credential_goes_with_each_request(auth, expected):
    from aiohttp import web

    seen: list[str | None] = []

    async def alerts(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response([])

    app = web.Application()
    app.router.add_get("/api/v2/alerts", alerts)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # the port the OS chose
    try:
        api = parse_source_api({"url": f"http://127.0.0.1:{port}", "auth": auth}, allow_local_http=True)
        assert await Silences(api, allow_private=True).alerts({"alertname": "X"}) == []
    finally:
        await runner.cleanup()
    assert seen == [expected]


class TestOnlyPublicAddresses:
    async def test_a_private_address_is_refused_before_any_request(self):
        silences = Silences(SourceApi("alertmanager", "https://10.1.2.3"))
        with pytest.raises(SourceRefused, match="is not a public address"):
            await silences.alerts({"alertname": ALERT_NAME})

    async def test_a_name_that_resolves_to_this_machine_is_not_connected_to(self):
        from shared.adapters.silences import _public_only_resolver

        resolver = _public_only_resolver()
        try:
            with pytest.raises(OSError, match="resolves to no public address"):
                await resolver.resolve("localhost", 443)
        finally:
            await resolver.close()

    def test_a_local_run_may_name_loopback_even_in_plain_http(self):
        api = parse_source_api({"url": "http://127.0.0.1:9093"}, allow_local_http=True)
        assert api.api_base == "http://127.0.0.1:9093/api/v2"
