"""The published JSON Schema and the parser describe the same CloudEvent contract.

Every example goes through both ``schemas/alert-event.schema.json`` (jsonschema, draft
2020-12) and the parser the queue trigger uses for it (``parse_message`` for alert events,
``parse_command`` for the command types, routed as ``process_message`` routes them); they must
agree on valid/invalid, and for invalid events the parser's error must name the field the
example breaks.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from shared.adapters.state_store import memory_store
from shared.domain.commands import (
    COMMAND_TYPES,
    CONNECTOR_SOURCE,
    EXISTING_TYPE,
    SEND_TYPE,
    ExistingCommand,
    SendCommand,
    existing_command,
    parse_command,
)
from shared.domain.events import (
    EVENT_TYPES,
    KINDS,
    MAX_ID_LENGTH,
    SEVERITIES,
    STATUSES,
    InvalidEvent,
    decode_json,
    parse_cloudevent,
)
from shared.domain.inbound import parse_events, parse_message
from shared.domain.workflows import (
    MAX_COMMENT_CHARS,
    MAX_GROUP_MEMBERS,
    MAX_NAME_CHARS,
    MAX_RECIPIENTS,
    RECIPIENT_KINDS,
)
from shared.services.processing import process_message
from tests.support.fakes import RecordingMessenger, conversation, delivering

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "alert-event.schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA)
WORKFLOW_SCHEMA = json.loads((SCHEMA_PATH.parent / "workflow.schema.json").read_text(encoding="utf-8"))
ALERT_DATA = SCHEMA["$defs"]["alertData"]
RECIPIENT_DEFS = (
    "recipient",
    "channelRecipient",
    "chatRecipient",
    "personRecipient",
    "groupRecipient",
    "respondersRecipient",
    "recipientName",
    "mention",
)

BASE: dict[str, Any] = {
    "specversion": "1.0",
    "id": "evt-0001",
    "source": "https://alerts.example.com",
    "type": "alert.created",
    "subject": "ALRT-1042",
    "time": "2024-05-14T08:31:46Z",
    "datacontenttype": "application/json",
    "data": {"id": "ALRT-1042", "title": "High CPU on web-frontend-03", "severity": "high"},
}

_DROP = object()


def event(*, data: dict | None = None, **attributes: Any) -> dict:
    """BASE with top-level attributes and data fields replaced; ``_DROP`` removes one."""
    result = copy.deepcopy(BASE)
    for key, value in attributes.items():
        if value is _DROP:
            result.pop(key, None)
        else:
            result[key] = value
    for key, value in (data or {}).items():
        if value is _DROP:
            result["data"].pop(key, None)
        else:
            result["data"][key] = value
    return result


VALID_CASES = {
    "minimal alert with subject, time and title": event(),
    "every optional attribute and data field": event(
        tenantid="72f988bf-86f1-41af-91ab-2d7cd011db47",
        dataschema="https://alerts.example.com/schema.json",
        data={
            "kind": "issue",
            "description": "Load average above 8 for 10 minutes.",
            "status": "open",
            "source": "Contoso Alerting",
            "url": "https://alerts.example.com/alerts/ALRT-1042",
            "labels": {"service": "web-frontend", "replicas": 3, "canary": False},
            "responders": ["oncall@contoso.com"],
            "created": "2024-05-14T08:30:00.123+02:00",
            "updated": "2024-05-14T08:31:46.358452189Z",
            "version": 7,
            "actions": ["acknowledge", "resolve"],
        },
    ),
    "alert id from subject only": event(data={"id": _DROP}),
    "alert id from data only": event(subject=_DROP),
    "version from data.updated when time is absent": event(time=_DROP, data={"updated": "2024-05-14T08:31:46Z"}),
    "explicit version without any timestamp": event(time=_DROP, data={"version": 0}),
    "json content type with charset": event(datacontenttype="application/json; charset=utf-8"),
    "optional fields set to null": event(
        tenantid=None, data={"description": None, "severity": None, "labels": None, "url": None}
    ),
    "unknown extension attribute": event(traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    "issue event type": event(type="issue.updated", data={"kind": "issue", "status": "acknowledged"}),
    "time with nanoseconds and offset": event(time="2024-05-14T10:31:46.358452189+02:00"),
    "http url": event(data={"url": "http://alerts.internal:8080/a/1"}),
}

# (event, the field parse_cloudevent must name)
INVALID_CASES = {
    "no specversion": (event(specversion=_DROP), "specversion"),
    "wrong specversion": (event(specversion="0.3"), "specversion"),
    "no id": (event(id=_DROP), "id"),
    "blank id": (event(id="   "), "id"),
    "id too long": (event(id="x" * 257), "id"),
    "no source": (event(source=_DROP), "source"),
    "empty source": (event(source=""), "source"),
    "no type": (event(type=_DROP), "type"),
    "unknown type": (event(type="alert.deleted"), "type"),
    "non-json content type": (event(datacontenttype="text/plain"), "datacontenttype"),
    "no data": ({k: v for k, v in BASE.items() if k != "data"}, "data"),
    "data not an object": (event() | {"data": "High CPU"}, "data"),
    "time not a timestamp": (event(time="yesterday"), "time"),
    "tenantid not a string": (event(tenantid=42), "tenantid"),
    "tenantid not a GUID": (event(tenantid="contoso.onmicrosoft.com"), "tenantid"),
    "tenantid that would break a table key": (event(tenantid="72f988bf-86f1-41af-91ab-2d7cd011db47#x"), "tenantid"),
    "tenantid of 2,000 characters": (event(tenantid="a" * 2000), "tenantid"),
    "subject not a string": (event(subject=1042), "subject"),
    "no alert id at all": (event(subject=_DROP, data={"id": _DROP}), "data.id"),
    "empty alert id without subject": (event(subject=_DROP, data={"id": ""}), "data.id"),
    "alert id too long": (event(data={"id": "a" * 257}), "data.id"),
    "no title": (event(data={"title": _DROP}), "data.title"),
    "blank title": (event(data={"title": " "}), "data.title"),
    "unknown severity": (event(data={"severity": "urgent"}), "data.severity"),
    "unknown status": (event(data={"status": "closed"}), "data.status"),
    "unknown kind": (event(data={"kind": "incident"}), "data.kind"),
    "url not http": (event(data={"url": "ftp://alerts.example.com/1"}), "data.url"),
    "labels not an object": (event(data={"labels": ["service=web"]}), "data.labels"),
    "label value an object": (event(data={"labels": {"service": {"name": "web"}}}), "data.labels.service"),
    "too many labels": (event(data={"labels": {f"k{i}": "v" for i in range(65)}}), "data.labels"),
    "responders not a list": (event(data={"responders": "oncall@contoso.com"}), "data.responders"),
    "responder not a string": (event(data={"responders": [42]}), "data.responders"),
    "too many responders": (event(data={"responders": [f"u{i}@contoso.com" for i in range(51)]}), "data.responders"),
    "negative version": (event(data={"version": -1}), "data.version"),
    "version a string": (event(data={"version": "7"}), "data.version"),
    "version a boolean": (event(data={"version": True}), "data.version"),
    "no version and no timestamps": (event(time=_DROP), "data.version"),
    "updated not a timestamp": (event(data={"updated": "2024-13-45"}), "data.updated"),
    "created not a timestamp": (event(data={"created": 1715675506}), "data.created"),
    "source over 1024 characters": (event(source="https://alerts.example.com/" + "s" * 1100), "source"),
    "data.source over 256 characters": (event(data={"source": "S" * 300}), "data.source"),
    "url over 2048 characters": (event(data={"url": "https://alerts.example.com/" + "u" * 2100}), "data.url"),
    "a label value over 1024 characters": (event(data={"labels": {"big": "v" * 1100}}), "data.labels.big"),
    "a label name over 256 characters": (event(data={"labels": {"n" * 300: "v"}}), "data.labels"),
    "a responder over 320 characters": (event(data={"responders": ["r" * 330 + "@contoso.com"]}), "data.responders"),
}

# Where the parser is deliberately more forgiving than the contract: publishers should follow
# the schema, and the parser still accepts these rather than dead-letter a usable alert.
PARSER_IS_LENIENT = {
    "upper-case severity": event(data={"severity": "HIGH"}),
    "time without an offset (read as UTC)": event(time="2024-05-14T08:31:46"),
}


# ---------------------------------------------------------------------------- commands

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
TEAM_ID = "5f3c7a1e-2b9d-4c8e-9a61-0d4e7b2f8c13"
CHANNEL_ID = "19:8f2b4c6d1e3a4f5b9c7d2e1f0a3b4c5d@thread.tacv2"
CHAT_ID = "19:2d8e6f4a0b1c4d3e9f7a5b3c1d0e2f4a@thread.v2"
CHANNEL = {"kind": "channel", "teamId": TEAM_ID, "channelId": CHANNEL_ID}
CHAT = {"kind": "chat", "chatId": CHAT_ID}
PERSON = {"kind": "person", "user": "oncall@contoso.com"}
GROUP = {"kind": "group", "users": ["adele.vance@contoso.com", "lee.gu@contoso.com"]}
RESPONDERS = {"kind": "responders"}

SEND_BASE: dict[str, Any] = {
    "specversion": "1.0",
    "id": "send-7f3a",
    "source": "https://alerts.example.com",
    "type": SEND_TYPE,
    "subject": "ALRT-1042",
    "datacontenttype": "application/json",
    "data": {"recipients": [CHANNEL]},
}

EXISTING_BASE = existing_command(TENANT, "ops-high", 3)


def command(*, data: dict | None = None, base: dict = SEND_BASE, **attributes: Any) -> dict:
    """SEND_BASE (or ``base``) with top-level attributes and data fields replaced; ``_DROP`` removes one."""
    result = copy.deepcopy(base)
    for key, value in attributes.items():
        if value is _DROP:
            result.pop(key, None)
        else:
            result[key] = copy.deepcopy(value)
    for key, value in (data or {}).items():
        if value is _DROP:
            result["data"].pop(key, None)
        else:
            result["data"][key] = copy.deepcopy(value)
    return result


def existing(*, data: dict | None = None, **attributes: Any) -> dict:
    return command(data=data, base=EXISTING_BASE, **attributes)


def to(*recipients: dict) -> dict:
    """A send command to these recipients."""
    return command(data={"recipients": list(recipients)})


def people(count: int) -> list[str]:
    return [f"user{i}@contoso.com" for i in range(count)]


VALID_COMMANDS: dict[str, dict] = {
    "minimal send: subject and one channel": command(),
    "every field": command(
        tenantid=TENANT,
        data={
            "recipients": [CHANNEL | {"name": "Ops / Alerts"}, PERSON],
            "fallbackRecipients": [CHAT | {"name": "Service owners"}],
            "comment": "Customer-facing since 08:30: please look now.",
            "requestedBy": "adele.vance@contoso.com",
            "alertId": "ALRT-1042",
            "alertSource": "https://alerts.example.com",
        },
    ),
    "alert id from data.alertId without subject": command(subject=_DROP, data={"alertId": "ALRT-1042"}),
    "alert of another source (the admin route's shape)": command(
        source="urn:teams-alert-connector:admin", data={"alertSource": "alertmanager"}
    ),
    "every recipient kind": to(CHANNEL, CHAT, PERSON, GROUP, RESPONDERS),
    "as many recipients as allowed": command(
        data={"recipients": [{"kind": "person", "user": u} for u in people(MAX_RECIPIENTS)]}
    ),
    "empty fallbackRecipients (what the admin route sends when none are given)": command(
        data={"fallbackRecipients": []}
    ),
    "comment of the longest length": command(data={"comment": "c" * MAX_COMMENT_CHARS}),
    "requestedBy of the longest length": command(data={"requestedBy": "r" * 200}),
    "optional fields set to null": command(
        tenantid=None,
        data={"fallbackRecipients": None, "comment": None, "requestedBy": None, "alertId": None, "alertSource": None},
    ),
    "an unknown data field (ignored)": command(data={"priority": "high"}),
    "the connector's own teams.workflow.existing": existing(),
}

# (command, the field parse_command must name). Each breaks exactly one rule.
INVALID_COMMANDS: dict[str, tuple[dict, str]] = {
    "wrong specversion": (command(specversion="0.3"), "specversion"),
    "no specversion (then it is read as an alert event)": (command(specversion=_DROP), "specversion"),
    "no id": (command(id=_DROP), "id"),
    "blank id": (command(id="  "), "id"),
    "id too long": (command(id="x" * (MAX_ID_LENGTH + 1)), "id"),
    "no source": (command(source=_DROP), "source"),
    "source too long": (command(source="https://alerts.example.com/" + "s" * 1000), "source"),
    "tenantid not a string": (command(tenantid=42), "tenantid"),
    "tenantid not a GUID": (command(tenantid="../../x"), "tenantid"),
    "no data": ({k: v for k, v in SEND_BASE.items() if k != "data"}, "data"),
    "data null": (command() | {"data": None}, "data"),
    "data not an object": (command() | {"data": [CHANNEL]}, "data"),
    "no alert id at all": (command(subject=_DROP), "subject"),
    "blank subject and no alertId": (command(subject=" "), "subject"),
    "subject not a string": (command(subject=1042), "subject"),
    "alertId not a string": (command(data={"alertId": 1042}), "data.alertId"),
    "alertId too long": (command(data={"alertId": "a" * (MAX_ID_LENGTH + 1)}), "data.alertId"),
    "alertSource not a string": (command(data={"alertSource": ["alertmanager"]}), "data.alertSource"),
    "missing recipients": (command(data={"recipients": _DROP}), "data.recipients"),
    "empty recipients": (command(data={"recipients": []}), "data.recipients"),
    "recipients not a list": (command(data={"recipients": CHANNEL}), "data.recipients"),
    "too many recipients": (
        command(data={"recipients": [{"kind": "person", "user": u} for u in people(MAX_RECIPIENTS + 1)]}),
        "data.recipients",
    ),
    "recipient not an object": (to("oncall@contoso.com"), "data.recipients[0]"),
    "recipient without kind": (to({"user": "oncall@contoso.com"}), "data.recipients[0].kind"),
    "unknown recipient kind": (to({"kind": "email", "user": "oncall@contoso.com"}), "data.recipients[0].kind"),
    "channel without channelId": (to({"kind": "channel", "teamId": TEAM_ID}), "data.recipients[0].channelId"),
    "channel without teamId (second recipient)": (
        to(PERSON, {"kind": "channel", "channelId": CHANNEL_ID}),
        "data.recipients[1].teamId",
    ),
    "channel with a blank channelId": (
        to({"kind": "channel", "teamId": TEAM_ID, "channelId": " "}),
        "data.recipients[0].channelId",
    ),
    "channel with a chatId": (to(CHANNEL | {"chatId": CHAT_ID}), "data.recipients[0].chatId"),
    "chat without chatId": (to({"kind": "chat"}), "data.recipients[0].chatId"),
    "person without user": (to({"kind": "person"}), "data.recipients[0].user"),
    "person user too long": (to({"kind": "person", "user": "u" * 321}), "data.recipients[0].user"),
    "group with one user": (to({"kind": "group", "users": ["lee.gu@contoso.com"]}), "data.recipients[0].users"),
    "group larger than a group chat": (
        to({"kind": "group", "users": people(MAX_GROUP_MEMBERS + 1)}),
        "data.recipients[0].users",
    ),
    "responders with a user": (to(RESPONDERS | {"user": "oncall@contoso.com"}), "data.recipients[0].user"),
    "recipient name too long": (to(PERSON | {"name": "n" * (MAX_NAME_CHARS + 1)}), "data.recipients[0].name"),
    "fallbackRecipients not a list": (command(data={"fallbackRecipients": PERSON}), "data.fallbackRecipients"),
    "too many fallbackRecipients": (
        command(data={"fallbackRecipients": [{"kind": "person", "user": u} for u in people(MAX_RECIPIENTS + 1)]}),
        "data.fallbackRecipients",
    ),
    "fallback channel without channelId": (
        command(data={"fallbackRecipients": [{"kind": "channel", "teamId": TEAM_ID}]}),
        "data.fallbackRecipients[0].channelId",
    ),
    "comment too long": (command(data={"comment": "c" * (MAX_COMMENT_CHARS + 1)}), "data.comment"),
    "comment not a string": (command(data={"comment": ["look", "now"]}), "data.comment"),
    "requestedBy too long": (command(data={"requestedBy": "r" * 201}), "data.requestedBy"),
    "existing from another source": (existing(source="https://alerts.example.com"), "source"),
    "existing without tenantid": (existing(tenantid=_DROP), "tenantid"),
    "existing without workflowId": (existing(data={"workflowId": _DROP}), "data.workflowId"),
    "existing with revision 0": (existing(data={"revision": 0}), "data.revision"),
    "existing with revision as a string": (existing(data={"revision": "3"}), "data.revision"),
    "existing with revision as a boolean": (existing(data={"revision": True}), "data.revision"),
}

# Rules only the parser can check: JSON Schema accepts these, the connector refuses them.
COMMAND_PARSER_ONLY_RULES: dict[str, tuple[dict, str]] = {
    "a group of one person spelled in two cases": (
        to({"kind": "group", "users": ["Lee.Gu@contoso.com", "lee.gu@contoso.com"]}),
        "data.recipients[0].users",
    ),
    "a revision written as 3.0 (JSON Schema counts it as an integer)": (
        existing(data={"revision": 3.0}),
        "data.revision",
    ),
}

# Where the parser is more forgiving than the contract: senders should follow the schema.
COMMAND_PARSER_IS_LENIENT: dict[str, dict] = {
    "upper-case recipient kind": to({"kind": "Person", "user": "oncall@contoso.com"}),
    "a non-JSON datacontenttype (parse_command does not read it)": command(datacontenttype="text/plain"),
    "a time that is not a timestamp (parse_command does not read it)": command(time="yesterday"),
    "a long subject beside a data.alertId (the subject is not read)": command(
        subject="s" * 300, data={"alertId": "ALRT-1042"}
    ),
    "existing from the connector's source padded with spaces": existing(source=f" {CONNECTOR_SOURCE} "),
}


def schema_accepts(instance: Any) -> bool:
    return VALIDATOR.is_valid(instance)


def schema_errors(instance: Any) -> list[str]:
    return [f"{e.json_path}: {e.message}" for e in VALIDATOR.iter_errors(instance)]


def parse(instance: Any) -> list:
    """Parse as the queue trigger does: ``process_message`` gives a CloudEvent of a command type
    to ``parse_command`` and everything else to ``parse_events``."""
    obj = decode_json(json.dumps(instance))
    if isinstance(obj, dict) and obj.get("type") in COMMAND_TYPES and "specversion" in obj:
        return [parse_command(obj)]
    return parse_events(obj)


def _resolve(node: Any) -> Any:
    """Follow a local ``$ref`` (``#/$defs/…``)."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = SCHEMA
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


class TestTheSchemaItself:
    def test_the_schema_is_valid_draft_2020_12(self):
        Draft202012Validator.check_schema(SCHEMA)
        assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert SCHEMA["$id"]

    def test_every_property_and_definition_has_a_description(self):
        def walk(node: dict, path: str) -> None:
            for name, prop in node.get("properties", {}).items():
                assert _resolve(prop).get("description"), f"{path}{name} has no description"
                walk(_resolve(prop), f"{path}{name}.")

        walk(SCHEMA, "")
        for name, definition in SCHEMA["$defs"].items():
            assert definition.get("description"), f"$defs/{name} has no description"
            walk(definition, f"$defs/{name}.")

    def test_the_enums_are_the_parsers_enums(self):
        props = SCHEMA["properties"]
        data = ALERT_DATA["properties"]
        assert tuple(props["type"]["enum"]) == EVENT_TYPES + COMMAND_TYPES
        assert tuple(v for v in data["severity"]["enum"] if v) == SEVERITIES
        assert tuple(v for v in data["status"]["enum"] if v) == STATUSES
        assert tuple(v for v in data["kind"]["enum"] if v) == KINDS
        assert tuple(SCHEMA["$defs"]["recipient"]["properties"]["kind"]["enum"]) == RECIPIENT_KINDS

    def test_the_required_attributes_are_the_ones_the_parser_enforces(self):
        assert set(SCHEMA["required"]) == {"specversion", "id", "source", "type", "data"}
        assert ALERT_DATA["required"] == ["title"]
        assert SCHEMA["$defs"]["sendData"]["required"] == ["recipients"]
        assert SCHEMA["$defs"]["existingCommand"]["required"] == ["tenantid"]
        assert SCHEMA["$defs"]["existingCommand"]["properties"]["source"]["const"] == CONNECTOR_SOURCE

    def test_each_type_has_its_rules(self):
        chosen = {}
        for rule in SCHEMA["allOf"]:
            condition = rule["if"]["properties"]["type"]
            for type_ in condition.get("enum", [condition.get("const")]):
                chosen[type_] = rule["then"]["$ref"]
        assert chosen == dict.fromkeys(EVENT_TYPES, "#/$defs/alertEvent") | {
            SEND_TYPE: "#/$defs/sendCommand",
            EXISTING_TYPE: "#/$defs/existingCommand",
        }

    def test_the_command_bounds_are_the_parsers_bounds(self):
        data = SCHEMA["$defs"]["sendData"]["properties"]
        assert data["recipients"]["minItems"] == 1
        assert data["recipients"]["maxItems"] == data["fallbackRecipients"]["maxItems"] == MAX_RECIPIENTS
        assert "minItems" not in data["fallbackRecipients"]
        assert data["comment"]["maxLength"] == MAX_COMMENT_CHARS
        assert data["requestedBy"]["maxLength"] == 200
        assert data["alertId"]["maxLength"] == SCHEMA["properties"]["id"]["maxLength"] == MAX_ID_LENGTH
        assert (
            data["alertSource"]["maxLength"]
            == SCHEMA["$defs"]["sendCommand"]["properties"]["source"]["maxLength"]
            == 1024
        )

    def test_the_recipients_are_the_workflow_schemas_recipients(self):
        for name in RECIPIENT_DEFS:
            assert SCHEMA["$defs"][name] == WORKFLOW_SCHEMA["$defs"][name], (
                f"$defs/{name} differs from workflow.schema.json"
            )


class TestSchemaAndParserAgree:
    @pytest.mark.parametrize("instance", VALID_CASES.values(), ids=VALID_CASES.keys())
    def test_a_valid_event_passes_both(self, instance):
        assert schema_accepts(instance), list(VALIDATOR.iter_errors(instance))
        (parsed,) = parse(instance)
        assert parsed.event_id == instance["id"]

    @pytest.mark.parametrize(("instance", "field"), INVALID_CASES.values(), ids=INVALID_CASES.keys())
    def test_an_invalid_event_fails_both_and_the_parser_names_the_field(self, instance, field):
        assert not schema_accepts(instance)
        with pytest.raises(InvalidEvent) as caught:
            parse(instance)
        assert caught.value.field == field
        assert str(caught.value).startswith(f"{field}: ")

    def test_the_table_covers_enough_rules(self):
        assert len(VALID_CASES) + len(INVALID_CASES) >= 15

    @pytest.mark.parametrize("instance", PARSER_IS_LENIENT.values(), ids=PARSER_IS_LENIENT.keys())
    def test_the_parser_accepts_some_events_the_contract_forbids(self, instance):
        assert not schema_accepts(instance)
        assert parse(instance)


class TestMessagesThatAreNotEvents:
    def test_invalid_json_is_rejected_with_a_message_about_json(self):
        with pytest.raises(InvalidEvent) as caught:
            parse_message(b'{"specversion": "1.0", "id": ')
        assert "JSON" in str(caught.value)

    def test_a_json_array_is_neither_schema_valid_nor_parsed(self):
        assert not schema_accepts([BASE])
        with pytest.raises(InvalidEvent, match="in no format the connector reads"):
            parse([BASE])

    def test_a_non_object_is_rejected_by_parse_cloudevent(self):
        assert not schema_accepts("event")
        with pytest.raises(InvalidEvent, match="JSON object"):
            parse_cloudevent("event")


def _enum(name: str, *, data: bool = True) -> list:
    node = ALERT_DATA["properties"][name] if data else SCHEMA["properties"][name]
    return [v for v in node["enum"] if v is not None and v not in COMMAND_TYPES]


_text = st.text(min_size=1, max_size=40).filter(lambda s: s.strip())
_timestamps = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
)


@st.composite
def valid_events(draw) -> dict:
    data: dict[str, Any] = {
        "id": draw(_text),
        "title": draw(_text),
        "kind": draw(st.sampled_from(_enum("kind"))),
        "severity": draw(st.sampled_from(_enum("severity"))),
        "status": draw(st.sampled_from(_enum("status"))),
        "labels": draw(st.dictionaries(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), _text, max_size=5)),
        "responders": draw(st.lists(st.emails(), max_size=3)),
    }
    instance: dict[str, Any] = {
        "specversion": "1.0",
        "id": draw(_text),
        "source": draw(st.sampled_from(["https://alerts.example.com", "urn:contoso:alerting", "alertmanager"])),
        "type": draw(st.sampled_from(_enum("type", data=False))),
        "data": data,
    }
    if draw(st.booleans()):
        data["version"] = draw(st.integers(min_value=0, max_value=2**53))
    else:
        instance["time"] = draw(_timestamps)
    if draw(st.booleans()):
        instance["tenantid"] = str(draw(st.uuids()))
    return instance


class TestGeneratedEvents:
    @settings(max_examples=150, deadline=None)
    @given(valid_events())
    def test_events_built_from_the_schema_enums_parse_and_keep_their_fields(self, instance):
        assert schema_accepts(instance), list(VALIDATOR.iter_errors(instance))
        (parsed,) = parse(instance)
        data = instance["data"]
        assert (parsed.event_id, parsed.source, parsed.type) == (instance["id"], instance["source"], instance["type"])
        assert parsed.tenant_id == instance.get("tenantid")
        assert (parsed.data.id, parsed.data.title) == (data["id"], data["title"])
        assert (parsed.data.kind, parsed.data.severity, parsed.data.status) == (
            data["kind"],
            data["severity"],
            data["status"],
        )
        assert parsed.data.labels == data["labels"]
        assert parsed.data.responders == tuple(data["responders"])
        if "version" in data:
            assert parsed.data.version == data["version"]
        else:
            assert parsed.data.version > 0 and parsed.time is not None


class TestCommandsSchemaAndParserAgree:
    @pytest.mark.parametrize("instance", VALID_COMMANDS.values(), ids=VALID_COMMANDS.keys())
    def test_a_valid_command_passes_both(self, instance):
        assert schema_accepts(instance), schema_errors(instance)
        (parsed,) = parse(instance)
        assert isinstance(parsed, SendCommand if instance["type"] == SEND_TYPE else ExistingCommand)
        assert parsed.event_id == instance["id"]

    @pytest.mark.parametrize(("instance", "field"), INVALID_COMMANDS.values(), ids=INVALID_COMMANDS.keys())
    def test_an_invalid_command_fails_both_and_the_parser_names_the_field(self, instance, field):
        assert not schema_accepts(instance)
        with pytest.raises(InvalidEvent) as caught:
            parse(instance)
        assert caught.value.field == field, str(caught.value)
        assert str(caught.value).startswith(f"{field}: ")

    def test_the_tables_cover_enough_rules(self):
        assert len(VALID_COMMANDS) >= 10
        assert len(INVALID_COMMANDS) >= 30

    @pytest.mark.parametrize(
        ("instance", "field"), COMMAND_PARSER_ONLY_RULES.values(), ids=COMMAND_PARSER_ONLY_RULES.keys()
    )
    def test_a_rule_only_the_parser_checks_is_refused_by_the_parser(self, instance, field):
        assert schema_accepts(instance), schema_errors(instance)
        with pytest.raises(InvalidEvent) as caught:
            parse(instance)
        assert caught.value.field == field, str(caught.value)

    @pytest.mark.parametrize("instance", COMMAND_PARSER_IS_LENIENT.values(), ids=COMMAND_PARSER_IS_LENIENT.keys())
    def test_the_parser_accepts_some_commands_the_contract_forbids(self, instance):
        assert not schema_accepts(instance)
        assert parse(instance)

    def test_a_command_type_is_not_an_alert_event(self):
        """An alert's data does not make a command valid, nor a command's data an alert event."""
        assert not schema_accepts(event(type=SEND_TYPE))
        assert not schema_accepts(command(type="alert.created"))


class TestTheSendCommandsFields:
    def test_every_field_reaches_the_command(self):
        (parsed,) = parse(VALID_COMMANDS["every field"])
        assert (parsed.tenant_id, parsed.alert_id, parsed.alert_source) == (
            TENANT,
            "ALRT-1042",
            "https://alerts.example.com",
        )
        assert [r.kind for r in parsed.recipients] == ["channel", "person"]
        assert parsed.recipients[0].name == "Ops / Alerts"
        assert [r.kind for r in parsed.fallback] == ["chat"]
        assert parsed.comment.startswith("Customer-facing") and parsed.requested_by == "adele.vance@contoso.com"

    def test_the_alert_source_defaults_to_the_commands_source_and_data_alert_id_beats_subject(self):
        (parsed,) = parse(command(data={"alertId": "ALRT-7"}))
        assert (parsed.alert_id, parsed.alert_source) == ("ALRT-7", SEND_BASE["source"])
        assert parsed.fallback == () and parsed.comment == "" and parsed.requested_by == ""

    def test_the_same_id_from_the_same_source_is_the_same_send(self):
        (first,) = parse(command(data={"comment": "first"}))
        (again,) = parse(command(data={"comment": "again"}))
        (other,) = parse(command(id="send-other"))
        assert first.dedupe_key == again.dedupe_key != other.dedupe_key


def _doc_example() -> dict:
    """The body under "Commands: send an alert to Teams" in docs/EVENTS.md."""
    text = (SCHEMA_PATH.parents[1] / "docs" / "EVENTS.md").read_text(encoding="utf-8")
    section = text.split("## Commands: send an alert to Teams", 1)[1]
    return json.loads(section.split("```json", 1)[1].split("```", 1)[0])


class TestTheDocumentedCommand:
    def test_the_example_in_events_md_follows_the_schema_and_parses(self):
        instance = _doc_example()
        assert instance["type"] == SEND_TYPE
        assert schema_accepts(instance), schema_errors(instance)
        (parsed,) = parse(instance)
        assert parsed.recipients and parsed.fallback and parsed.comment


class TestCommandsOnTheQueue:
    """``process_message`` routes a command to ``parse_command`` and records what it rejects."""

    @pytest.fixture
    async def send(self):
        store = memory_store()
        await store.save_conversation(conversation())

        async def send(instance: dict):
            outcomes = await process_message(json.dumps(instance), "m-1", delivering(store, RecordingMessenger()))
            return outcomes, await store.list_rejected()

        return send

    @pytest.mark.parametrize(("instance", "field"), INVALID_COMMANDS.values(), ids=INVALID_COMMANDS.keys())
    async def test_an_invalid_command_is_recorded_as_rejected_naming_the_same_field(self, send, instance, field):
        [outcome], [rejected] = await send(instance)
        assert outcome.result == "rejected"
        assert rejected.field == field, rejected.reason

    async def test_a_valid_command_for_an_unknown_alert_is_rejected_naming_subject(self, send):
        instance = command(id="send-404", subject="ALRT-404", tenantid="aaaaaaaa-0000-4000-8000-00000000000a")
        assert schema_accepts(instance)
        [outcome], [rejected] = await send(instance)
        assert outcome.result == "rejected" and outcome.event_id == "send-404"
        assert rejected.field == "subject"
        assert rejected.reason == (
            "subject: no alert ALRT-404 from source https://alerts.example.com in tenant "
            "aaaaaaaa-0000-4000-8000-00000000000a"
        )


_recipients = st.one_of(
    st.builds(lambda t, c: {"kind": "channel", "teamId": t, "channelId": c}, _text, _text),
    st.builds(lambda c: {"kind": "chat", "chatId": c}, _text),
    st.builds(lambda u: {"kind": "person", "user": u}, st.emails()),
    st.builds(
        lambda a, b: {"kind": "group", "users": [a, b]},
        st.just("adele.vance@contoso.com"),
        st.just("lee.gu@contoso.com"),
    ),
    st.just({"kind": "responders"}),
)


@st.composite
def valid_send_commands(draw) -> dict:
    data: dict[str, Any] = {"recipients": draw(st.lists(_recipients, min_size=1, max_size=5))}
    if draw(st.booleans()):
        data["fallbackRecipients"] = draw(st.lists(_recipients, max_size=3))
    if draw(st.booleans()):
        data["comment"] = draw(st.text(max_size=MAX_COMMENT_CHARS))
    if draw(st.booleans()):
        data["requestedBy"] = draw(st.text(max_size=200))
    instance: dict[str, Any] = {
        "specversion": "1.0",
        "id": draw(_text),
        "source": "https://alerts.example.com",
        "type": SEND_TYPE,
        "data": data,
    }
    if draw(st.booleans()):
        instance["subject"] = draw(_text)
    else:
        data["alertId"] = draw(_text)
    return instance


class TestGeneratedCommands:
    @settings(max_examples=100, deadline=None)
    @given(valid_send_commands())
    def test_send_commands_built_from_the_schema_parse_and_keep_their_recipients(self, instance):
        assert schema_accepts(instance), schema_errors(instance)
        (parsed,) = parse(instance)
        data = instance["data"]
        assert parsed.alert_id == (data.get("alertId") or instance["subject"]).strip()
        assert [r.kind for r in parsed.recipients] == [r["kind"] for r in data["recipients"]]
        assert [r.kind for r in parsed.fallback] == [r["kind"] for r in data.get("fallbackRecipients", [])]
