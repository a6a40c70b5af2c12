"""The local host runs toy FunctionApps the way the Functions host would."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import azure.functions as func
import pytest
from croniter import croniter

from tools import publish
from tools.localhost import (
    COMPLETED,
    DEAD_LETTERED,
    MAX_DELIVERY_COUNT_EXCEEDED,
    LocalHost,
    NCrontab,
    ScheduleError,
    SettingsError,
    load_settings,
)
from tools.localhost.routes import RouteTemplate

FAST = {"redelivery_delay": 0.01}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@contextlib.asynccontextmanager
async def running(app: func.FunctionApp, **options) -> AsyncIterator[LocalHost]:
    host = LocalHost(app, **{**FAST, **options})
    await host.start()
    try:
        yield host
    finally:
        await host.stop()


def http_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="items/{id}", methods=["GET", "POST"])
    async def item(req: func.HttpRequest) -> func.HttpResponse:
        payload = {
            "id": req.route_params["id"],
            "q": req.params.get("q"),
            "method": req.method,
            "body": req.get_body().decode(),
            "header": req.headers.get("x-custom"),
        }
        return func.HttpResponse(json.dumps(payload), status_code=202, mimetype="application/json")

    @app.route(route="sync/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def greet(req: func.HttpRequest) -> func.HttpResponse:
        thread = threading.current_thread().name
        return func.HttpResponse(f"hello {req.route_params['name']}", headers={"X-Thread": thread})

    @app.route(route="broken")
    def broken(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("the database is gone")

    return app


def queue_app(failures_before_success: int | None, seen: list[int]) -> func.FunctionApp:
    """A queue function that fails the first N deliveries (None: always)."""
    app = func.FunctionApp()

    @app.service_bus_queue_trigger(arg_name="event", queue_name="%EVENTS_QUEUE%", connection="ServiceBusConnection")
    @app.service_bus_queue_output(arg_name="outbox", queue_name="notifications", connection="ServiceBusConnection")
    def handle(event: func.ServiceBusMessage, outbox: func.Out[str]) -> None:
        seen.append(event.delivery_count)
        if failures_before_success is None or event.delivery_count <= failures_before_success:
            raise ValueError(f"downstream refused delivery {event.delivery_count}")
        outbox.set("handled " + event.get_body().decode())

    return app


QUEUE_ENV = {"EVENTS_QUEUE": "alert-events"}


class TestIndexing:
    def test_binding_expressions_are_resolved_from_the_settings(self):
        host = LocalHost(queue_app(0, []), env={"EVENTS_QUEUE": "incoming"})

        assert [f.queue_name for f in host.functions] == ["incoming"]
        assert host.queue_names == ["incoming", "notifications"]

    def test_a_missing_setting_is_named_in_the_error(self, monkeypatch):
        monkeypatch.delenv("EVENTS_QUEUE", raising=False)

        with pytest.raises(SettingsError, match="EVENTS_QUEUE"):
            LocalHost(queue_app(0, []))

    async def test_the_functions_endpoint_lists_every_trigger(self):
        async with running(http_app()) as host, aiohttp.ClientSession() as client:
            async with client.get(f"{host.url}/_localhost/functions") as response:
                functions = {f["name"]: f for f in await response.json()}

        assert functions["item"]["methods"] == ["GET", "POST"]
        assert functions["item"]["url"] == f"{host.url}/api/items/{{id}}"
        assert functions["broken"]["route"] == "broken"  # a route defaults to the function name


class TestSettings:
    def test_local_settings_fill_the_environment_without_overriding_it(self, tmp_path):
        (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {"A": "file", "B": "file"}}))
        (tmp_path / "local.settings.sample.json").write_text(json.dumps({"Values": {"A": "sample"}}))
        environ = {"B": "already set"}

        used, applied = load_settings(directory=tmp_path, environ=environ)

        assert used.name == "local.settings.json"
        assert environ == {"A": "file", "B": "already set"}
        assert applied == {"A": "file"}

    def test_the_sample_file_is_used_when_local_settings_is_absent(self, tmp_path):
        (tmp_path / "local.settings.sample.json").write_text(json.dumps({"Values": {"A": "sample"}}))
        environ: dict[str, str] = {}

        load_settings(directory=tmp_path, environ=environ)

        assert environ == {"A": "sample"}


class TestHttp:
    async def test_an_async_route_receives_route_params_query_headers_and_body(self):
        async with (
            running(http_app()) as host,
            aiohttp.ClientSession() as client,
            client.post(f"{host.url}/api/items/42?q=disk", data=b"payload", headers={"X-Custom": "yes"}) as response,
        ):
            status, content_type, body = response.status, response.content_type, await response.json()

        assert status == 202
        assert content_type == "application/json"
        assert body == {"id": "42", "q": "disk", "method": "POST", "body": "payload", "header": "yes"}

    async def test_a_sync_route_runs_in_a_worker_thread(self):
        async with running(http_app()) as host, aiohttp.ClientSession() as client:
            async with client.get(f"{host.url}/api/sync/ada") as response:
                status, text, thread = response.status, await response.text(), response.headers["X-Thread"]

        assert (status, text) == (200, "hello ada")
        assert thread != threading.main_thread().name

    async def test_a_method_the_route_does_not_declare_is_refused_with_405(self):
        async with running(http_app()) as host, aiohttp.ClientSession() as client:
            async with client.delete(f"{host.url}/api/items/42") as response:
                status, allow = response.status, response.headers.get("Allow")
            async with client.get(f"{host.url}/api/nowhere") as response:
                missing = response.status

        assert status == 405
        assert set(allow.split(",")) == {"GET", "POST"}
        assert missing == 404

    async def test_an_unhandled_exception_returns_500_and_logs_the_traceback(self, caplog):
        caplog.set_level(logging.INFO, logger="tools.localhost")
        async with running(http_app()) as host, aiohttp.ClientSession() as client:
            async with client.get(f"{host.url}/api/broken") as response:
                status = response.status

        assert status == 500
        [logged] = [r.getMessage() for r in caplog.records if "Exception while executing" in r.getMessage()]
        assert 'raise RuntimeError("the database is gone")' in logged  # the user's frame
        assert "tools/localhost" not in logged  # not the host's own frames
        assert any("Executed 'Functions.broken' (Failed" in r.getMessage() for r in caplog.records)

    def test_route_templates_support_constraints_and_catch_all(self):
        assert RouteTemplate("items/{id:int}").match("items/abc") is None
        assert RouteTemplate("items/{id:int}").match("items/7") == {"id": "7"}
        assert RouteTemplate("files/{*path}").match("files/a/b") == {"path": "a/b"}


class TestQueues:
    async def test_a_message_failing_twice_is_completed_on_the_third_delivery(self, caplog):
        caplog.set_level(logging.INFO, logger="tools.localhost")
        seen: list[int] = []
        async with running(queue_app(2, seen), env=QUEUE_ENV) as host:
            message_id = await host.publish("alert-events", '{"alert": "disk"}', message_id="m-1")
            await host.wait_idle(timeout=5)
            [message] = host.messages("alert-events")
            forwarded = host.messages("notifications")

        assert seen == [1, 2, 3]
        assert (message.message_id, message.state, message.delivery_count) == (message_id, COMPLETED, 3)
        assert message.errors == ("downstream refused delivery 1", "downstream refused delivery 2")
        assert host.dead_letters("alert-events") == []
        assert [m.text for m in forwarded] == ['handled {"alert": "disk"}']
        logged = [record.getMessage() for record in caplog.records]
        executing = [line for line in logged if line.startswith("Executing 'Functions.handle'")]
        assert len(executing) == 3

    async def test_a_message_that_always_fails_is_dead_lettered_after_the_max_delivery_count(self):
        seen: list[int] = []
        async with running(queue_app(None, seen), env=QUEUE_ENV, max_delivery_count=4) as host:
            await host.publish("alert-events", b"{}", application_properties={"source": "test"})
            await host.wait_idle(timeout=5)
            [dead] = host.dead_letters("alert-events")

        assert seen == [1, 2, 3, 4]
        assert dead.state == DEAD_LETTERED
        assert dead.delivery_count == 4
        assert dead.dead_letter_reason == MAX_DELIVERY_COUNT_EXCEEDED
        assert dead.dead_letter_error_description == "downstream refused delivery 4"
        assert host.messages("notifications") == []

    async def test_the_management_api_publishes_and_reports_status_and_dead_letters(self):
        async with running(queue_app(None, []), env=QUEUE_ENV, max_delivery_count=2) as host:
            async with aiohttp.ClientSession() as client:
                async with client.post(
                    f"{host.url}/_localhost/queues/alert-events/messages",
                    data=b'{"alert": 1}',
                    headers={"x-message-id": "api-1", "content-type": "application/json"},
                ) as response:
                    created = (response.status, await response.json())
                await host.wait_idle(timeout=5)
                async with client.get(f"{host.url}/_localhost/queues/alert-events/messages/api-1") as response:
                    status = await response.json()
                async with client.get(f"{host.url}/_localhost/queues/alert-events/deadletter") as response:
                    dead_letters = await response.json()
                async with client.get(f"{host.url}/_localhost/queues/alert-events") as response:
                    summary = await response.json()

        assert created[0] == 201 and created[1]["messageId"] == "api-1"
        assert (status["status"], status["deliveryCount"]) == ("deadlettered", 2)
        assert status["lastError"] == "downstream refused delivery 2"
        assert [(d["messageId"], d["body"], d["deadLetterReason"]) for d in dead_letters] == [
            ("api-1", '{"alert": 1}', "MaxDeliveryCountExceeded")
        ]
        assert summary["deadLetterMessageCount"] == 1
        assert [r["outcome"] for r in summary["recent"]] == ["failed", "deadlettered"]

    async def test_duplicate_detection_drops_a_repeated_message_id(self):
        seen: list[int] = []
        async with running(queue_app(0, seen), env=QUEUE_ENV, duplicate_detection=["alert-events"]) as host:
            await host.publish("alert-events", b"1", message_id="same")
            await host.publish("alert-events", b"2", message_id="same")
            await host.wait_idle(timeout=5)

        assert [m.text for m in host.messages("alert-events")] == ["1"]
        assert seen == [1]

    async def test_concurrent_deliveries_are_bounded_by_max_concurrent_calls(self):
        app = func.FunctionApp()
        active, peak = 0, 0

        @app.service_bus_queue_trigger(arg_name="msg", queue_name="work", connection="SB")
        async def work(msg: func.ServiceBusMessage) -> None:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.02)
            active -= 1

        host_json = {"extensions": {"serviceBus": {"maxConcurrentCalls": 3}}}
        async with running(app, host_json=host_json) as host:
            for number in range(10):
                await host.publish("work", str(number))
            await host.wait_idle(timeout=5)

        assert peak == 3
        assert all(m.state == COMPLETED for m in host.messages("work"))


def session_app(
    calls: list[tuple[str, list[str]]],
    running_now: set[str],
    overlaps: list[str],
    cardinality: str = "many",
    on_call: Callable[[str, list[str]], None] = lambda session, bodies: None,
    peak: list[int] | None = None,
) -> func.FunctionApp:
    """A session-enabled trigger that records each invocation, notices if one session ever runs
    in two invocations at once, and keeps the peak of invocations running together."""
    app = func.FunctionApp()

    @app.service_bus_queue_trigger(
        arg_name="batch",
        queue_name="jobs",
        connection="ServiceBusConnection",
        is_sessions_enabled=True,
        cardinality=cardinality,
    )
    async def work(batch: list[func.ServiceBusMessage] | func.ServiceBusMessage) -> None:
        messages = batch if isinstance(batch, list) else [batch]
        session = messages[0].session_id
        if session in running_now:
            overlaps.append(session)
        running_now.add(session)
        if peak is not None:
            peak.append(len(running_now))
        bodies = [m.get_body().decode() for m in messages]
        on_call(session, bodies)
        await asyncio.sleep(0.01)  # let other sessions' invocations interleave
        calls.append((session, bodies))
        running_now.discard(session)

    return app


def service_bus(**settings: object) -> dict:
    return {"extensions": {"serviceBus": settings}}


class TestBatches:
    async def test_a_batch_trigger_gets_batches_of_up_to_max_message_batch_size_one_at_a_time(self):
        """As RunBatchReceiveLoopAsync: one receive loop per instance, so never two batches at once;
        a failed batch is abandoned whole and comes again."""
        calls: list[list[str]] = []
        running_now: list[int] = []
        peak: list[int] = []
        failed: list[int] = []
        app = func.FunctionApp()

        @app.service_bus_queue_trigger(
            arg_name="batch", queue_name="work", connection="ServiceBusConnection", cardinality="many"
        )
        async def work(batch: list[func.ServiceBusMessage]) -> None:
            running_now.append(1)
            peak.append(len(running_now))
            await asyncio.sleep(0.01)
            running_now.pop()
            bodies = [m.get_body().decode() for m in batch]
            if "m3" in bodies and not failed:
                failed.append(1)
                raise RuntimeError("Table Storage is unreachable")
            calls.append(bodies)

        async with running(app, host_json=service_bus(maxMessageBatchSize=4)) as host:
            for i in range(10):
                host.queue("work").send(f"m{i}".encode())
            await host.wait_idle(timeout=5)
        assert max(peak) == 1 and max(len(c) for c in calls) == 4
        assert sorted(b for c in calls for b in c) == sorted(f"m{i}" for i in range(10))  # m3's batch came again


class TestSessions:
    """As the Service Bus extension runs session triggers (tools/localhost/sessions.py cites
    ServiceBusListener.cs): a batch trigger one session at a time per instance, held until a
    receive waits sessionIdleTimeout in vain; a single-message trigger maxConcurrentSessions
    sessions at once, one message at a time each."""

    async def test_each_session_gets_its_messages_in_order_and_never_two_receivers_at_once(self):
        calls: list[tuple[str, list[str]]] = []
        overlaps: list[str] = []
        async with running(
            session_app(calls, set(), overlaps),
            host_json=service_bus(maxMessageBatchSize=2, sessionIdleTimeout="00:00:00.05"),
        ) as host:
            for i in range(6):
                for session in ("a", "b"):
                    host.queue("jobs").send(f"{session}{i}".encode(), session_id=session)
            await host.wait_idle(timeout=5)
        assert overlaps == []
        for session in ("a", "b"):
            bodies = [body for s, batch in calls if s == session for body in batch]
            assert bodies == [f"{session}{i}" for i in range(6)]
        assert max(len(batch) for _, batch in calls) == 2  # maxMessageBatchSize

    async def test_a_batch_trigger_holds_one_session_until_a_receive_comes_back_empty(self):
        """While session a's batch runs, a1 arrives: a is still held (its receive has not come
        back empty), so a1 runs before b0, which waited from the start; and never two sessions
        at once on one instance, maxConcurrentSessions notwithstanding."""
        calls: list[tuple[str, list[str]]] = []
        peak: list[int] = []
        host_ref: list[LocalHost] = []

        def on_call(session: str, bodies: list[str]) -> None:
            if bodies == ["a0"]:
                host_ref[0].queue("jobs").send(b"a1", session_id="a")

        async with running(
            session_app(calls, set(), [], on_call=on_call, peak=peak),
            host_json=service_bus(maxConcurrentSessions=8, sessionIdleTimeout="00:00:00.20"),
        ) as host:
            host_ref.append(host)
            host.queue("jobs").send(b"a0", session_id="a")
            host.queue("jobs").send(b"b0", session_id="b")
            await host.wait_idle(timeout=5)
        assert calls == [("a", ["a0"]), ("a", ["a1"]), ("b", ["b0"])]
        assert max(peak) == 1

    async def test_a_single_message_trigger_runs_max_concurrent_sessions_at_once_one_message_each(self):
        calls: list[tuple[str, list[str]]] = []
        overlaps: list[str] = []
        peak: list[int] = []
        async with running(
            session_app(calls, set(), overlaps, cardinality="one", peak=peak),
            host_json=service_bus(maxConcurrentSessions=2, sessionIdleTimeout="00:00:00.05"),
        ) as host:
            for i in range(3):
                for session in ("a", "b", "c"):
                    host.queue("jobs").send(f"{session}{i}".encode(), session_id=session)
            await host.wait_idle(timeout=5)
        assert overlaps == [] and max(peak) == 2
        assert all(len(bodies) == 1 for _, bodies in calls)
        for session in ("a", "b", "c"):
            assert [b for s, [b] in calls if s == session] == [f"{session}{i}" for i in range(3)]

    async def test_a_scheduled_message_appears_at_its_time(self):
        from datetime import timedelta

        calls: list[tuple[str, list[str]]] = []
        async with running(session_app(calls, set(), []), env={}) as host:
            queue = host.queue("jobs")
            queue.send(b"later", session_id="a", scheduled_enqueue_time=datetime.now(UTC) + timedelta(seconds=0.2))
            queue.send(b"now", session_id="a")
            await asyncio.wait_for(_until(lambda: calls), 5)
            assert calls == [("a", ["now"])] and queue.counts()["scheduledMessageCount"] == 1
            await host.wait_idle(timeout=5)
        assert calls == [("a", ["now"]), ("a", ["later"])]

    async def test_the_publish_api_takes_the_session_and_the_schedule(self):
        calls: list[tuple[str, list[str]]] = []
        async with running(session_app(calls, set(), []), env={}) as host:
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    f"{host.url}/_localhost/queues/jobs/messages",
                    data=b"x",
                    headers={"x-session-id": "s-1", "Content-Type": "application/json"},
                ) as response,
            ):
                assert response.status == 201
            await host.wait_idle(timeout=5)
            [message] = host.messages("jobs")
        assert calls == [("s-1", ["x"])] and message.session_id == "s-1"


class FakeTime:
    """Virtual time for the timers: a sleep waits until :meth:`run_until` moves the clock to its
    end, so schedules are followed in order and nothing waits in real time."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._sleepers: list[tuple[datetime, asyncio.Future[None]]] = []

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + timedelta(seconds=seconds), future))
        await future

    async def run_until(self, condition, *, sleepers: int, max_steps: int = 100) -> None:
        """Move the clock from sleep to sleep until ``condition()``; ``sleepers``: how many tasks
        sleep on this clock (each is let run to its next sleep before the clock moves)."""
        for _ in range(max_steps):
            for _ in range(1000):
                if len(self._sleepers) >= sleepers:
                    break
                await asyncio.sleep(0)
            if condition():
                return
            self.now = min(deadline for deadline, _ in self._sleepers)
            for entry in [e for e in self._sleepers if e[0] <= self.now]:
                self._sleepers.remove(entry)
                entry[1].set_result(None)
        raise AssertionError("the condition did not come true")


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.005)


class TestTimers:
    def test_ncrontab_reads_the_first_of_six_fields_as_seconds(self):
        start = datetime(2024, 1, 1, 0, 0, 0, tzinfo=UTC)

        every_five_minutes = NCrontab("0 */5 * * * *").occurrences(start, 2)
        weekday_mornings = NCrontab("30 0 9 * * Mon-Fri").occurrences(datetime(2024, 1, 5, 10, tzinfo=UTC), 2)

        assert [t.strftime("%H:%M:%S") for t in every_five_minutes] == ["00:05:00", "00:10:00"]
        assert [t.strftime("%a %H:%M:%S") for t in weekday_mornings] == ["Mon 09:00:30", "Tue 09:00:30"]

    def test_croniter_alone_would_read_the_last_field_as_seconds(self):
        start = datetime(2024, 1, 1, tzinfo=UTC)

        plain = croniter("0 */5 * * * *", start).get_next(datetime)

        assert plain != NCrontab("0 */5 * * * *").next_after(start)

    def test_a_five_field_schedule_is_rejected_with_an_example(self):
        with pytest.raises(ScheduleError, match="six"):
            NCrontab("*/5 * * * *")

    async def test_a_timer_runs_via_the_management_api_with_a_timer_request(self):
        app = func.FunctionApp()
        received: list[func.TimerRequest] = []

        @app.timer_trigger(schedule="0 0 3 * * *", arg_name="timer")
        def nightly(timer: func.TimerRequest) -> None:
            received.append(timer)

        async with running(app) as host, aiohttp.ClientSession() as client:
            json_type = {"Content-Type": "application/json"}
            async with client.post(f"{host.url}/_localhost/timers/nightly", headers=json_type) as response:
                result = await response.json()
            async with client.post(f"{host.url}/_localhost/timers/nope", headers=json_type) as response:
                unknown = response.status

        assert result["status"] == "Succeeded"
        assert len(received) == 1 and received[0].past_due is False
        assert received[0].schedule_status["Next"].endswith("T03:00:00Z")
        assert unknown == 404

    async def test_a_timer_run_never_overlaps_itself(self):
        app = func.FunctionApp()
        active, peak = 0, 0

        @app.timer_trigger(schedule="0 0 3 * * *", arg_name="timer")
        async def slow(timer: func.TimerRequest) -> None:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.05)
            active -= 1

        async with running(app) as host:
            results = await asyncio.gather(host.run_timer("slow"), host.run_timer("slow"))

        assert [r.succeeded for r in results] == [True, True]
        assert peak == 1

    async def test_run_on_startup_fires_once_and_the_schedule_fires_on_time(self):
        app = func.FunctionApp()
        fired: list[str] = []

        @app.timer_trigger(schedule="0 0 3 * * *", arg_name="timer", run_on_startup=True)
        async def at_startup(timer: func.TimerRequest) -> None:
            fired.append("startup")

        seconds: list[datetime] = []

        @app.timer_trigger(schedule="* * * * * *", arg_name="timer")
        async def every_second(timer: func.TimerRequest) -> None:
            fired.append("second")
            seconds.append(timer.schedule_status["LastUpdated"])

        clock = FakeTime(datetime(2026, 11, 23, 12, 0, 0, 500000, tzinfo=UTC))
        async with running(app, clock=clock, sleep=clock.sleep):
            await clock.run_until(lambda: fired.count("second") >= 3, sleepers=2)

        assert fired.count("startup") == 1
        assert seconds[:3] == ["2026-11-23T12:00:01Z", "2026-11-23T12:00:02Z", "2026-11-23T12:00:03Z"]
        assert clock.now == datetime(2026, 11, 23, 12, 0, 3, tzinfo=UTC), "the daily timer has not fired"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TestPublishCli:
    async def test_publish_prints_the_message_id_and_the_outcome(self, tmp_path):
        event = tmp_path / "event.json"
        event.write_text('{"alert": "cpu"}')
        out = io.StringIO()
        async with running(queue_app(1, []), env=QUEUE_ENV) as host:
            code = await asyncio.to_thread(
                publish.main,
                [str(event), "--queue", "--queue-name", "alert-events", "--host", host.url, "--wait", "5"],
                out,
            )
            [message] = host.messages("alert-events")

        lines = out.getvalue().splitlines()
        assert code == 0
        assert lines[0].endswith(f"sent to alert-events as message {message.message_id}")
        assert f"{message.message_id} completed after 2 deliveries" in lines[1]

    async def test_publish_reports_a_dead_lettered_message_and_fails(self, tmp_path):
        event = tmp_path / "event.json"
        event.write_text("{}")
        out = io.StringIO()
        async with running(queue_app(None, []), env=QUEUE_ENV, max_delivery_count=2) as host:
            code = await asyncio.to_thread(
                publish.main, [str(event), "--queue", "--queue-name", "alert-events", "--host", host.url], out
            )

        assert code == 1
        outcome = "dead-lettered after 2 deliveries: MaxDeliveryCountExceeded (downstream refused delivery 2)"
        assert outcome in out.getvalue()

    def test_publish_names_a_missing_file(self, tmp_path):
        err = io.StringIO()

        code = publish.main([str(tmp_path / "absent.json")], io.StringIO(), err)

        assert code == 2
        assert "absent.json" in err.getvalue()

    def test_publish_explains_when_the_host_is_not_running(self, tmp_path):
        event = tmp_path / "event.json"
        event.write_text((EXAMPLES / "alert-created.json").read_text())
        err = io.StringIO()

        code = publish.main([str(event), "--host", f"http://127.0.0.1:{closed_port()}"], io.StringIO(), err)

        assert code == 2
        assert "is the local host running? start it with: make run" in err.getvalue()

    def test_the_default_queue_comes_from_the_settings_file(self, tmp_path, monkeypatch):
        monkeypatch.delenv("ALERT_EVENTS_QUEUE", raising=False)
        monkeypatch.chdir(tmp_path)
        assert publish.default_queue() == "alert-events"

        sample = {"Values": {"ALERT_EVENTS_QUEUE": "from-sample"}}
        (tmp_path / "local.settings.sample.json").write_text(json.dumps(sample))

        assert publish.default_queue() == "from-sample"


class TestPublishToTheIngestRoute:
    async def test_publish_http_posts_with_the_key_and_reports_the_answer(self, tmp_path):
        seen: list[tuple[str, str, str, str]] = []
        app = func.FunctionApp()

        @app.route(route="events/{format}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
        def ingest(req: func.HttpRequest) -> func.HttpResponse:
            seen.append(
                (
                    req.route_params["format"],
                    req.params.get("tenant", ""),
                    req.params.get("source", ""),
                    req.headers.get("X-Ingest-Key", ""),
                )
            )
            if req.headers.get("X-Ingest-Key") != "right-key":
                return func.HttpResponse(
                    '{"error": "a valid key is required"}', status_code=401, mimetype="application/json"
                )
            return func.HttpResponse(
                '{"status": "queued", "eventIds": ["e-1", "e-2"]}', status_code=202, mimetype="application/json"
            )

        payload = tmp_path / "am.json"
        payload.write_text('{"version": "4", "alerts": []}')
        out = io.StringIO()
        async with running(app) as host:
            ok = await asyncio.to_thread(
                publish.main,
                [
                    str(payload),
                    "--http",
                    "alertmanager",
                    "--tenant",
                    "t-1",
                    "--source",
                    "prod",
                    "--key",
                    "right-key",
                    "--host",
                    host.url,
                ],
                out,
            )
            bad = await asyncio.to_thread(
                publish.main,
                [str(payload), "--http", "alertmanager", "--tenant", "t-1", "--key", "wrong", "--host", host.url],
                out,
            )
        assert (ok, bad) == (0, 1)
        assert seen[0] == ("alertmanager", "t-1", "prod", "right-key")
        assert (
            "accepted (HTTP 202) as alertmanager: 2 event(s) queued: e-1, e-2" in out.getvalue()
            and "refused (HTTP 401)" in out.getvalue()
        )


class TestOnlyThisMachinesToolsReachTheManagementApi:
    """What a web page on another site can make a developer's browser send to the local host."""

    async def test_cross_site_posts_and_a_rebound_name_are_refused(self):
        app = func.FunctionApp()
        received: list = []

        @app.timer_trigger(schedule="0 0 3 * * *", arg_name="timer")
        def nightly(timer: func.TimerRequest) -> None:
            received.append(timer)

        @app.service_bus_queue_trigger(arg_name="msg", queue_name="alert-events", connection="ServiceBusConnection")
        def events(msg: func.ServiceBusMessage) -> None:
            received.append(msg)

        async with running(app) as host, aiohttp.ClientSession() as client:
            queue = f"{host.url}/_localhost/queues/alert-events/messages"
            # A cross-site text/plain post (no preflight): refused, nothing queued.
            async with client.post(queue, data=b"{}", headers={"Content-Type": "text/plain"}) as response:
                assert response.status == 415
            async with client.post(
                f"{host.url}/_localhost/timers/nightly",
                headers={"Content-Type": "application/json", "Origin": "https://evil.example"},
            ) as response:
                assert response.status == 403
            # DNS rebinding: the page's own name now points at 127.0.0.1; the Host says so.
            async with client.get(
                f"{host.url}/_localhost/queues/alert-events/messages", headers={"Host": "evil.example:7071"}
            ) as response:
                assert response.status == 403
            async with client.get(f"{host.url}/_localhost/console", headers={"Host": "evil.example"}) as response:
                assert response.status == 403
            assert received == [] and host.messages("alert-events") == []
            # This machine's tools still get through.
            async with client.post(
                queue, data=b"{}", headers={"Content-Type": "application/json", "Origin": host.url}
            ) as response:
                assert response.status == 201

    async def test_writes_need_the_runs_token_when_it_has_one(self):
        app = func.FunctionApp()

        @app.service_bus_queue_trigger(arg_name="msg", queue_name="alert-events", connection="ServiceBusConnection")
        def events(msg: func.ServiceBusMessage) -> None:
            return None

        async with running(app, token="run-token") as host, aiohttp.ClientSession() as client:
            queue = f"{host.url}/_localhost/queues/alert-events/messages"
            json_type = {"Content-Type": "application/json"}
            async with client.post(queue, data=b"{}", headers=json_type) as response:
                assert response.status == 401
            async with client.post(queue, data=b"{}", headers={**json_type, "X-Local-Token": "wrong"}) as response:
                assert response.status == 401
            async with client.post(queue, data=b"{}", headers={**json_type, "X-Local-Token": "run-token"}) as response:
                assert response.status == 201
            # As the app sends it: the token in LOCAL_QUEUE_HOST_URL, as basic auth.
            with_token = host.url.replace("://", "://local:run-token@", 1)
            async with client.post(
                f"{with_token}/_localhost/queues/alert-events/messages", data=b"{}", headers=json_type
            ) as response:
                assert response.status == 201
            async with client.get(queue) as response:  # reading needs none (loopback only)
                assert response.status == 200
