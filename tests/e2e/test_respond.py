"""Responding from Teams in the Agents Playground, against `make run`'s parts: a card that
@mentions the alert's responders, then Add note, Snooze and Assign from the card's forms (the
type-ahead answered from the simulated tenant's directory) and from commands, each sent back to
the source on the actions queue."""

from __future__ import annotations

import json

import aiohttp
import pytest

from shared import bootstrap
from tests.e2e.test_console import browser  # noqa: F401  (the fixture)
from tests.e2e.test_playground import WAIT_SECONDS, alert_card, install, local_run_with_m365, publish  # noqa: F401
from tests.support.cards import walk

pytestmark = [pytest.mark.e2e, pytest.mark.azurite, pytest.mark.playground]


def form(card: dict, title: str) -> dict:
    """The button that sends the form a card's Action.ShowCard of this title opens."""
    [show] = [a for a in card.get("actions", []) if a.get("title") == title]
    assert show["type"] == "Action.ShowCard", show
    return show


async def to_the_bot(host, playground, person: dict, conversation_id: str, name: str, value: dict) -> dict:
    """An invoke sent to the bot's endpoint as Teams sends it, from one of the Playground's
    people, for what the Playground's client does not send: an ``application/search`` (a card's
    dynamic type-ahead; Teams docs, dynamic-search; its client sends only the invokes of its own
    list) or a press by someone other than its current user. The bot's HTTP answer is the
    invoke response."""
    activity = {
        "type": "invoke",
        "name": name,
        "id": f"{name}-{person['id']}",
        "channelId": "msteams",
        "serviceUrl": f"{playground.url}/_connector",
        "from": {"id": person["id"], "name": person["name"], "aadObjectId": person["aadObjectId"]},
        "recipient": {"id": playground.config["bot"]["id"], "name": playground.config["bot"]["name"]},
        "conversation": {"id": conversation_id, "conversationType": "personal", "tenantId": playground.tenant_id},
        "channelData": {"tenant": {"id": playground.tenant_id}},
        "value": value,
    }
    async with aiohttp.ClientSession() as http, http.post(f"{host.url}/api/messages", json=activity) as answer:
        assert answer.status == 200, await answer.text()
        return await answer.json()


def outbound(host) -> list[dict]:
    return [json.loads(m.body) for m in host.messages("teams-actions")]


class TestRespondingFromTeams:
    async def test_mention_note_snooze_and_assign_from_the_card_and_from_commands(self, local_run_with_m365):
        host, playground, queue, _tenant = local_run_with_m365
        chat = await install(playground)
        me = playground.config["currentUser"]
        megan = next(u for u in playground.config["users"] if u["name"] == "Megan Bowen")

        # This chat subscribes, its cards mentioning the alert's responders (Alex and Megan).
        await playground.send_message(chat, "subscribe mention=responders")
        await playground.wait_for(
            "the subscription's answer",
            lambda e: e.action == "createMessage" and "Subscribed" in (e.message.get("text") or ""),
            WAIT_SECONDS,
        )
        await publish(host, queue, "alert-created.json")
        posted = await playground.wait_for(
            "the alert card",
            lambda e: e.action == "createMessage" and alert_card(e) and e.conversation_id == chat,
            WAIT_SECONDS,
        )
        [card] = posted.cards
        # The mention entities reached the Teams client, by Entra object id, one per responder.
        mentioned = {m["mentioned"]["id"]: m["text"] for m in card["msteams"]["entities"]}
        assert mentioned == {me["aadObjectId"]: "<at>Alex Wilber</at>", megan["aadObjectId"]: "<at>Megan Bowen</at>"}
        store = (await bootstrap.container()).store
        [state] = await store.find_alerts(playground.tenant_id, "ALRT-1042")
        card_id = (await store.get_delivery(playground.tenant_id, state.key, chat)).activity_id

        # Someone who may not see the alert (Adele, pressing the buttons of a copy of the card in
        # her own chat with the bot, where the alert was never sent) is refused each of the
        # three, and nothing changes.
        adele = next(u for u in playground.config["users"] if u["name"] == "Adele Vance")
        for title, inputs in (("Add note", {"noteText": "x"}), ("Snooze", {"snoozeFor": "1h"}), ("Assign", {})):
            button = form(card, title)["card"]["actions"][-1]  # Assign's last is Assign to me
            press = {"action": {"type": "Action.Execute", "verb": button["verb"], "data": {**button["data"], **inputs}}}
            answer = await to_the_bot(host, playground, adele, "a:adele-personal", "adaptiveCard/action", press)
            assert "where you can see it" in json.dumps(answer), (title, answer)
        untouched = await store.get_alert(playground.tenant_id, state.key)
        assert (untouched.notes, untouched.snooze, untouched.assignee) == ((), None, None)

        # Add note, from the card's form.
        [button] = form(card, "Add note")["card"]["actions"]
        answer = await playground.press(chat, card_id, button, {"noteText": "Rolled back 4.12"})
        said = json.dumps(answer)
        assert "Note added by Alex Wilber" in said and "Rolled back 4.12" in said, said
        await playground.wait_for(
            "the note in the card's thread",
            lambda e: e.action == "createMessage" and "**Note** by Alex Wilber: Rolled back 4.12" in str(e.message),
            WAIT_SECONDS,
        )

        # Snooze, from the card's form.
        [button] = form(card, "Snooze")["card"]["actions"]
        answer = await playground.press(chat, card_id, button, {"snoozeFor": "1h"})
        assert "Snoozed until" in json.dumps(answer), answer

        # Assign: the type-ahead finds Megan in the tenant's directory, then the form assigns her.
        show = form(card, "Assign")
        [box] = [n for n in walk(show["card"]) if n.get("id") == "assignTo"]
        query = {"queryText": "megan", "dataset": box["choices.data"]["dataset"], "queryOptions": {"top": 15}}
        found = await to_the_bot(host, playground, me, chat, "application/search", query)
        results = found["value"]["results"]
        assert [r["value"] for r in results] == [megan["aadObjectId"]], found
        assign = next(a for a in show["card"]["actions"] if a["title"] == "Assign")
        answer = await playground.press(chat, card_id, assign, {"assignTo": results[0]["value"]})
        assert "Assigned to Megan Bowen by Alex Wilber" in json.dumps(answer), answer
        reply = await playground.wait_for(
            "Megan mentioned in the card's thread",
            lambda e: e.action == "createMessage" and "<at>Megan Bowen</at> is assigned" in str(e.message),
            WAIT_SECONDS,
        )
        # The Playground keeps a message's mention entities as its "mentions".
        [entity] = [e for e in reply.message.get("mentions") or [] if e.get("type") == "mention"]
        assert entity["mentioned"]["id"] == megan["aadObjectId"], reply.message
        await host.wait_idle(timeout=WAIT_SECONDS)
        # Megan is told in her own 1:1 chat with the bot: the card, recorded as posted there.
        cards = [d for d in await store.list_deliveries(playground.tenant_id, state.key) if d.conversation_id != chat]
        assert [d.status for d in cards] == ["posted"] and cards[0].activity_id, cards

        # The same three as commands.
        for text, answer in (
            (f"note {state.alert_id} watching the error rate", "Note added by Alex Wilber"),
            (f"snooze {state.alert_id} 2h", "Snoozed by Alex Wilber"),
            (f"assign {state.alert_id} me", "Assigned to Alex Wilber by Alex Wilber"),
        ):
            await playground.send_message(chat, text)
            await playground.wait_for(
                f"the answer to {text!r}",
                lambda e, answer=answer: e.action == "createMessage" and answer in (e.message.get("text") or ""),
                WAIT_SECONDS,
            )
        await host.wait_idle(timeout=WAIT_SECONDS)
        stored = await store.get_alert(playground.tenant_id, state.key)
        assert stored.notes[-1]["text"] == "watching the error rate" and stored.assignee["name"] == "Alex Wilber"

        # Each reached the source, and whom the first card mentioned.
        kinds = [e["type"] for e in outbound(host)]
        for kind in ("mentioned", "noted", "snoozed", "assigned"):
            assert f"teams.alert.{kind}" in kinds, kinds
        assert kinds.count("teams.alert.noted") == 2 and kinds.count("teams.alert.assigned") == 2


class TestInThePlaygroundsOwnClient:
    async def test_the_forms_and_the_overflow_menu_work_in_its_web_client(self, local_run_with_m365, browser):
        """The card as a person uses it: the Playground's web client (its Adaptive Cards renderer)
        in Chromium shows the row's first buttons and the rest in its "More options" menu, opens
        the forms, and sends what was typed with the press."""
        host, playground, queue, _tenant = local_run_with_m365
        await install(playground)
        page = await browser.new_page(viewport={"width": 1280, "height": 1400})
        await page.goto(playground.url)
        await publish(host, queue, "alert-created.json")
        card = page.locator(".ac-adaptiveCard").last
        await card.get_by_text("High CPU on web-frontend-03").wait_for()
        row = [t.strip() for t in await card.locator(".ac-actionSet").last.get_by_role("button").all_inner_texts()]
        assert row == ["Acknowledge", "Resolve", "Add note", "Assign", "..."], row

        await card.get_by_role("button", name="Add note").click()
        await card.get_by_label("Note (every copy of the card shows it, and its source gets it)").fill(
            "From the client"
        )
        await card.get_by_role("button", name="Add note").last.click()
        await card.get_by_text("Note added by Alex Wilber.").wait_for()
        await (
            page.get_by_text("**Note** by Alex Wilber: From the client")
            .or_(page.get_by_text("Note by Alex Wilber: From the client"))
            .first.wait_for()
        )

        await card.get_by_role("button", name="More options").click()
        menu = [t.strip() for t in await page.get_by_role("menuitem").all_inner_texts()]
        assert menu == ["Snooze", "Create channel", "Create meeting"], menu
        await page.get_by_role("menuitem", name="Snooze").click()
        await card.get_by_role("button", name="Snooze").last.click()
        await card.get_by_text("Snoozed by Alex Wilber").wait_for()

        await card.get_by_role("button", name="Assign").first.click()
        await card.get_by_role("button", name="Assign to me").click()
        await card.get_by_text("Assigned to Alex Wilber by Alex Wilber.").wait_for()

        store = (await bootstrap.container()).store
        [state] = await store.find_alerts(playground.tenant_id, "ALRT-1042")
        assert state.notes[-1]["text"] == "From the client" and state.snooze and state.assignee["name"] == "Alex Wilber"
        await page.close()
