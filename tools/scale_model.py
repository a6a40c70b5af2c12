"""The scale model of docs/SCALE.md: what 1, 100 and 10,000 tenants with 1k, 100k and 1M
alerts a day cost in Table Storage, Service Bus, Teams and Functions, and which limit binds
first. Its inputs are the figures ``make bench`` measures (MEASURED below, or a bench run's
JSON line with ``--bench``), so the model's numbers are measured, not guessed.

    python -m tools.scale_model                      # print the tables
    python -m tools.scale_model --bench last.json    # from another bench run
    python -m tools.scale_model --write              # rewrite them in docs/SCALE.md

Development tool; not deployed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "SCALE.md"
BEGIN, END = "<!-- scale-model:begin -->", "<!-- scale-model:end -->"

# `make bench` (tools/bench) on 2026-12-08, at 808c4ab: Table Storage requests per event that reaches one
# conversation, per table, and what the open-alert index and removal cost per alert.
MEASURED: dict = {
    "table_requests_per_event_by_table": {
        "created": {
            "alerts": 1.0,
            "workflows": 0.05,
            "conversations": 0.05,
            "deliveries": 2.0,
            "budget": 0.1,
        },
        "updated": {
            "alerts": 2.0,
            "workflows": 0.1,
            "conversations": 0.1,
            "deliveries": 4.0,
            "budget": 0.1,
        },
        "resolved": {
            "alerts": 2.0,
            "workflows": 0.05,
            "conversations": 0.05,
            "deliveries": 4.0,
            "budget": 0.05,
            "expiry": 1.0,
        },
        "duplicate": {
            "alerts": 1.0,
            "deliveries": 2.1,
        },
    },
    "index_prune_requests_per_alert": 3.0,
    "removal_requests_per_alert": 5.09,
    "cpu_ms_per_event": 3.43,
}

# Tables whose requests repeat for every conversation an event reaches (stage 2, the card).
PER_CONVERSATION_TABLES = ("deliveries", "budget", "summarymembers")

# What one alert is, in this model (docs/PERFORMANCE.md; docs/SCALE.md: Assumptions).
EVENTS = {"created": 1, "updated": 1, "resolved": 1, "duplicate": 1}
CONVERSATIONS_PER_ALERT = 2
PEAK_FACTOR = 5  # the busiest hour against the day's average
OPEN_HOURS = 1.0  # how long an alert stays open, on average
WORKFLOWS_PER_TENANT = 3
ALERT_PARTITIONS = 8  # a tenant's alerts and their open-alert index rows (shared/adapters/records.py)
TENANT_LISTED_HOURS = 2  # a tenant stays in the timer's list this long after it was last listed (retention.py)
TIMER_RUNS_PER_DAY = 288  # PERIODIC_SCHEDULE every 5 minutes
RESOLVED_RETENTION_DAYS = 30
BYTES_PER_ALERT = 2_000 + CONVERSATIONS_PER_ALERT * 1_000 + 500  # alert, its deliveries, index and schedule rows

# Azure's limits (Microsoft's docs; FACTS.md).
TABLE_ACCOUNT_RPS = 20_000  # Table Storage: requests per second per account (1 KiB entities)
TABLE_PARTITION_EPS = 2_000  # entities per second per partition
SERVICE_BUS_STANDARD_CREDITS = 1_000  # credits per second per Standard namespace; send/receive 1 per message
TEAMS_TENANT_RPS = 50  # bot messages per second per app per tenant
TEAMS_CONVERSATION_PER_HOUR = 1_800  # bot messages per conversation per hour

# List prices, USD, pay-as-you-go, East US (Azure pricing pages as published in 2025; they
# could not be re-checked from this network on 2026-11-23: check the pricing calculator).
PRICE_TABLE_PER_10K = 0.00036  # Table Storage (LRS) transactions
PRICE_TABLE_GB_MONTH = 0.045  # Table Storage (LRS) capacity
PRICE_SB_STANDARD_BASE = 9.81  # Service Bus Standard, per namespace-month (13M operations included)
PRICE_SB_TIERS = ((13e6, 0.0), (100e6, 0.80), (2_500e6, 0.50), (float("inf"), 0.20))  # per million operations
PRICE_SB_PREMIUM_MU = 677.08  # Service Bus Premium, per messaging unit-month
PRICE_FLEX_GB_S = 0.000026  # Flex Consumption on-demand execution time
PRICE_FLEX_PER_MILLION = 0.40  # Flex Consumption on-demand executions
FLEX_FREE_GB_S, FLEX_FREE_EXECUTIONS = 100_000, 250_000  # monthly free grant per subscription
FLEX_INSTANCE_GB = 2.048
# Flex bills an instance's memory for the time it runs at least one execution. An execution
# takes about 0.1 s of wall time (mostly waiting on Table Storage and Teams), and an instance
# runs up to 8 at once (host.json maxConcurrentSessions), but never less than its CPU time.
SECONDS_PER_EXECUTION = 0.1
EXECUTIONS_PER_INSTANCE = 8
DAYS_PER_MONTH = 30.4


@dataclass(frozen=True)
class PerAlert:
    table_requests: float
    service_bus_messages: float
    teams_requests: float
    executions: float
    cpu_seconds: float
    removal_and_prune: float


def per_alert(measured: dict, conversations: int = CONVERSATIONS_PER_ALERT) -> PerAlert:
    by_table = measured["table_requests_per_event_by_table"]
    requests = 0.0
    for phase, count in EVENTS.items():
        for table, n in by_table[phase].items():
            requests += count * n * (conversations if table in PER_CONVERSATION_TABLES else 1)
    requests += measured["index_prune_requests_per_alert"] + measured["removal_requests_per_alert"]
    events = sum(EVENTS.values())
    changes = events - EVENTS["duplicate"]  # a duplicate changes no card
    jobs = changes * conversations
    return PerAlert(
        table_requests=requests,
        service_bus_messages=events + jobs,  # each sent once and received once
        teams_requests=jobs,
        executions=events + jobs,  # an upper bound: jobs of one conversation run in one batch when they queue up
        cpu_seconds=events * measured["cpu_ms_per_event"] / 1000,
        removal_and_prune=measured["index_prune_requests_per_alert"] + measured["removal_requests_per_alert"],
    )


def service_bus_standard_cost(operations: float) -> float:
    cost, below = PRICE_SB_STANDARD_BASE, 0.0
    for upto, price in PRICE_SB_TIERS:
        band = max(min(operations, upto) - below, 0)
        cost += band / 1e6 * price
        below = upto
    return cost


def scenario(tenants: int, alerts_per_day: int, unit: PerAlert) -> dict:
    per_second = alerts_per_day / 86_400
    peak = per_second * PEAK_FACTOR
    tenant_peak = peak / tenants  # alerts spread evenly over tenants
    month = alerts_per_day * DAYS_PER_MONTH
    table_requests_month = unit.table_requests * month
    sb_operations_month = unit.service_bus_messages * 3 * month  # send, receive, complete
    credits_peak = unit.service_bus_messages * 2 * peak
    executions_month = unit.executions * month
    instance_seconds = max(executions_month * SECONDS_PER_EXECUTION / EXECUTIONS_PER_INSTANCE, unit.cpu_seconds * month)
    gb_s_month = instance_seconds * FLEX_INSTANCE_GB
    stored_gb = alerts_per_day * RESOLVED_RETENTION_DAYS * BYTES_PER_ALERT / 1e9
    standard = credits_peak <= SERVICE_BUS_STANDARD_CREDITS
    sb_cost = service_bus_standard_cost(sb_operations_month) if standard else PRICE_SB_PREMIUM_MU
    limits = {
        "Teams, per tenant (50 rps)": tenant_peak * unit.teams_requests / TEAMS_TENANT_RPS,
        "Service Bus Standard (1,000 credits/s)": credits_peak / SERVICE_BUS_STANDARD_CREDITS,
        "Table Storage account (20,000 rps)": peak * unit.table_requests / TABLE_ACCOUNT_RPS,
        "a tenant's hottest partition (2,000 entities/s)": tenant_peak
        * 2
        * sum(EVENTS.values())
        * CONVERSATIONS_PER_ALERT
        / TABLE_PARTITION_EPS,
    }
    binding, load = max(limits.items(), key=lambda kv: kv[1])
    open_alerts = alerts_per_day * OPEN_HOURS / 24
    # One timer run: the tenant list (a page per 1,000: the tenants with an alert open or opened
    # in the last TENANT_LISTED_HOURS), the open-alert index rows in each listed tenant's alert
    # partitions (a page per 1,000) and a read of each open alert, the workflows (digests; a
    # page per 1,000), the outbox, and this run's share of the removals.
    listed = min(tenants, alerts_per_day * (TENANT_LISTED_HOURS + OPEN_HOURS) / 24)
    timer_requests = (
        (listed // 1000 + 1)
        + listed * ALERT_PARTITIONS
        + open_alerts // 1000
        + open_alerts
        + (tenants * WORKFLOWS_PER_TENANT // 1000 + 1)
        + 1
        + alerts_per_day / TIMER_RUNS_PER_DAY * unit.removal_and_prune
    )
    return {
        "tenants": tenants,
        "alerts_per_day": alerts_per_day,
        "table_rps_peak": peak * unit.table_requests,
        "sb_credits_peak": credits_peak,
        "teams_rps_tenant_peak": tenant_peak * unit.teams_requests,
        "binding": binding,
        "load": load,
        "open_alerts": open_alerts,
        "timer_requests": timer_requests,
        "cost_tables": table_requests_month / 10_000 * PRICE_TABLE_PER_10K + stored_gb * PRICE_TABLE_GB_MONTH,
        "cost_service_bus": sb_cost,
        "service_bus_tier": "Standard" if standard else "Premium, 1 MU",
        "cost_functions": max(gb_s_month - FLEX_FREE_GB_S, 0) * PRICE_FLEX_GB_S
        + max(executions_month - FLEX_FREE_EXECUTIONS, 0) / 1e6 * PRICE_FLEX_PER_MILLION,
        "stored_gb": stored_gb,
    }


def render(measured: dict) -> str:
    unit = per_alert(measured)
    lines = [
        f"Per alert ({sum(EVENTS.values())} events: created, updated, resolved and one duplicate; "
        f"{CONVERSATIONS_PER_ALERT} conversations): "
        f"**{unit.table_requests:.1f}** Table Storage requests, **{unit.service_bus_messages:.0f}** Service "
        "Bus messages "
        f"(each sent and received: {unit.service_bus_messages * 2:.0f} credits), **{unit.teams_requests:.0f}** "
        "Teams requests, "
        f"{unit.cpu_seconds * 1000:.0f} ms of CPU.",
        "",
        f"At a peak of {PEAK_FACTOR}× the average: Service Bus Standard holds up to "
        f"**{SERVICE_BUS_STANDARD_CREDITS / (unit.service_bus_messages * 2) / PEAK_FACTOR * 86_400:,.0f}** "
        "alerts a day; Teams' 50 requests per "
        f"second per tenant hold **{TEAMS_TENANT_RPS / unit.teams_requests / PEAK_FACTOR * 86_400:,.0f}** "
        "alerts a day per tenant "
        f"before the storm summary folds cards.",
        "",
        (
            "| tenants | alerts/day | Table req/s (peak) | Service Bus credits/s (peak) | Teams rps per tenant "
            "(peak) | binds first (share of the limit at peak) | timer run: open alerts, Table requests | Tables "
            "$/month | Service Bus $/month | Functions $/month |"
        ),
        "|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for tenants in (1, 100, 10_000):
        for alerts in (1_000, 100_000, 1_000_000):
            s = scenario(tenants, alerts, unit)
            lines.append(
                f"| {tenants:,} | {alerts:,} | {s['table_rps_peak']:,.1f} | {s['sb_credits_peak']:,.1f} | "
                f"{s['teams_rps_tenant_peak']:,.2f} | "
                f"{s['binding']} ({s['load']:.0%}) | {s['open_alerts']:,.0f}, {s['timer_requests']:,.0f} | "
                f"{s['cost_tables']:,.2f} | {s['cost_service_bus']:,.2f} ({s['service_bus_tier']}) | "
                f"{s['cost_functions']:,.2f} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bench", type=Path, help="a make bench JSON line (its last output line) to use instead of MEASURED"
    )
    parser.add_argument("--write", action="store_true", help="rewrite the tables in docs/SCALE.md")
    args = parser.parse_args()
    measured = {**MEASURED, **json.loads(args.bench.read_text().strip().splitlines()[-1])} if args.bench else MEASURED
    table = render(measured)
    if not args.write:
        print(table)
        return 0
    text = DOC.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:start] + "\n" + table + "\n" + text[end:])
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
