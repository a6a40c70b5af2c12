"""The canonical event model: parsing CloudEvents and recognising the message format."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.events import (
    EVENT_TYPES,
    MAX_DESCRIPTION_LENGTH,
    MAX_TITLE_LENGTH,
    STATUS_BY_TYPE,
    AlertData,
    AlertEvent,
    InvalidEvent,
    alert_key,
    decode_json,
    epoch_micros,
    parse_cloudevent,
    parse_time,
)
from shared.domain.inbound import is_alertmanager_payload, parse_message


def cloudevent(**data_fields) -> dict:
    top = {k: data_fields.pop(k) for k in list(data_fields) if k.startswith("ce_")}
    event = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "https://alerts.example.com",
        "type": "alert.created",
        "subject": "ALRT-1042",
        "time": "2024-05-14T08:31:46Z",
        "data": {"title": "High CPU on web-frontend-03", **data_fields},
    }
    for key, value in top.items():
        name = key.removeprefix("ce_")
        if value is None:
            event.pop(name, None)
        else:
            event[name] = value
    return event


def rejected(obj) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        parse_cloudevent(obj)
    return caught.value


class TestValidationNamesTheField:
    def test_a_missing_type_is_named(self):
        error = rejected(cloudevent(ce_type=None))
        assert error.field == "type" and str(error) == "type: is required"

    def test_an_unknown_type_lists_the_accepted_types(self):
        error = rejected(cloudevent(ce_type="alert.closed"))
        assert error.field == "type" and "alert.resolved" in error.problem and "'alert.closed'" in error.problem

    def test_a_wrong_specversion_says_which_is_expected(self):
        assert "'1.0'" in rejected(cloudevent(ce_specversion="1.1")).problem

    def test_a_field_of_the_wrong_type_names_the_type_it_got(self):
        error = rejected(cloudevent(title=["High", "CPU"]))
        assert error.field == "data.title" and "not list" in error.problem

    def test_a_label_of_the_wrong_type_names_the_label(self):
        assert rejected(cloudevent(labels={"host": None})).field == "data.labels.host"

    def test_the_error_carries_the_event_id_for_logging(self):
        assert rejected(cloudevent(severity="sev1")).event_id == "evt-1"

    def test_an_event_without_a_string_id_has_no_event_id_on_its_error(self):
        assert rejected(cloudevent(ce_id=12)).event_id is None

    def test_an_invalid_event_is_a_value_error(self):
        assert isinstance(rejected(cloudevent(ce_source=None)), ValueError)


class TestAlertIdAndDefaults:
    def test_the_subject_is_the_alert_id_when_data_has_none(self):
        assert parse_cloudevent(cloudevent()).data.id == "ALRT-1042"

    def test_data_id_wins_over_the_subject(self):
        assert parse_cloudevent(cloudevent(id="ALRT-7")).data.id == "ALRT-7"

    def test_kind_severity_and_status_default_when_absent(self):
        data = parse_cloudevent(cloudevent()).data
        assert (data.kind, data.severity, data.status) == ("alert", "medium", None)

    def test_enum_values_are_read_case_insensitively_and_stored_lower_case(self):
        data = parse_cloudevent(cloudevent(severity="CRITICAL", status="Acknowledged", kind="Issue")).data
        assert (data.severity, data.status, data.kind) == ("critical", "acknowledged", "issue")

    def test_title_and_description_are_truncated_to_their_limits(self):
        data = parse_cloudevent(cloudevent(title="t" * 5000, description="d" * 20_000)).data
        assert len(data.title) == MAX_TITLE_LENGTH and len(data.description) == MAX_DESCRIPTION_LENGTH

    def test_the_tenantid_extension_becomes_the_tenant(self):
        event = parse_cloudevent(cloudevent(ce_tenantid="72f988bf-86f1-41af-91ab-2d7cd011db47"))
        assert event.tenant_id == "72f988bf-86f1-41af-91ab-2d7cd011db47"


class TestVersionDefaulting:
    def test_an_explicit_version_is_kept(self):
        assert parse_cloudevent(cloudevent(version=3)).data.version == 3

    def test_without_version_data_updated_is_the_version_in_microseconds(self):
        data = parse_cloudevent(cloudevent(updated="2024-05-14T08:40:00.000001Z")).data
        assert data.version == 1_715_676_000_000_001

    def test_data_updated_wins_over_the_event_time(self):
        later = parse_cloudevent(cloudevent(updated="2024-05-14T09:00:00Z")).data.version
        assert later == epoch_micros(datetime(2024, 5, 14, 9, tzinfo=UTC))

    def test_without_version_or_updated_the_event_time_is_the_version(self):
        assert parse_cloudevent(cloudevent()).data.version == 1_715_675_506_000_000

    def test_without_any_of_them_the_version_is_required(self):
        error = rejected(cloudevent(ce_time=None))
        assert error.field == "data.version" and "data.updated" in error.problem

    def test_a_later_update_gets_a_higher_version(self):
        first = parse_cloudevent(cloudevent(updated="2024-05-14T08:40:00.1Z")).data.version
        second = parse_cloudevent(cloudevent(updated="2024-05-14T08:40:00.2Z")).data.version
        assert second > first

    @pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
    def test_a_version_that_is_not_a_whole_number_of_zero_or_more_is_rejected(self, bad):
        assert rejected(cloudevent(version=bad)).field == "data.version"


class TestTimestamps:
    def test_go_timestamps_with_nine_fractional_digits_are_read_to_the_microsecond(self):
        moment = parse_time("2024-05-14T08:31:46.358452189Z", "time")
        assert moment == datetime(2024, 5, 14, 8, 31, 46, 358452, tzinfo=UTC)

    def test_nine_fractional_digits_keep_a_non_utc_offset(self):
        moment = parse_time("2024-05-14T10:31:46.358452189+02:00", "time")
        assert moment == datetime(2024, 5, 14, 8, 31, 46, 358452, tzinfo=UTC)
        assert moment.utcoffset() == timedelta(hours=2)

    def test_a_short_fraction_with_an_offset_is_not_padded_with_offset_digits(self):
        assert parse_time("2024-05-14T10:00:00.5-05:30", "t").microsecond == 500_000

    def test_a_timestamp_without_offset_is_read_as_utc(self):
        assert parse_time("2024-05-14T08:31:46", "t").tzinfo == UTC

    def test_a_lower_case_z_is_utc(self):
        assert parse_time("2024-05-14T08:31:46z", "t") == datetime(2024, 5, 14, 8, 31, 46, tzinfo=UTC)

    def test_a_missing_timestamp_is_none(self):
        assert parse_time(None, "t") is None

    @pytest.mark.parametrize("bad", ["yesterday", "2024-13-01T00:00:00Z", 1715675506])
    def test_a_non_timestamp_is_rejected_naming_the_field(self, bad):
        with pytest.raises(InvalidEvent) as caught:
            parse_time(bad, "data.created")
        assert caught.value.field == "data.created"

    def test_epoch_micros_counts_microseconds_since_1970(self):
        assert epoch_micros(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC)) == 1_000_005


class TestLabelsRespondersAndLinks:
    def test_numbers_and_booleans_in_labels_are_coerced_to_strings(self):
        labels = parse_cloudevent(cloudevent(labels={"replicas": 3, "load": 8.5, "canary": True})).data.labels
        assert labels == {"replicas": "3", "load": "8.5", "canary": "True"}

    def test_more_than_64_labels_are_rejected(self):
        assert rejected(cloudevent(labels={f"k{i}": "v" for i in range(65)})).field == "data.labels"

    def test_responders_are_trimmed_and_blank_ones_dropped(self):
        responders = parse_cloudevent(
            cloudevent(responders=[" oncall@contoso.com ", "", "adele@contoso.com"])
        ).data.responders
        assert responders == ("oncall@contoso.com", "adele@contoso.com")

    def test_a_responder_that_is_not_a_string_is_rejected(self):
        assert rejected(cloudevent(responders=["oncall@contoso.com", 7])).field == "data.responders"

    def test_a_url_must_be_http_or_https(self):
        assert rejected(cloudevent(url="javascript:alert(1)")).field == "data.url"

    def test_an_https_url_is_kept(self):
        url = "https://alerts.example.com/alerts/ALRT-1042"
        assert parse_cloudevent(cloudevent(url=url)).data.url == url


class TestIdentityKeys:
    def test_the_dedupe_key_is_stable_for_the_same_source_and_id(self):
        first = parse_cloudevent(cloudevent(description="first delivery"))
        again = parse_cloudevent(cloudevent(description="redelivered, body changed"))
        assert first.dedupe_key == again.dedupe_key

    def test_the_same_id_from_another_source_is_another_event(self):
        ours = parse_cloudevent(cloudevent())
        theirs = parse_cloudevent(cloudevent(ce_source="https://other.example.com"))
        assert ours.dedupe_key != theirs.dedupe_key

    def test_the_dedupe_key_is_a_bounded_hex_string(self):
        key = parse_cloudevent(cloudevent(ce_id="x" * 256)).dedupe_key
        assert len(key) == 64 and int(key, 16) >= 0

    def test_the_alert_key_separates_sources_and_is_table_key_safe(self):
        assert alert_key("a", "1") != alert_key("b", "1")
        assert len(alert_key("a", "1")) == 40


class TestStatusByType:
    @pytest.mark.parametrize(("event_type", "status"), [(t, s) for t, s in STATUS_BY_TYPE.items() if s])
    def test_a_type_that_implies_a_status_overrides_the_data_status(self, event_type, status):
        event = parse_cloudevent(
            cloudevent(ce_type=event_type, status="acknowledged" if status != "acknowledged" else "open")
        )
        assert event.new_status == status

    @pytest.mark.parametrize("event_type", ["alert.updated", "issue.updated"])
    def test_an_update_keeps_the_status_the_data_gives(self, event_type):
        assert parse_cloudevent(cloudevent(ce_type=event_type, status="acknowledged")).new_status == "acknowledged"

    def test_an_update_without_a_status_implies_none(self):
        assert parse_cloudevent(cloudevent(ce_type="alert.updated")).new_status is None

    def test_every_event_type_has_a_status_rule(self):
        assert set(STATUS_BY_TYPE) == set(EVENT_TYPES)

    def test_an_event_built_directly_defaults_to_no_tenant_and_no_time(self):
        event = AlertEvent(event_id="e", type="alert.created", source="s", data=AlertData(id="1", title="t"))
        assert (event.tenant_id, event.time, event.new_status) == (None, None, "open")


class TestDecodingTheMessageBody:
    def test_bytes_and_text_decode_alike(self):
        body = json.dumps(cloudevent())
        assert decode_json(body) == decode_json(body.encode())

    def test_a_body_that_is_not_utf8_is_rejected(self):
        with pytest.raises(InvalidEvent, match="UTF-8"):
            decode_json(b"\xff\xfe{}")

    def test_an_empty_body_is_rejected(self):
        with pytest.raises(InvalidEvent, match="empty"):
            decode_json(b"  \n")

    def test_invalid_json_says_where(self):
        with pytest.raises(InvalidEvent, match=r"not valid JSON .* line 1 column"):
            decode_json('{"id": }')


class TestRecognisingTheFormat:
    def test_a_cloudevent_gives_one_event(self):
        (event,) = parse_message(json.dumps(cloudevent()))
        assert event.event_id == "evt-1"

    def test_a_payload_with_alerts_is_alertmanager(self):
        assert is_alertmanager_payload({"version": "4", "alerts": []})
        assert not is_alertmanager_payload({"specversion": "1.0", "alerts": []})

    def test_a_cloudevent_without_specversion_is_told_to_add_it(self):
        with pytest.raises(InvalidEvent) as caught:
            parse_message(json.dumps(cloudevent(ce_specversion=None)))
        assert caught.value.field == "specversion"

    def test_an_unrelated_object_is_neither_format(self):
        with pytest.raises(InvalidEvent, match=r"in no format the connector reads: CloudEvents.*Alertmanager"):
            parse_message(b'{"hello": "world"}')

    def test_an_alertmanager_payload_is_dispatched_to_its_adapter(self):
        with pytest.raises(InvalidEvent) as caught:
            parse_message(b'{"version": "4", "alerts": []}')
        assert caught.value.field == "alerts"
