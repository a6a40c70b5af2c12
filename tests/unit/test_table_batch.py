"""The connector's own entity group transaction codec (shared/adapters/table_batch.py): the
wire format of the Table service REST API ("Performing entity group transactions"). The contract
tests run it against Azurite; these pin the framings Azurite does not send."""

from __future__ import annotations

import json

import pytest

from shared.adapters.table_batch import TransactionFailed, Write, read_answer, request_body


def answer(parts: list[str], blank_before_boundary: str) -> str:
    """A $batch answer of ``parts`` (each an embedded HTTP answer), the changeset's parts ended
    by ``blank_before_boundary`` before each boundary line."""
    lines = ["--batchresponse_1", "Content-Type: multipart/mixed; boundary=changesetresponse_2", ""]
    for part in parts:
        lines += ["--changesetresponse_2", "Content-Type: application/http", "Content-Transfer-Encoding: binary", ""]
        lines.append(part + blank_before_boundary)
    lines += ["--changesetresponse_2--", "--batchresponse_1--", ""]
    return "\r\n".join(lines)


def ok(etag: str) -> str:
    return "\r\n".join(
        ["HTTP/1.1 204 No Content", "X-Content-Type-Options: nosniff", "DataServiceVersion: 1.0;", f"ETag: {etag}", ""]
    )


class TestTheAnswer:
    @pytest.mark.parametrize("blank", ["", "\r\n"], ids=["one-blank-line", "two-blank-lines"])
    def test_the_etags_of_the_writes_in_order(self, blank):
        body = answer([ok("W/\"datetime'2026-12-08T01%3A00%3A00.1Z'\""), ok("W/\"datetime'x2'\"")], blank)
        assert read_answer(body, 2) == ["W/\"datetime'2026-12-08T01%3A00%3A00.1Z'\"", "W/\"datetime'x2'\""]

    @pytest.mark.parametrize("status, code", [(412, "UpdateConditionNotSatisfied"), (409, "EntityAlreadyExists")])
    def test_a_refused_write_names_its_index_and_status(self, status, code):
        error = {"odata.error": {"code": code, "message": {"lang": "en-US", "value": "1:Refused.\nRequestId:r"}}}
        part = "\r\n".join(
            [
                f"HTTP/1.1 {status} Refused",
                "Content-Type: application/json;odata=minimalmetadata",
                "",
                json.dumps(error),
            ]
        )
        with pytest.raises(TransactionFailed) as refused:
            read_answer(answer([part], "\r\n"), 2)
        assert (refused.value.status_code, refused.value.index) == (status, 1)
        assert "1:Refused." in str(refused.value)

    def test_an_answer_without_every_write_is_an_error_not_a_success(self):
        with pytest.raises(ValueError, match="2 writes was answered with 1"):
            read_answer(answer([ok('W/"1"')], ""), 2)


class TestTheRequest:
    def test_each_write_is_its_own_http_request_in_one_changeset(self):
        body = request_body(
            "https://acct.table.core.windows.net/tacdeliveries",
            [
                Write("create", {"PartitionKey": "t", "RowKey": "card|k|19:o'brien/x", "N": 1}),
                Write("replace", {"PartitionKey": "t", "RowKey": "window|c", "Window": "{}"}, 'W/"7"'),
                Write("upsert", {"PartitionKey": "t", "RowKey": "u"}),
            ],
            "batch_b",
            "changeset_c",
        ).decode()
        assert body.startswith("--batch_b\r\nContent-Type: multipart/mixed; boundary=changeset_c\r\n")
        assert body.count("--changeset_c\r\n") == 3 and body.endswith("--changeset_c--\r\n--batch_b--\r\n")
        assert "POST https://acct.table.core.windows.net/tacdeliveries HTTP/1.1" in body
        assert (
            "PUT https://acct.table.core.windows.net/tacdeliveries(PartitionKey='t',RowKey='window%7Cc') HTTP/1.1"
            in body
        )
        assert 'If-Match: W/"7"' in body and body.count("If-Match") == 1  # an upsert is unconditional
        assert '"RowKey":"card|k|19:o\'brien/x"' in body  # the key as is in the entity, escaped only in URLs

    def test_a_quote_in_a_key_is_doubled_in_the_url(self):
        body = request_body("https://a/t", [Write("upsert", {"PartitionKey": "p", "RowKey": "o'b"})], "b", "c").decode()
        assert "RowKey='o%27%27b'" in body
