"""``make bench``: the delivery benchmark. Prints one line per figure, and last one JSON object.

Everything is real but Teams: Azurite for Table Storage, the Teams simulator with Teams' bot
rate limits **enforced** (429 + Retry-After beyond them), a loopback broker with Service Bus
semantics (sessions, scheduled messages, duplicate detection, dead-lettering), and app
processes that run function_app's queue triggers the way Functions instances do.

1. CPU and Table Storage requests per event (one process): created, updated, resolved,
   duplicate, per table; then what keeping state small costs: the timer's read of the open
   alerts and the removal of resolved ones (a clock 31 days on).
2. Fan-out of one alert to 500 conversations (two processes): seconds, requests per second.
3. A storm of 10,000 alerts into one channel (two processes): what Teams received, the busiest
   windows against Teams' limits, 429s, seconds until every alert is visible (its own card or
   counted in the summary), alerts lost, messages dead-lettered.
4. Concurrent, out-of-order events of 200 alerts with injected faults (two processes): how many
   cards end showing the alert's last state.

    python -m tools.bench [--storm 10000] [--fanout 500] [--race 200] [--events 200] [--processes 2]

Development tool; not deployed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import time
from datetime import UTC
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parents[2]
BOT_APP_ID = "b3c4d5e6-0000-4000-8000-00000000be7c"
BOT_SECRET = "bench-only-secret"
QUEUES = {
    "ALERT_EVENTS_QUEUE": "alert-events",
    "DELIVERY_QUEUE": "teams-deliveries",
    "TEAMS_ACTIONS_QUEUE": "teams-actions",
}
SOURCE = "https://bench.example.com"
STORM_TIMEOUT_SECONDS = 900
# infra/app/function.bicep: maximumInstanceCount's default, the most instances Flex Consumption runs.
MAX_INSTANCES = 40


def azure_instances(waiting: int, per_instance: int) -> int:
    """How many instances target-based scaling asks for (Functions docs, "Target-based scaling":
    desired instances = event source length / target executions per instance; for Service Bus
    the target is maxMessageBatchSize for a batch trigger, maxConcurrentSessions for a
    single-message trigger on sessions), capped by maximumInstanceCount."""
    return max(1, min(MAX_INSTANCES, -(-waiting // max(per_instance, 1))))


def service_bus() -> dict[str, Any]:
    return dict(json.loads((ROOT / "host.json").read_text())["extensions"]["serviceBus"])


_SUMMARY = re.compile(r"Alert storm: ([\d,]+) alerts in this summary")
# An alert card carries its status badge (shared/cards.py: the element with id "status").
_ALERT_CARD = '"id": "status"'


def shown_status(attachments: list[dict]) -> str | None:
    """The status word of the alert card among ``attachments`` ("Resolved"), or None."""
    stack: list[Any] = list(attachments)
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("id") == "status" and isinstance(node.get("text"), str):
                return node["text"].split()[-1]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


def tenant_id(name: str) -> str:
    """A tenant id the connector accepts (a GUID), stable per bench tenant name: the name's
    bytes in the last group, so logs still say which tenant it was."""
    tail = name.encode().hex()[-12:].rjust(12, "0")
    return f"bbbbbbbb-0000-4000-8000-{tail}"


def event(tenant: str, alert: str, version: int, kind: str = "alert.created", severity: str = "high") -> dict:
    return {
        "specversion": "1.0",
        "id": f"{tenant}-{alert}-v{version}",
        "source": SOURCE,
        "type": kind,
        "subject": alert,
        "tenantid": tenant,
        "data": {
            "id": alert,
            "title": f"{alert} on host-{alert[-3:]}",
            "severity": severity,
            "version": version,
            "labels": {"host": f"h{alert[-3:]}"},
        },
    }


class Worker:
    """One app process (tools/bench/worker.py); its log (errors, warnings) goes to a file."""

    started: ClassVar[list[Worker]] = []

    def __init__(self, env: dict[str, str]) -> None:
        self.log = open(Path(env.get("BENCH_LOG_DIR", "/tmp")) / f"bench-worker-{len(Worker.started)}.log", "w")  # noqa: SIM115 - closed in stop()
        Worker.started.append(self)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools.bench.worker"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            bufsize=1,
        )

    def _line(self) -> dict:
        assert self.process.stdout is not None
        return json.loads(self.process.stdout.readline())

    async def ready(self) -> None:
        await asyncio.to_thread(self._line)

    async def stats(self) -> dict:
        assert self.process.stdin is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        return await asyncio.to_thread(self._line)

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            try:
                self.process.stdin.write("stop\n")
                self.process.stdin.flush()
                self.process.wait(20)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.process.kill()
        self.log.close()


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.results: dict[str, Any] = {}

    async def __aenter__(self) -> Bench:
        from shared.adapters.state_store import AzureTables, TableStateStore
        from tests.support.azurite import Azurite
        from tools.bench.broker import Broker
        from tools.teams_simulator import TeamsSimulator

        self.azurite = Azurite()
        self.sim = TeamsSimulator(enforce_limits=True).start()
        self.sim.register_bot(BOT_APP_ID, BOT_SECRET)
        self.broker = Broker(duplicate_detection=tuple(QUEUES.values()))
        await self.broker.start()
        prefix = f"bench{os.getpid()}"
        self.store = TableStateStore(AzureTables(connection_string=self.azurite.connection_string, prefix=prefix))
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "GRAPH_", "STATE_"))},
            **QUEUES,
            "STATE_TABLES_CONNECTION": self.azurite.connection_string,
            "STATE_TABLE_PREFIX": prefix,
            "BOT_APP_ID": BOT_APP_ID,
            "BOT_APP_PASSWORD": BOT_SECRET,
            "BOT_TENANT_ID": "bench-bot-tenant",
            "BOT_TOKEN_URL": self.sim.token_url(),
            "BOT_OPENID_METADATA_URL": self.sim.openid_metadata_url,
            "LOCAL_QUEUE_HOST_URL": self.broker.url,
            "PERIODIC_SCHEDULE": "0 0 0 1 1 *",
            "TEAMS_TENANT_SENDS_PER_SECOND": "45",
            "PYTHONDONTWRITEBYTECODE": "",
        }
        self.workers: list[Worker] = []
        return self

    async def __aexit__(self, *exc: object) -> None:
        for worker in self.workers:
            worker.stop()
        await self.store.close()
        await self.broker.stop()
        self.sim.stop()
        self.azurite.stop()

    async def start_workers(self, count: int) -> None:
        while len(self.workers) < count:
            worker = Worker(self.env)
            await worker.ready()
            self.workers.append(worker)

    async def conversations(self, tenant: str, count: int) -> list[str]:
        from shared.domain.model import ConversationRecord

        ids = []
        for i in range(count):
            cid = f"19:{tenant}-{i:04d}@thread.tacv2"
            reference = {
                "bot": {"id": f"28:{BOT_APP_ID}", "name": "Alert Connector"},
                "channelId": "msteams",
                "serviceUrl": self.sim.service_url,
                "conversation": {"id": cid, "conversationType": "channel", "tenantId": tenant, "isGroup": True},
            }
            await self.store.save_conversation(
                ConversationRecord(tenant, cid, "channel", self.sim.service_url, reference, name=f"channel {i}")
            )
            ids.append(cid)
        return ids

    def publish(self, events: list[dict]) -> float:
        for body in events:
            self.broker.send(
                QUEUES["ALERT_EVENTS_QUEUE"], json.dumps(body).encode(), message_id=f"{body['tenantid']}/{body['id']}"
            )
        return time.monotonic()

    async def idle(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < 3:  # idle three polls in a row: nothing queued, locked or scheduled
            quiet = quiet + 1 if self.broker.idle() else 0
            if time.monotonic() > deadline:
                raise TimeoutError(f"the app is still busy after {timeout:.0f} s: {self.broker.counts()}")
            await asyncio.sleep(0.2)

    def azurite_cpu(self) -> float:
        """CPU seconds the Azurite process has used (Linux /proc): the local stand-in for Table
        Storage shares the machine's cores with the app, so it can bound a run."""
        try:
            fields = Path(f"/proc/{self.azurite.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, AttributeError):
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def sends(self, tenant: str) -> list[tuple[float, str, str]]:
        assert self.sim.limits is not None
        return [s for s in self.sim.limits.sends if s[1] == tenant]

    # ------------------------------------------------------------------ scenarios

    async def cpu_per_event(self) -> None:
        """Ten tenants with one channel each; every event goes to one channel. One instance
        unless ``--events-instances`` says more: then they take the sessions as the extension
        gives them out (a conversation's next job may run on another instance than its last)."""
        await self.start_workers(self.args.events_instances)

        async def stats() -> dict:
            """The instances' counters, added up."""
            total: dict = {"cpu": 0.0, "host_cpu": 0.0, "tables": 0, "by_table": {}}
            for one in await asyncio.gather(*(w.stats() for w in self.workers)):
                for key in ("cpu", "host_cpu", "tables"):
                    total[key] += one[key]
                for name, count in one["by_table"].items():
                    total["by_table"][name] = total["by_table"].get(name, 0) + count
            return total

        tenants = [tenant_id(f"cpu{i}") for i in range(10)]
        for tenant in tenants:
            await self.conversations(tenant, 1)
        warm = [event(t, f"W-{i:03d}", 1) for i in range(3) for t in tenants]
        self.publish(warm)
        await self.idle()
        per_tenant = self.args.events // len(tenants)
        figures = {}
        for phase, make in (
            ("created", lambda t, i: event(t, f"A-{i:03d}", 1)),
            ("updated", lambda t, i: event(t, f"A-{i:03d}", 2, "alert.acknowledged")),
            ("resolved", lambda t, i: event(t, f"A-{i:03d}", 3, "alert.resolved")),
            ("duplicate", lambda t, i: event(t, f"A-{i:03d}", 3, "alert.resolved") | {"id": f"{t}-A-{i:03d}-v3"}),
        ):
            bodies = [make(t, i) for i in range(per_tenant) for t in tenants]
            if phase == "duplicate":
                # The same events again under new message ids (a source that resends).
                for body in bodies:
                    self.broker.send(
                        QUEUES["ALERT_EVENTS_QUEUE"],
                        json.dumps(body).encode(),
                        message_id=f"again/{body['tenantid']}/{body['id']}",
                    )
            before = await stats()
            if phase != "duplicate":
                # In waves of one event per channel: each channel's sends stay within Teams' 7 per
                # second, so this measures an event's cost, not pacing's (the storm does that).
                for wave in range(0, len(bodies), len(tenants)):
                    self.publish(bodies[wave : wave + len(tenants)])
                    await self.idle()
            await self.idle()
            after = await stats()
            n = len(bodies)
            by_table = {
                name: (count - before["by_table"].get(name, 0)) / n for name, count in after["by_table"].items()
            }
            host = after["host_cpu"] - before["host_cpu"]
            figures[phase] = (
                (after["cpu"] - before["cpu"] - host) * 1000 / n,
                (after["tables"] - before["tables"]) / n,
                {k: v for k, v in by_table.items() if v},
                host * 1000 / n,
            )
        # A figure of rejected events measures the rejection, not the delivery: refuse to print it.
        rejected = [
            line
            for w in Worker.started
            for line in Path(w.log.name).read_text(encoding="utf-8").splitlines()
            if "Rejected message" in line
        ]
        if rejected:
            raise SystemExit(
                f"the bench's events were rejected ({len(rejected)}), so its figures would mean nothing: {rejected[0]}"
            )
        for phase, (cpu, tables, by_table, host) in figures.items():
            detail = ", ".join(f"{name} {count:.2f}" for name, count in sorted(by_table.items(), key=lambda kv: -kv[1]))
            print(
                (
                    f"{phase:>9} event: {cpu:5.2f} ms CPU (app), {tables:4.1f} Table Storage requests ({detail}); "
                    f"+{host:.2f} ms standing in for the Functions host"
                ),
                flush=True,
            )
        # The app's CPU: the process's (every thread) less what its stand-in for the Functions
        # host spent receiving and settling messages, which Azure spends in the host's own
        # process (tools/bench/worker.py, _charge_host). Both are printed.
        self.results["cpu_ms_per_event"] = round(figures["created"][0], 2)
        self.results["host_cpu_ms_per_event"] = round(figures["created"][3], 2)
        self.results["table_requests_per_event"] = {k: round(v[1], 2) for k, v in figures.items()}
        self.results["table_requests_per_event_by_table"] = {
            k: {name: round(c, 2) for name, c in v[2].items()} for k, v in figures.items()
        }

    async def lifecycle(self) -> None:
        """What keeping state small costs, against the alerts the events above left: the timer's
        read of the open alerts (first with the index rows of the just-resolved ones to drop,
        then as every later run), and the removal of the resolved ones once due."""
        from datetime import datetime, timedelta

        from shared.adapters.state_store import AzureTables, TableStateStore, table_requests
        from shared.domain.retention import STALE_INDEX_GRACE

        later = datetime.now(UTC) + timedelta(days=31)
        store = TableStateStore(
            AzureTables(connection_string=self.azurite.connection_string, prefix=self.env["STATE_TABLE_PREFIX"]),
            clock=lambda: later,
        )
        try:
            figures = []
            for _ in range(2):
                before = table_requests()
                found = await store.list_open_alerts(prune_before=later - STALE_INDEX_GRACE)
                figures.append((len(found), table_requests() - before))
            before = table_requests()
            report = await store.remove_due(later)
            removal = table_requests() - before
        finally:
            await store.close()
        removed = report.removed.get("alert", 0)
        print(
            f" lifecycle: the timer's open-alert read: {figures[0][0]} open, {figures[0][1]} requests with "
            f"{removed} resolved to drop from the index, "
            f"{figures[1][1]} requests after; removing {removed} resolved alerts and their cards: {removal} "
            f"requests ({removal / max(removed, 1):.2f} per alert)",
            flush=True,
        )
        self.results["timer_open_read_requests"] = figures[1][1]
        self.results["index_prune_requests_per_alert"] = round((figures[0][1] - figures[1][1]) / max(removed, 1), 2)
        self.results["removal_requests_per_alert"] = round(removal / max(removed, 1), 2)

    async def fanout(self) -> None:
        await self.start_workers(self.args.processes)
        tenant = tenant_id("fanout")
        await self.conversations(tenant, self.args.fanout)
        start = time.monotonic()
        self.publish([event(tenant, "FAN-001", 1)])
        deadline = start + 300
        while len(self.sends(tenant)) < self.args.fanout and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        sends = self.sends(tenant)
        seconds = (max(s[0] for s in sends) - min(s[0] for s in sends)) if sends else float("nan")
        assert self.sim.limits is not None
        rps = len(sends) / seconds if seconds else float("nan")
        busiest = self.sim.limits.max_in_window(1.0, tenant_id=tenant)
        scaled = azure_instances(self.args.fanout, int(service_bus()["maxConcurrentSessions"]))
        print(
            (
                f"   fan-out: {len(sends)} conversations in {seconds:.1f} s, {rps:.1f} requests/s, at most "
                f"{busiest} in any 1 s (Teams: 50 per tenant); {self.args.processes} instances (target-based "
                f"scaling would ask for {scaled} for {self.args.fanout} waiting jobs)"
            ),
            flush=True,
        )
        self.results["fanout_rps"] = round(rps, 1)
        self.results["fanout_max_1s"] = busiest
        self.results["fanout_instances"] = self.args.processes
        self.results["fanout_azure_instances"] = scaled
        await self.idle()

    def _visible(self, conversation_id: str) -> int:
        conversation = self.sim.state.get_conversation(conversation_id)
        if conversation is None:
            return 0
        individual, in_summary = 0, 0
        for activity in conversation.activities:
            text = json.dumps(activity.current.get("attachments") or [])
            found = _SUMMARY.search(text)
            if found:
                in_summary = max(in_summary, int(found.group(1).replace(",", "")))
            elif _ALERT_CARD in text:
                individual += 1
        self.last_visible = (individual, in_summary)
        return individual + in_summary

    async def storm(self) -> None:
        await self.start_workers(self.args.processes)
        tenant = tenant_id("storm")
        [channel] = await self.conversations(tenant, 1)
        count = self.args.storm
        severities = ("critical", "high", "medium", "low", "info")
        azurite_cpu = self.azurite_cpu()
        before = [await worker.stats() for worker in self.workers]
        last = self.publish([event(tenant, f"S-{i:05d}", 1, severity=severities[i % 5]) for i in range(count)])
        visible_at = None
        deadline = last + STORM_TIMEOUT_SECONDS
        shown = last
        while time.monotonic() < deadline:
            visible = self._visible(channel)
            if visible_at is None and visible >= count:
                visible_at = time.monotonic()
            if visible_at is not None and self.broker.idle():
                break
            if time.monotonic() - shown >= 10:
                shown = time.monotonic()
                queues = self.broker.counts()
                print(
                    f"           … {shown - last:5.0f} s: {visible} of {count} visible; events waiting "
                    f"{queues['alert-events']['readyMessageCount']}, "
                    f"jobs waiting {queues.get('teams-deliveries', {}).get('readyMessageCount', 0)}",
                    flush=True,
                )
            await asyncio.sleep(0.25)
        assert self.sim.limits is not None
        limits = self.sim.limits
        sent = len([s for s in limits.sends if s[2] == channel])
        windows = [limits.max_in_window(span, conversation_id=channel) for span in (1.0, 30.0, 3600.0)]
        refused = limits.refusals.get(channel, 0)
        visible = self._visible(channel)
        hidden = count - visible  # neither its own card nor counted in the summary as Teams last got it
        stored = {state.alert_id for state in await self.store.list_open_alerts(tenant)}
        lost = sum(1 for i in range(count) if f"S-{i:05d}" not in stored)  # the connector has no record of it
        dead = self.broker.dead_lettered()
        seconds = (visible_at - last) if visible_at is not None else float("nan")
        azurite_cpu = self.azurite_cpu() - azurite_cpu
        by_table: dict[str, int] = {}
        app_cpu = 0.0
        for worker, was in zip(self.workers, before, strict=True):
            now = await worker.stats()
            app_cpu += now["cpu"] - was["cpu"] - (now["host_cpu"] - was["host_cpu"])
            for name, requests in now["by_table"].items():
                by_table[name] = by_table.get(name, 0) + requests - was["by_table"].get(name, 0)
        print(
            f"     storm: {count} alerts into one channel, {self.args.processes} processes: {sent} messages "
            "sent; busiest windows "
            f"{windows[0]}/1 s, {windows[1]}/30 s, {windows[2]}/3600 s (Teams: 7, 60, 1,800); {refused} × 429; "
            "every alert visible "
            f"{seconds:.1f} s after the last arrived; {hidden} hidden; {lost} lost; {dead} dead-lettered; "
            "Azurite (one thread, "
            "on the same cores) "
            f"used {azurite_cpu:.0f} s of CPU meanwhile ({self.last_visible[0]} cards, {self.last_visible[1]} "
            f"in the summary); {self.args.processes} instances (target-based scaling would ask for "
            f"{azure_instances(count, int(service_bus()['maxMessageBatchSize']))} for {count} waiting events)",
            flush=True,
        )
        print(
            f"            app CPU (all instances): {app_cpu:.0f} s, {app_cpu / count * 1000:.1f} ms per alert; "
            "Table requests per alert: "
            + ", ".join(f"{name} {n / count:.2f}" for name, n in sorted(by_table.items(), key=lambda kv: -kv[1]) if n),
            flush=True,
        )
        if hidden:
            await self.explain_hidden(tenant, channel, count)
        if lost:
            await self.explain_lost(tenant, channel, [f"S-{i:05d}" for i in range(count) if f"S-{i:05d}" not in stored])
        self.results["storm_instances"] = self.args.processes
        self.results["storm_azure_instances"] = azure_instances(count, int(service_bus()["maxMessageBatchSize"]))
        self.results["storm_azurite_cpu_s"] = round(azurite_cpu, 1)
        self.results["storm_app_cpu_s"] = round(app_cpu, 1)
        self.results.update(
            storm_alerts=count,
            storm_max_1s=windows[0],
            storm_max_30s=windows[1],
            storm_max_3600s=windows[2],
            storm_429=refused,
            storm_hidden=hidden,
            storm_lost=lost,
            storm_dead_lettered=dead,
            storm_visible_s=round(seconds, 1),
        )

    async def explain_hidden(self, tenant: str, channel: str, count: int) -> None:
        """Where the hidden alerts are, as the store has them: how many have a card, a folded
        delivery, a summary member, and what the saved summary counts and last drew."""
        from shared.domain.events import alert_key

        posted, folded, members, neither = 0, 0, 0, []
        for start in range(0, count, 50):
            keys = [alert_key(SOURCE, f"S-{i:05d}") for i in range(start, min(count, start + 50))]
            rows = await asyncio.gather(*(self.store.get_delivery(tenant, key, channel) for key in keys))
            counted = await asyncio.gather(*(self.store.get_summary_member(tenant, channel, key) for key in keys))
            for i, (delivery, member) in enumerate(zip(rows, counted, strict=True)):
                posted += bool(delivery and delivery.activity_id)
                folded += bool(delivery and delivery.status == "folded")
                members += member is not None
                if not (delivery and delivery.activity_id) and member is None:
                    neither.append(f"S-{start + i:05d}")
        _, summary, _ = await self.store.get_pacing(tenant, channel)
        summary = summary or {}
        print(
            f"    hidden: the store has {posted} cards, {folded} folded deliveries, {members} summary members; "
            f"the summary counts {sum(summary.get('counts', {}).values())} (seq {summary.get('seq')}, drawn at "
            f"{summary.get('rendered')}); neither card nor member: {neither[:20]}",
            flush=True,
        )

    async def explain_lost(self, tenant: str, channel: str, lost: list[str]) -> None:
        """What the store has of alerts missing from the open-alert read: the alert row (and its
        status), a card or folded delivery, a summary member."""
        from shared.domain.events import alert_key

        for alert_id in lost[:5]:
            key = alert_key(SOURCE, alert_id)
            state = await self.store.get_alert(tenant, key)
            delivery = await self.store.get_delivery(tenant, key, channel)
            member = await self.store.get_summary_member(tenant, channel, key)
            print(
                f"      lost {alert_id}: alert row {state.status if state else 'none'}; delivery "
                f"{delivery.status if delivery else 'none'}; summary member {'yes' if member else 'no'}",
                flush=True,
            )

    async def race(self) -> None:
        await self.start_workers(self.args.processes)
        count = self.args.race
        per = 10
        tenants = [tenant_id(f"race{i}") for i in range(count // per)]
        for tenant in tenants:
            await self.conversations(tenant, 1)
        bodies = []
        for tenant in tenants:
            for i in range(per):
                alert = f"R-{i:03d}"
                bodies += [
                    event(tenant, alert, 1),
                    event(tenant, alert, 2, "alert.acknowledged"),
                    event(tenant, alert, 3, "alert.resolved"),
                ]
        random.Random(7).shuffle(bodies)
        for _ in range(count // 10):  # injected faults: Teams answers 502 to some sends and updates
            self.sim.add_fault(None, r"/v3/conversations/19:race", status=502, times=1)
        self.publish(bodies)
        await self.idle()
        correct = cardless = 0
        for tenant in tenants:
            conversation = self.sim.state.get_conversation(f"19:{tenant}-0000@thread.tacv2")
            cards = [a.current.get("attachments") or [] for a in (conversation.activities if conversation else [])]
            for i in range(per):
                shown = [c for c in cards if f"R-{i:03d}" in json.dumps(c) and shown_status(c) is not None]
                correct += len(shown) == 1 and shown_status(shown[0]) == "Resolved"
                cardless += not shown  # its resolution was processed first: no card, by design
        wrong = count - correct - cardless
        print(
            f"      race: {correct} of {count} alerts end with one card showing the last state, {cardless} "
            "with no card (their resolution "
            f"was processed first: an alert first seen resolved gets none), {wrong} wrong (3 events per alert, "
            "shuffled, concurrent, "
            f"{count // 10} injected 502s)",
            flush=True,
        )
        self.results["race_alerts"] = count
        self.results["race_correct"] = correct
        self.results["race_cardless"] = cardless
        self.results["race_wrong"] = wrong

    async def patterns(self) -> None:
        """What a catastrophic label pattern costs an event: a workflow selecting ``(a+)+$`` (2^n
        steps for a backtracking engine) routing an alert whose label is 1,024 a's and a "!"."""
        import time as clock

        from shared.domain import workflows as routing
        from shared.domain.model import AlertState

        tenant = tenant_id("patterns")
        workflow = routing.parse_workflow(
            {
                "name": "pattern",
                "trigger": "new_or_updated",
                "match": {"labels": [{"key": "service", "op": "regex", "value": "(a+)+$"}]},
                "recipients": [{"kind": "chat", "chatId": "19:x@thread.v2"}],
                "fallbackRecipients": [{"kind": "chat", "chatId": "19:y@thread.v2"}],
            },
            tenant,
            "pattern",
        )
        state = AlertState(
            tenant_id=tenant,
            key="k",
            alert_id="A-1",
            source="s",
            event_source="e",
            title="t",
            status="open",
            severity="high",
            labels={"service": "a" * 1024 + "!"},
        )
        routing.plan(state, "new", [workflow])
        rounds = 2000
        started = clock.process_time()
        for _ in range(rounds):
            assert not routing.plan(state, "new", [workflow]).targets
        per_event = (clock.process_time() - started) * 1000 / rounds
        print(f"  patterns: (a+)+$ over a 1,025-character label: {per_event:.3f} ms CPU per event to route", flush=True)
        self.results["pattern_ms_per_event"] = round(per_event, 3)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storm", type=int, default=10_000)
    parser.add_argument("--fanout", type=int, default=500)
    parser.add_argument("--race", type=int, default=200)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--events-instances", type=int, default=1, help="instances for the events scenario")
    scenarios = ("events", "lifecycle", "patterns", "fanout", "race", "storm")
    parser.add_argument(
        "--only", default=",".join(scenarios), help=f"the scenarios to run, comma-separated ({', '.join(scenarios)})"
    )
    args = parser.parse_args()
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    if unknown := set(only) - set(scenarios):
        parser.error(f"--only: no scenario {', '.join(sorted(unknown))}; there are {', '.join(scenarios)}")
    if "lifecycle" in only and "events" not in only:
        parser.error("--only: lifecycle reads the alerts the events scenario leaves; add events")
    sys.path.insert(0, str(ROOT))
    async with Bench(args) as bench:
        runs = {
            "events": bench.cpu_per_event,
            "lifecycle": bench.lifecycle,
            "patterns": bench.patterns,
            "fanout": bench.fanout,
            "race": bench.race,
            "storm": bench.storm,
        }
        for name in scenarios:
            if name in only:
                await runs[name]()
        print(json.dumps(bench.results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
