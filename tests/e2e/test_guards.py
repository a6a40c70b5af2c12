"""Guards that only the app's entry points reach: DEFAULT_TENANT_ID, a setting the alert-events
trigger hands to event processing."""

from __future__ import annotations

import pytest

from shared import bootstrap
from tests.e2e.conftest import TENANT_ID
from tests.e2e.test_alert_flow import cards, example
from tests.e2e.test_hardening import install_in
from tests.support.app import deliver

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]

OTHER_TENANT = "0b5d2c1a-0000-4000-8000-0000000000b2"


async def two_tenants_and_an_event_without_tenantid(sim) -> tuple[str, str, dict]:
    """The bot in a chat of each tenant, and an event that names no tenant."""
    mine = await install_in(sim, TENANT_ID, "a:1guards-home-tenant-chat")
    theirs = await install_in(sim, OTHER_TENANT, "a:1guards-default-tenant-chat")
    event = example("alert-created.json")
    del event["tenantid"]
    return mine, theirs, event


class TestDefaultTenant:
    async def test_an_event_without_tenantid_goes_to_the_tenant_named_by_default_tenant_id(
        self, connector, monkeypatch
    ):
        monkeypatch.setenv("DEFAULT_TENANT_ID", OTHER_TENANT)
        await bootstrap.reset()  # the settings are read again
        sim = connector
        mine, theirs, event = await two_tenants_and_an_event_without_tenantid(sim)
        await deliver(event)
        assert len(cards(sim, theirs)) == 1
        assert cards(sim, mine) == []
        store = (await bootstrap.container()).store
        assert [a.alert_id for a in await store.list_open_alerts(OTHER_TENANT)] == ["ALRT-1042"]
        assert await store.list_open_alerts(TENANT_ID) == []

    async def test_without_it_the_event_is_rejected_when_two_tenants_have_the_bot(self, connector):
        sim = connector
        mine, theirs, event = await two_tenants_and_an_event_without_tenantid(sim)
        await deliver(event)
        assert cards(sim, mine) == [] and cards(sim, theirs) == []
