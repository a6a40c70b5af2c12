"""The published JSON Schema and the parser describe the same CloudEvent contract.

Every example goes through both ``schemas/alert-event.schema.json`` (jsonschema, draft
2020-12) and ``parse_message``; they must agree on valid/invalid, and for invalid events the
parser's error must name the field the example breaks.
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

from shared.domain.events import EVENT_TYPES, KINDS, SEVERITIES, STATUSES, InvalidEvent, parse_cloudevent
from shared.domain.inbound import parse_message

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "alert-event.schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA)

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
    "optional fields set to null": event(tenantid=None, data={"description": None, "severity": None, "labels": None, "url": None}),
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
    "actions not a list of strings": (event(data={"actions": [{"name": "ack"}]}), "data.actions"),
}

# Where the parser is deliberately more forgiving than the contract: publishers should follow
# the schema, and the parser still accepts these rather than dead-letter a usable alert.
PARSER_IS_LENIENT = {
    "upper-case severity": event(data={"severity": "HIGH"}),
    "time without an offset (read as UTC)": event(time="2024-05-14T08:31:46"),
}


def schema_accepts(instance: Any) -> bool:
    return VALIDATOR.is_valid(instance)


def parse(instance: Any):
    return parse_message(json.dumps(instance))


class TestTheSchemaItself:
    def test_the_schema_is_valid_draft_2020_12(self):
        Draft202012Validator.check_schema(SCHEMA)
        assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert SCHEMA["$id"]

    def test_every_property_has_a_description(self):
        def walk(node: dict, path: str) -> None:
            for name, prop in node.get("properties", {}).items():
                assert prop.get("description"), f"{path}{name} has no description"
                walk(prop, f"{path}{name}.")

        walk(SCHEMA, "")

    def test_the_enums_are_the_parsers_enums(self):
        props = SCHEMA["properties"]
        data = props["data"]["properties"]
        assert tuple(props["type"]["enum"]) == EVENT_TYPES
        assert tuple(v for v in data["severity"]["enum"] if v) == SEVERITIES
        assert tuple(v for v in data["status"]["enum"] if v) == STATUSES
        assert tuple(v for v in data["kind"]["enum"] if v) == KINDS

    def test_the_required_attributes_are_the_ones_the_parser_enforces(self):
        assert set(SCHEMA["required"]) == {"specversion", "id", "source", "type", "data"}
        assert SCHEMA["properties"]["data"]["required"] == ["title"]


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
        with pytest.raises(InvalidEvent, match="neither a CloudEvent"):
            parse([BASE])

    def test_a_non_object_is_rejected_by_parse_cloudevent(self):
        assert not schema_accepts("event")
        with pytest.raises(InvalidEvent, match="JSON object"):
            parse_cloudevent("event")


def _enum(name: str, *, data: bool = True) -> list:
    node = SCHEMA["properties"]["data"]["properties"][name] if data else SCHEMA["properties"][name]
    return [v for v in node["enum"] if v is not None]


_text = st.text(min_size=1, max_size=40).filter(lambda s: s.strip())
_timestamps = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


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
        instance["tenantid"] = draw(st.uuids()).hex
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
        assert (parsed.data.kind, parsed.data.severity, parsed.data.status) == (data["kind"], data["severity"], data["status"])
        assert parsed.data.labels == data["labels"]
        assert parsed.data.responders == tuple(data["responders"])
        if "version" in data:
            assert parsed.data.version == data["version"]
        else:
            assert parsed.data.version > 0 and parsed.time is not None
