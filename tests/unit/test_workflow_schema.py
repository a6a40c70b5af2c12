"""The published workflow schema and the parser describe the same definition.

Every definition below goes through both ``schemas/workflow.schema.json`` (jsonschema, draft
2020-12) and ``parse_workflow``; they must agree on valid/invalid, and for invalid definitions
the parser's error must name the field the definition breaks. The few rules only one side
can check are listed on their own, so a new disagreement shows up as a failure.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from shared.domain.events import KINDS, SEVERITIES
from shared.domain.workflows import (
    DEFAULT_PERIODIC_MINUTES,
    DELIVERY_METHODS,
    LABEL_OPS,
    MAX_COMMENT_CHARS,
    MAX_GROUP_MEMBERS,
    MAX_ID_CHARS,
    MAX_MENTIONS,
    MAX_NAME_CHARS,
    MAX_PERIODIC_MINUTES,
    MAX_RECIPIENTS,
    MAX_REGEX_CHARS,
    MAX_SELECTORS,
    MIN_PERIODIC_MINUTES,
    RECIPIENT_KINDS,
    TRIGGERS,
    WORKFLOW_FIELDS,
    WORKFLOW_ID,
    InvalidWorkflow,
    Workflow,
    parse_recipient,
    parse_workflow,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "schemas" / "workflow.schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA)
EXAMPLES = ROOT / "examples" / "workflows"
EXAMPLE_NAMES = ["prod-critical.json", "security-issues.json", "daily-digest.json"]

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ROUTE_ID = "named-by-the-route"
TEAM_ID = "5f3c7a1e-2b9d-4c8e-9a61-0d4e7b2f8c13"
CHANNEL_ID = "19:8f2b4c6d1e3a4f5b9c7d2e1f0a3b4c5d@thread.tacv2"
CHAT_ID = "19:2d8e6f4a0b1c4d3e9f7a5b3c1d0e2f4a@thread.v2"

CHANNEL = {"kind": "channel", "teamId": TEAM_ID, "channelId": CHANNEL_ID}
CHAT = {"kind": "chat", "chatId": CHAT_ID}
PERSON = {"kind": "person", "user": "oncall@contoso.com"}
GROUP = {"kind": "group", "users": ["adele.vance@contoso.com", "lee.gu@contoso.com"]}
RESPONDERS = {"kind": "responders"}

BASE: dict[str, Any] = {
    "id": "ops-high",
    "name": "Ops: high and critical",
    "trigger": "new_or_updated",
    "recipients": [CHANNEL],
    "fallbackRecipients": [PERSON],
}

_DROP = object()


def workflow(**fields: Any) -> dict:
    """BASE with top-level fields replaced; ``_DROP`` removes one."""
    result = copy.deepcopy(BASE)
    for key, value in fields.items():
        if value is _DROP:
            result.pop(key, None)
        else:
            result[key] = copy.deepcopy(value)
    return result


def selector(**fields: Any) -> dict:
    """A workflow whose match is this one label selector."""
    return workflow(match={"labels": [fields]})


def recipient(**fields: Any) -> dict:
    """A workflow whose only recipient is this one."""
    return workflow(recipients=[fields])


def people(count: int) -> list[str]:
    return [f"user{i}@contoso.com" for i in range(count)]


def schema_accepts(instance: Any) -> bool:
    return VALIDATOR.is_valid(instance)


def schema_errors(instance: Any) -> list[str]:
    return [f"{e.json_path}: {e.message}" for e in VALIDATOR.iter_errors(instance)]


def parse(instance: Any) -> Workflow:
    """Parse as the admin route would: the route names the workflow when the body does not."""
    route_id = ROUTE_ID if isinstance(instance, dict) and "id" not in instance else None
    return parse_workflow(instance, TENANT, route_id)


def load_example(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


VALID_CASES: dict[str, dict] = {
    "minimal definition": workflow(),
    "no id in the body when the route names the workflow": workflow(id=_DROP),
    "id of 64 characters with dots, dashes and underscores": workflow(id="a" + "b.c-d_e" * 9),
    "trigger updated": workflow(trigger="updated"),
    "trigger new_updated_existing": workflow(trigger="new_updated_existing"),
    "periodic without an interval (daily by default)": workflow(trigger="periodic"),
    "periodic at the shortest interval": workflow(trigger="periodic", intervalMinutes=MIN_PERIODIC_MINUTES),
    "periodic at the longest interval": workflow(trigger="periodic", intervalMinutes=MAX_PERIODIC_MINUTES),
    "disabled": workflow(enabled=False),
    "delegated delivery": workflow(delivery="delegated"),
    "empty match takes every alert": workflow(match={}),
    "every match condition at once": workflow(
        match={
            "kinds": list(KINDS),
            "minSeverity": "medium",
            "severities": ["critical", "high"],
            "sources": ["alertmanager", "https://alerts.example.com"],
            "labels": [{"key": "env", "op": "equals", "value": "prod"}],
            "titleContains": "disk",
        }
    ),
    "label selector without an op (equals)": selector(key="env", value="prod"),
    "label equals the empty string": selector(key="env", op="equals", value=""),
    "label one_of": selector(key="region", op="one_of", values=["westeurope", "northeurope"]),
    "label regex of the longest length": selector(key="host", op="regex", value="a" * MAX_REGEX_CHARS),
    "label exists": selector(key="team", op="exists"),
    "as many label selectors as allowed": workflow(
        match={"labels": [{"key": f"k{i}", "op": "exists"} for i in range(MAX_SELECTORS)]}
    ),
    "every recipient kind, each with a name": workflow(
        recipients=[
            CHANNEL | {"name": "Ops / Alerts"},
            CHAT | {"name": "Service owners"},
            PERSON | {"name": "On-call"},
            GROUP | {"name": "Triage"},
            RESPONDERS | {"name": "The alert's responders"},
        ]
    ),
    "responders as the fallback": workflow(fallbackRecipients=[RESPONDERS]),
    "a group naming one of three people twice (two different people)": recipient(
        kind="group", users=["adele.vance@contoso.com", "lee.gu@contoso.com", "adele.vance@contoso.com"]
    ),
    "a group of the most people a group chat holds": recipient(kind="group", users=people(MAX_GROUP_MEMBERS)),
    "as many recipients as allowed": workflow(
        recipients=[{"kind": "person", "user": u} for u in people(MAX_RECIPIENTS)]
    ),
    "comment of the longest length": workflow(comment="c" * MAX_COMMENT_CHARS),
    "name of the longest length": workflow(name="n" * MAX_NAME_CHARS),
}

# (definition, the field path InvalidWorkflow must name). Each breaks exactly one rule.
INVALID_CASES: dict[str, tuple[Any, str]] = {
    "not an object": ([BASE], ""),
    "unknown top-level field": (workflow(colour="red"), "colour"),
    "id with a space and punctuation": (workflow(id="prod critical!"), "id"),
    "id starting with a dash": (workflow(id="-prod"), "id"),
    "id longer than 64 characters": (workflow(id="a" * (MAX_ID_CHARS + 1)), "id"),
    "no name": (workflow(name=_DROP), "name"),
    "blank name": (workflow(name="   "), "name"),
    "name too long": (workflow(name="n" * (MAX_NAME_CHARS + 1)), "name"),
    "enabled as a string": (workflow(enabled="yes"), "enabled"),
    "no trigger": (workflow(trigger=_DROP), "trigger"),
    "unknown trigger": (workflow(trigger="on_resolve"), "trigger"),
    "intervalMinutes with a non-periodic trigger": (workflow(intervalMinutes=60), "intervalMinutes"),
    "interval below the minimum": (
        workflow(trigger="periodic", intervalMinutes=MIN_PERIODIC_MINUTES - 1),
        "intervalMinutes",
    ),
    "interval above the maximum": (
        workflow(trigger="periodic", intervalMinutes=MAX_PERIODIC_MINUTES + 1),
        "intervalMinutes",
    ),
    "interval as a string": (workflow(trigger="periodic", intervalMinutes="60"), "intervalMinutes"),
    "interval as a boolean": (workflow(trigger="periodic", intervalMinutes=True), "intervalMinutes"),
    "match not an object": (workflow(match=["severity>=high"]), "match"),
    "unknown match field": (workflow(match={"severity": "high"}), "match.severity"),
    "unknown kind": (workflow(match={"kinds": ["incident"]}), "match.kinds[0]"),
    "unknown minSeverity": (workflow(match={"minSeverity": "urgent"}), "match.minSeverity"),
    "severities with a bad value": (workflow(match={"severities": ["high", "urgent"]}), "match.severities[1]"),
    "sources with an empty string": (workflow(match={"sources": [""]}), "match.sources"),
    "titleContains too long": (workflow(match={"titleContains": "t" * 201}), "match.titleContains"),
    "labels not a list": (workflow(match={"labels": {"env": "prod"}}), "match.labels"),
    "too many label selectors": (
        workflow(match={"labels": [{"key": f"k{i}", "op": "exists"} for i in range(MAX_SELECTORS + 1)]}),
        "match.labels",
    ),
    "label selector without a key": (selector(op="exists"), "match.labels[0].key"),
    "unknown label op": (selector(key="env", op="contains", value="prod"), "match.labels[0].op"),
    "unknown label selector field": (selector(key="env", operator="equals", value="prod"), "match.labels[0].operator"),
    "equals without value": (selector(key="env", op="equals"), "match.labels[0].value"),
    "op omitted and no value": (selector(key="env"), "match.labels[0].value"),
    "regex without value": (selector(key="host", op="regex"), "match.labels[0].value"),
    "regex too long": (selector(key="host", op="regex", value="a" * (MAX_REGEX_CHARS + 1)), "match.labels[0].value"),
    "one_of without values": (selector(key="env", op="one_of", value="prod"), "match.labels[0].values"),
    "one_of with an empty list": (selector(key="env", op="one_of", values=[]), "match.labels[0].values"),
    "no recipients": (workflow(recipients=_DROP), "recipients"),
    "empty recipients": (workflow(recipients=[]), "recipients"),
    "recipients not a list": (workflow(recipients=CHANNEL), "recipients"),
    "too many recipients": (
        workflow(recipients=[{"kind": "person", "user": u} for u in people(MAX_RECIPIENTS + 1)]),
        "recipients",
    ),
    "no fallbackRecipients": (workflow(fallbackRecipients=_DROP), "fallbackRecipients"),
    "empty fallbackRecipients": (workflow(fallbackRecipients=[]), "fallbackRecipients"),
    "recipient not an object": (workflow(recipients=["oncall@contoso.com"]), "recipients[0]"),
    "recipient without a kind": (recipient(user="oncall@contoso.com"), "recipients[0].kind"),
    "unknown recipient kind": (recipient(kind="email", user="oncall@contoso.com"), "recipients[0].kind"),
    "channel without channelId": (recipient(kind="channel", teamId=TEAM_ID), "recipients[0].channelId"),
    "channel without teamId": (recipient(kind="channel", channelId=CHANNEL_ID), "recipients[0].teamId"),
    "channel with a blank channelId": (
        recipient(kind="channel", teamId=TEAM_ID, channelId=" "),
        "recipients[0].channelId",
    ),
    "channel with a chatId": (recipient(**CHANNEL, chatId=CHAT_ID), "recipients[0].chatId"),
    "chat without chatId": (recipient(kind="chat"), "recipients[0].chatId"),
    "person without user": (workflow(fallbackRecipients=[{"kind": "person"}]), "fallbackRecipients[0].user"),
    "person user too long": (recipient(kind="person", user="u" * 321), "recipients[0].user"),
    "group with one user": (recipient(kind="group", users=["lee.gu@contoso.com"]), "recipients[0].users"),
    "group without users": (recipient(kind="group"), "recipients[0].users"),
    "group larger than a group chat": (
        recipient(kind="group", users=people(MAX_GROUP_MEMBERS + 1)),
        "recipients[0].users",
    ),
    "group with a user that is not a string": (
        recipient(kind="group", users=["lee.gu@contoso.com", 42]),
        "recipients[0].users",
    ),
    "responders with a user": (recipient(kind="responders", user="oncall@contoso.com"), "recipients[0].user"),
    "recipient name too long": (recipient(**PERSON, name="n" * (MAX_NAME_CHARS + 1)), "recipients[0].name"),
    "comment too long": (workflow(comment="c" * (MAX_COMMENT_CHARS + 1)), "comment"),
    "unknown delivery": (workflow(delivery="email"), "delivery"),
}

# Rules only the parser can check: JSON Schema accepts these, the connector refuses them.
PARSER_ONLY_RULES: dict[str, tuple[dict, str]] = {
    "a regex that does not compile": (selector(key="host", op="regex", value="web-(0[1-9]"), "match.labels[0].value"),
    "a group of the same person twice (JSON Schema cannot count different people)": (
        recipient(kind="group", users=["lee.gu@contoso.com"] * 2),
        "recipients[0].users",
    ),
    "a group of one person spelled in two cases": (
        recipient(kind="group", users=["Lee.Gu@contoso.com", "lee.gu@contoso.com"]),
        "recipients[0].users",
    ),
    "an interval written as 60.0 (JSON Schema counts it as an integer)": (
        workflow(trigger="periodic", intervalMinutes=60.0),
        "intervalMinutes",
    ),
}

# Where the parser is deliberately more forgiving than the contract: clients should follow the
# schema, and the parser still reads these as the obvious definition.
PARSER_IS_LENIENT: dict[str, dict] = {
    "upper-case trigger, kinds and recipient kind": workflow(
        trigger="NEW_OR_UPDATED",
        match={"kinds": ["Issue"]},
        recipients=[{"kind": "Person", "user": "oncall@contoso.com"}],
    ),
    "optional fields set to null": workflow(match=None, comment=None, delivery=None, intervalMinutes=None),
    "an id padded with spaces": workflow(id="  ops-high  "),
    "blank optional choices (read as absent)": workflow(delivery=" ", match={"minSeverity": ""}),
    "a value of another type on an exists selector (ignored)": selector(key="team", op="exists", value=42),
}


def _resolve(node: dict) -> dict:
    """Follow a local ``$ref`` (``#/$defs/…``)."""
    while "$ref" in node:
        target: Any = SCHEMA
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


class TestTheSchemaItself:
    def test_the_schema_is_valid_draft_2020_12_with_an_id(self):
        Draft202012Validator.check_schema(SCHEMA)
        assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert SCHEMA["$id"] == "urn:teams-alert-connector:schemas:workflow:1"
        assert SCHEMA["title"] and SCHEMA["description"]

    def test_every_property_and_definition_has_a_description(self):
        def walk(node: dict, path: str) -> None:
            for name, prop in node.get("properties", {}).items():
                if prop is False:  # a property forbidden by a condition
                    continue
                assert _resolve(prop).get("description"), f"{path}{name} has no description"
                walk(_resolve(prop), f"{path}{name}.")

        walk(SCHEMA, "")
        for name, definition in SCHEMA["$defs"].items():
            assert definition.get("description"), f"$defs/{name} has no description"
            walk(definition, f"$defs/{name}.")

    def test_the_top_level_fields_are_the_parsers_and_unknown_ones_are_refused(self):
        assert tuple(SCHEMA["properties"]) == WORKFLOW_FIELDS
        assert SCHEMA["additionalProperties"] is False
        assert set(SCHEMA["required"]) == {"name", "trigger", "recipients", "fallbackRecipients"}

    def test_the_enums_are_the_parsers_enums(self):
        props = SCHEMA["properties"]
        match = props["match"]["properties"]
        assert tuple(props["trigger"]["enum"]) == TRIGGERS
        assert tuple(props["delivery"]["enum"]) == DELIVERY_METHODS
        assert tuple(match["kinds"]["items"]["enum"]) == KINDS
        assert tuple(match["minSeverity"]["enum"]) == SEVERITIES
        assert tuple(match["severities"]["items"]["enum"]) == SEVERITIES
        assert tuple(SCHEMA["$defs"]["labelSelector"]["properties"]["op"]["enum"]) == LABEL_OPS
        assert tuple(SCHEMA["$defs"]["recipient"]["properties"]["kind"]["enum"]) == RECIPIENT_KINDS

    def test_the_bounds_are_the_parsers_bounds(self):
        props = SCHEMA["properties"]
        defs = SCHEMA["$defs"]
        assert props["id"]["pattern"] == WORKFLOW_ID.pattern
        assert props["id"]["maxLength"] == MAX_ID_CHARS
        assert props["name"]["maxLength"] == defs["recipientName"]["maxLength"] == MAX_NAME_CHARS
        assert props["comment"]["maxLength"] == MAX_COMMENT_CHARS
        interval = props["intervalMinutes"]
        assert (interval["minimum"], interval["maximum"], interval["default"]) == (
            MIN_PERIODIC_MINUTES,
            MAX_PERIODIC_MINUTES,
            DEFAULT_PERIODIC_MINUTES,
        )
        assert props["recipients"]["maxItems"] == props["fallbackRecipients"]["maxItems"] == MAX_RECIPIENTS
        assert props["recipients"]["minItems"] == props["fallbackRecipients"]["minItems"] == 1
        assert props["match"]["properties"]["labels"]["maxItems"] == MAX_SELECTORS
        assert defs["groupRecipient"]["properties"]["users"]["maxItems"] == MAX_GROUP_MEMBERS
        regex_rule = next(rule for rule in defs["labelSelector"]["allOf"] if rule["then"].get("properties"))
        assert regex_rule["then"]["properties"]["value"]["maxLength"] == MAX_REGEX_CHARS

    def test_each_recipient_kind_has_one_closed_definition(self):
        branches = [_resolve(b) for b in SCHEMA["$defs"]["recipient"]["oneOf"]]
        assert [b["properties"]["kind"]["const"] for b in branches] == list(RECIPIENT_KINDS)
        assert all(b["additionalProperties"] is False for b in branches)
        fields = {
            b["properties"]["kind"]["const"]: set(b["properties"]) - {"kind", "name", "mention"} for b in branches
        }
        assert all(b["properties"]["mention"] == {"$ref": "#/$defs/mention"} for b in branches)
        assert SCHEMA["$defs"]["mention"]["maxItems"] == MAX_MENTIONS
        assert fields == {
            "channel": {"teamId", "channelId"},
            "chat": {"chatId"},
            "person": {"user"},
            "group": {"users"},
            "responders": set(),
        }

    def test_mentions_parse_as_the_schema_says_once_each_responders_by_its_word(self):
        recipient = parse_recipient(
            {"kind": "channel", "teamId": "t", "channelId": "c", "mention": ["Responders", "a@x.com", "A@X.com"]}, "r"
        )
        assert recipient.mention == ("responders", "a@x.com") and recipient.key == "channel:c"
        assert recipient.to_json()["mention"] == ["responders", "a@x.com"]
        with pytest.raises(InvalidWorkflow) as too_many:
            parse_recipient({"kind": "chat", "chatId": "c", "mention": [f"p{i}@x.com" for i in range(21)]}, "r")
        assert too_many.value.field == "r.mention"

    def test_every_object_in_the_definition_refuses_unknown_fields(self):
        assert SCHEMA["properties"]["match"]["additionalProperties"] is False
        assert SCHEMA["$defs"]["labelSelector"]["additionalProperties"] is False


class TestTheExamples:
    def test_no_example_is_left_untested(self):
        assert sorted(p.name for p in EXAMPLES.glob("*.json")) == sorted(EXAMPLE_NAMES)

    @pytest.mark.parametrize("name", EXAMPLE_NAMES)
    def test_the_example_follows_the_schema_and_parses(self, name):
        instance = load_example(name)
        assert schema_accepts(instance), schema_errors(instance)
        parsed = parse(instance)
        assert (parsed.id, parsed.tenant_id) == (name.removesuffix(".json"), TENANT)

    @pytest.mark.parametrize("name", EXAMPLE_NAMES)
    def test_the_example_is_already_in_the_form_the_connector_stores(self, name):
        instance = load_example(name)
        assert parse(instance).to_json() == instance

    def test_prod_critical_sends_high_prod_alerts_to_a_channel_and_falls_back_to_a_person(self):
        parsed = parse(load_example("prod-critical.json"))
        assert (parsed.trigger, parsed.match.min_severity) == ("new_or_updated", "high")
        assert [s.describe() for s in parsed.match.labels] == ["label environment=production"]
        assert [r.kind for r in parsed.recipients] == ["channel"]
        assert [r.kind for r in parsed.fallback_recipients] == ["person"]
        assert parsed.comment

    def test_security_issues_reach_a_group_and_the_responders_including_issues_already_open(self):
        parsed = parse(load_example("security-issues.json"))
        assert (parsed.trigger, parsed.match.kinds) == ("new_updated_existing", ("issue",))
        assert [r.kind for r in parsed.recipients] == ["group", "responders"]
        assert len(parsed.recipients[0].users) == 3
        assert [r.kind for r in parsed.fallback_recipients] == ["channel"]

    def test_daily_digest_posts_to_a_person_once_a_day(self):
        parsed = parse(load_example("daily-digest.json"))
        assert (parsed.trigger, parsed.interval_minutes) == ("periodic", 24 * 60)
        assert [r.kind for r in parsed.recipients] == ["person"]
        assert [r.kind for r in parsed.fallback_recipients] == ["channel"]


class TestSchemaAndParserAgree:
    @pytest.mark.parametrize("instance", VALID_CASES.values(), ids=VALID_CASES.keys())
    def test_a_valid_definition_passes_both(self, instance):
        assert schema_accepts(instance), schema_errors(instance)
        parsed = parse(instance)
        assert parsed.id == instance.get("id", ROUTE_ID)

    @pytest.mark.parametrize(("instance", "field"), INVALID_CASES.values(), ids=INVALID_CASES.keys())
    def test_an_invalid_definition_fails_both_and_the_parser_names_the_field(self, instance, field):
        assert not schema_accepts(instance)
        with pytest.raises(InvalidWorkflow) as caught:
            parse(instance)
        assert caught.value.field == field, str(caught.value)
        assert str(caught.value).startswith(f"{field}: " if field else caught.value.problem)

    def test_the_tables_cover_enough_rules(self):
        assert len(VALID_CASES) >= 20
        assert len(INVALID_CASES) >= 25

    @pytest.mark.parametrize(("instance", "field"), PARSER_ONLY_RULES.values(), ids=PARSER_ONLY_RULES.keys())
    def test_a_rule_only_the_parser_checks_is_refused_by_the_parser(self, instance, field):
        assert schema_accepts(instance), schema_errors(instance)
        with pytest.raises(InvalidWorkflow) as caught:
            parse(instance)
        assert caught.value.field == field, str(caught.value)

    @pytest.mark.parametrize("instance", PARSER_IS_LENIENT.values(), ids=PARSER_IS_LENIENT.keys())
    def test_the_parser_reads_some_definitions_the_contract_forbids_into_ones_it_allows(self, instance):
        assert not schema_accepts(instance)
        canonical = parse(instance).to_json()
        assert schema_accepts(canonical), schema_errors(canonical)


class TestTheIdComesFromTheBodyOrTheRoute:
    def test_a_body_without_id_follows_the_schema_but_the_parser_needs_the_route_to_name_it(self):
        instance = workflow(id=_DROP)
        assert schema_accepts(instance)
        with pytest.raises(InvalidWorkflow) as caught:
            parse_workflow(instance, TENANT)
        assert caught.value.field == "id"
        assert parse_workflow(instance, TENANT, "from-route").id == "from-route"

    def test_a_body_id_that_differs_from_the_route_is_refused(self):
        with pytest.raises(InvalidWorkflow) as caught:
            parse_workflow(workflow(id="ops-high"), TENANT, "ops-low")
        assert caught.value.field == "id"

    def test_a_body_id_equal_to_the_route_is_accepted(self):
        assert parse_workflow(workflow(id="ops-high"), TENANT, "ops-high").id == "ops-high"


ROUND_TRIP_CASES = {f"example {name}": load_example(name) for name in EXAMPLE_NAMES} | VALID_CASES


class TestRoundTrip:
    @pytest.mark.parametrize("instance", ROUND_TRIP_CASES.values(), ids=ROUND_TRIP_CASES.keys())
    def test_parsing_the_serialized_workflow_gives_the_same_workflow(self, instance):
        parsed = parse(instance)
        again = parse_workflow(parsed.to_json(), TENANT)
        assert again.to_json() == parsed.to_json()
        assert again == parsed

    @pytest.mark.parametrize("instance", ROUND_TRIP_CASES.values(), ids=ROUND_TRIP_CASES.keys())
    def test_the_serialized_workflow_follows_the_schema(self, instance):
        serialized = parse(instance).to_json()
        assert schema_accepts(serialized), schema_errors(serialized)
