"""Run the connector locally on its embedded defaults: Azurite, the local Functions host,
Microsoft 365 Agents Playground and the Teams simulator's Microsoft 365 (identity and Graph),
all on loopback. Ctrl-C stops everything.

    python -m tools.run_local [--keep] [--port 7071] [--playground-port 56150] [--azurite-port 10002]

Each run starts from an empty local state (the Playground forgets its messages too), unless
``--keep`` (``make run KEEP=1``). Then open http://localhost:56150 to chat with the bot, and
publish an example in another terminal:  make publish FILE=examples/alert-created.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "node_modules" / ".bin"
STATE_DIR = ROOT / ".local"
# What a run keeps for the next one with --keep, and what `make publish` reads to find the
# host and its admin key: keys are made for each fresh run, never written to the repo.
RUN_FILE = STATE_DIR / "run.json"
AZURITE_TABLE_PORT = 10002  # the port UseDevelopmentStorage=true expects
PLAYGROUND_PORT = 56150
# Azurite's well-known development account (public, documented by Microsoft for the emulator).
_AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# The Playground's organisation: its people, team, channels (one kept spare), and fixed chat ids
# (it makes new ones at every start otherwise, and the conversations the connector remembered
# from the last run would be gone).
PLAYGROUND_CONFIG = Path(__file__).resolve().parent / "playground.yml"
# The Microsoft 365 group id of the Playground's built-in team ("My Team") in the pinned
# @microsoft/m365agentsplayground (package.json); the run checks it against the Playground's
# configuration and says so if a new version changed it.
PLAYGROUND_TEAM_GROUP_ID = "00000000-0000-0000-0000-000000000031"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_for(port: int, name: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} stopped during start-up (exit code {process.returncode}); see its output above")
        if _port_open(port):
            return
        time.sleep(0.2)
    raise SystemExit(f"{name} did not listen on port {port} within {timeout:.0f} s")


def run_keys(keep: bool) -> dict[str, str]:
    """The local run's keys: new for a fresh run; the last run's with --keep (stored tokens
    stay readable). ADMIN_API_KEY from the environment or local.settings.json wins."""
    from shared.security import new_key
    from tools.localhost.settings import lookup_setting

    previous: dict[str, str] = {}
    if keep and RUN_FILE.exists():
        previous = json.loads(RUN_FILE.read_text(encoding="utf-8")).get("keys", {})
    keys = {
        "ADMIN_API_KEY": lookup_setting("ADMIN_API_KEY") or previous.get("ADMIN_API_KEY") or secrets.token_urlsafe(24),
        "TOKEN_ENCRYPTION_KEY": previous.get("TOKEN_ENCRYPTION_KEY") or new_key(),
        "STATE_SIGNING_KEY": previous.get("STATE_SIGNING_KEY") or new_key(),
        "GRAPH_CLIENT_SECRET": previous.get("GRAPH_CLIENT_SECRET") or secrets.token_urlsafe(24),
    }
    return keys


def reset_state() -> None:
    """Forget everything a local run stored (make reset; every run without --keep)."""
    shutil.rmtree(STATE_DIR, ignore_errors=True)


LOCK_NAME = "run.lock"  # in STATE_DIR: the run that owns the local state, with its processes and ports


def running_holder() -> dict | None:
    """The run that holds this checkout's local state, if it is still running (its process is
    alive); a lock left by a run that died is no one's."""
    try:
        holder = json.loads((STATE_DIR / LOCK_NAME).read_text(encoding="utf-8"))
        os.kill(int(holder["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return dict(holder)


def describe_holder(holder: dict) -> str:
    ports = ", ".join(f"{name} {port}" for name, port in (holder.get("ports") or {}).items())
    return f"a run of this checkout (PID {holder.get('pid')}; {ports}; host {holder.get('host')}) holds {STATE_DIR}"


def claim_state(host_url: str, ports: dict[str, int]) -> None:
    """Hold the local state for this run: one run at a time per checkout, whatever its ports, so
    a second run never resets the state under a live one. SystemExit naming the holder."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(STATE_DIR / LOCK_NAME, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        holder = running_holder()
        if holder is not None:
            raise SystemExit(f"{describe_holder(holder)}: stop it first (Ctrl-C in its terminal)") from None
        (STATE_DIR / LOCK_NAME).unlink(missing_ok=True)  # left by a run that died
        return claim_state(host_url, ports)
    with os.fdopen(descriptor, "w", encoding="utf-8") as lock:
        json.dump({"pid": os.getpid(), "host": host_url, "ports": ports}, lock)


def release_state() -> None:
    holder = running_holder()
    if holder is not None and holder.get("pid") == os.getpid():
        (STATE_DIR / LOCK_NAME).unlink(missing_ok=True)


def _save_run(run: dict) -> None:
    """What make publish reads of this run (.local/run.json: its host, token, keys, tenant)."""
    RUN_FILE.write_text(json.dumps(run, indent=2), encoding="utf-8")
    RUN_FILE.chmod(0o600)


def stop_in_order(processes: list[tuple[str, subprocess.Popen]], timeout: float = 10.0) -> None:
    """Stop the run's processes one at a time, the last started first: the host ends what it is
    running (a consent callback, a delivery) while Azurite, which it writes to, is still there,
    so a Ctrl-C at any moment prints no failures of work cut short."""
    for _, process in reversed(processes):
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()


def _connect_playground_tenant(
    simulator, playground_url: str, host_url: str, admin_key: str, channel_team: str
) -> tuple[str, str | None]:
    """Seed the simulator with the Playground's organisation and connect it (admin consent):
    (what to say of it, the tenant id when connected)."""
    from tools.local_m365 import connect_tenant, playground_config, seed

    try:
        config = playground_config(playground_url)
        seed(simulator.directory, config, playground_url)
        answer = connect_tenant(host_url, admin_key, simulator.ca_file)
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        return (
            f"the Playground's tenant could not be connected: {exc} (Create channel and Create meeting will say so)",
            None,
        )
    groups = [team.get("aadGroupId") for team in config.get("teams") or []]
    if channel_team not in groups:
        answer += (
            f"; note: ALERT_CHANNEL_TEAM_ID {channel_team} is not the Playground's team "
            f"({', '.join(map(str, groups)) or 'none'})"
        )
    return (
        f"{answer}: the Playground's tenant, by admin consent to the local identity simulator (Graph at "
        f"{simulator.graph_url})",
        str(config["tenantId"]),
    )


class _Alerting:
    """Prometheus and Alertmanager (tools/alerting_loop.py) on an event loop of their own, for a
    person to try the loop with a real source; or why they did not start."""

    def __init__(self, why_not: str = "") -> None:
        self.why_not = why_not
        self.loop: Any = None
        self._stop: Any = None
        self._thread: threading.Thread | None = None
        self._aio: asyncio.AbstractEventLoop | None = None

    def start(self, webhook_url: str, key: str) -> None:
        from tools.alerting_loop import AlertingLoop

        ready = threading.Event()

        async def hold() -> None:
            self._aio = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                async with AlertingLoop(webhook_url, key) as loop:
                    self.loop = loop
                    ready.set()
                    await self._stop.wait()
            except Exception as exc:  # noqa: BLE001 - said on the console instead
                self.why_not = str(exc).splitlines()[0]
                ready.set()

        self._thread = threading.Thread(target=asyncio.run, args=(hold(),), name="alerting-loop", daemon=True)
        self._thread.start()
        ready.wait(90)

    def describe(self) -> str:
        if self.loop is None:
            return f"  Alertmanager:        not started: {self.why_not or 'it did not become ready'}"
        from tools.alerting_loop import ALERT_NAME

        return (
            f"  Alertmanager:        {self.loop.alertmanager_url}   (Prometheus {self.loop.prometheus_url}, rule "
            f"{ALERT_NAME})\n"
            f"                       fire it:  curl -X POST '{self.loop.metrics_url}/failing?value=1'\n"
            f"                       clear it: curl -X POST '{self.loop.metrics_url}/failing?value=0'"
        )

    def stop(self) -> None:
        if self._aio is not None and self._stop is not None:
            self._aio.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(20)


def _start_alerting(host_url: str, admin_key: str, tenant: str | None) -> _Alerting:
    """The pair, sending to the ingest route of source "prometheus" of the connected tenant."""
    if not tenant:
        return _Alerting("the Playground's tenant is not connected, so there is no tenant to send for")
    from shared.security import tenant_admin_key

    request = urllib.request.Request(
        f"{host_url}/api/tenants/{tenant}/sources/prometheus",
        headers={"X-Admin-Key": tenant_admin_key(admin_key, tenant)},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            setup = json.loads(answer.read())
    except (OSError, ValueError) as exc:
        return _Alerting(f"the source's key could not be read: {exc}")
    url = setup["urls"]["alertmanager"]
    alerting = _Alerting()
    alerting.start(host_url + url[url.index("/api/") :], setup["key"])
    return alerting


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7071, help="local Functions host port (default 7071)")
    parser.add_argument(
        "--playground-port",
        type=int,
        default=PLAYGROUND_PORT,
        help=f"Agents Playground port (default {PLAYGROUND_PORT})",
    )
    parser.add_argument(
        "--azurite-port",
        type=int,
        default=AZURITE_TABLE_PORT,
        help=f"Azurite table port (default {AZURITE_TABLE_PORT})",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the last run's state (alerts, conversations, keys) instead of starting empty",
    )
    parser.add_argument("--no-playground", action="store_true", help="do not start Agents Playground")
    parser.add_argument(
        "--with-alertmanager",
        action="store_true",
        help="also start Prometheus and Alertmanager on loopback, sending to this tenant's ingest route",
    )
    parser.add_argument("--reset", action="store_true", help="delete the local state (.local/) and exit")
    args = parser.parse_args(argv)
    holder = running_holder()
    if holder is not None:
        what = "make reset would remove the state under it" if args.reset else "one run at a time per checkout"
        print(f"{describe_holder(holder)} ({what}): stop it first (Ctrl-C in its terminal)", file=sys.stderr)
        return 1
    if args.reset:
        existed = STATE_DIR.exists()
        reset_state()
        print(
            f"Local state removed ({STATE_DIR})."
            if existed
            else f"No local state to remove ({STATE_DIR} does not exist)."
        )
        return 0

    for tool in ("azurite-table", "agentsplayground"):
        if not (BIN / tool).exists():
            raise SystemExit(f"{BIN / tool} is missing: run 'npm ci' first (make run does it)")
    ports = {"Azurite": args.azurite_port, "the local Functions host": args.port}
    if not args.no_playground:
        ports["Agents Playground"] = args.playground_port
    busy = [f"{port} ({name})" for name, port in ports.items() if _port_open(port)]
    if busy:
        raise SystemExit(
            f"port(s) {', '.join(busy)} already in use: is the connector already running? "
            "(--port, --playground-port and --azurite-port choose others)"
        )

    keys = run_keys(args.keep)
    if not args.keep:
        # The Playground keeps no messages between runs: neither does the connector, or the
        # walkthrough's alert would be "processed before" and its card's update would fail.
        reset_state()
    host_url = f"http://127.0.0.1:{args.port}"
    claim_state(host_url, dict(ports))
    (STATE_DIR / "azurite").mkdir(parents=True, exist_ok=True)
    host_token = secrets.token_urlsafe(24)  # a new one each run: the management API's writes need it
    playground_url = f"http://localhost:{args.playground_port}"
    processes: list[tuple[str, subprocess.Popen]] = []

    def stop_on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # the children are in sessions of their own: stop them in order

    # Ctrl-C, a closed terminal or a kill all stop everything (a shell that started this in
    # the background may have set SIGINT to be ignored: it is taken back).
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop_on_signal)
    simulator = None
    alerting: _Alerting | None = None

    def start(name: str, command: list[str], env: dict | None = None) -> subprocess.Popen:
        print(f"» starting {name}: {' '.join(command)}", flush=True)
        # Its own session: Ctrl-C reaches this process only, which then stops the others in
        # order (a child that died of the same Ctrl-C first would read as a failure).
        process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
        processes.append((name, process))
        return process

    try:
        azurite = start(
            "Azurite (tables)",
            [
                str(BIN / "azurite-table"),
                "--tableHost",
                "127.0.0.1",
                "--tablePort",
                str(args.azurite_port),
                "--location",
                str(STATE_DIR / "azurite"),
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--silent",
            ],
        )
        _wait_for(args.azurite_port, "Azurite", azurite)

        # Microsoft 365 on loopback: the identity platform and Graph of the Teams simulator.
        from tools.local_m365 import LOCAL_GRAPH_APP_ID, LOCAL_TEAMS_APP_CATALOG_ID
        from tools.teams_simulator import TeamsSimulator

        simulator = TeamsSimulator().start()
        simulator.directory.register_app(LOCAL_GRAPH_APP_ID, keys["GRAPH_CLIENT_SECRET"])
        env = {
            **os.environ,
            **keys,
            "GRAPH_APP_ID": LOCAL_GRAPH_APP_ID,
            # The app in the local Microsoft 365's Teams app catalog: people and groups are reached
            # by installing it (the Playground's personal chat and group chat, tools/local_m365.py).
            "TEAMS_APP_CATALOG_ID": LOCAL_TEAMS_APP_CATALOG_ID,
            "GRAPH_CREDENTIAL_TYPE": "secret",
            "GRAPH_BASE_URL": simulator.graph_url,
            "AUTHORITY_HOST": simulator.authority_host,
            "LOCAL_CA_CERT_FILE": simulator.ca_file,
            "PUBLIC_BASE_URL": f"http://localhost:{args.port}",
            # The bot's Teams is the Playground: a conversation the connector starts (a person's
            # chat, a channel) before the bot has heard from the Playground goes there too.
            "TEAMS_SERVICE_URL": f"http://localhost:{args.playground_port}/_connector",
            # The app writes to the host's queues with this run's token (basic auth from the URL).
            "LOCAL_HOST_TOKEN": host_token,
            "LOCAL_QUEUE_HOST_URL": host_url.replace("://", f"://local:{host_token}@", 1),
        }
        if args.azurite_port != AZURITE_TABLE_PORT:
            tables = (
                f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={_AZURITE_KEY};"
                f"TableEndpoint=http://127.0.0.1:{args.azurite_port}/devstoreaccount1;"
            )
            env |= {"STATE_TABLES_CONNECTION": tables, "AzureWebJobsStorage": tables}
        # Create channel makes alert channels in the Playground's team (from a personal chat too).
        env.setdefault("ALERT_CHANNEL_TEAM_ID", PLAYGROUND_TEAM_GROUP_ID)
        # The queues drop a resent message id, as the deployed ones do (infra/app/servicebus.bicep).
        dedupe = [
            arg
            for queue in ("alert-events", "teams-deliveries", "teams-actions")
            for arg in ("--duplicate-detection", queue)
        ]
        host = start(
            "local Functions host", [sys.executable, "-m", "tools.localhost", "--port", str(args.port), *dedupe], env
        )
        _wait_for(args.port, "the local Functions host", host)
        run = {"host": host_url, "hostToken": host_token, "playground": playground_url, "keys": keys}
        _save_run(run)
        connected = "not connected (no Playground)"
        if not args.no_playground:
            playground_env = {
                **os.environ,
                "TEAMSAPPTESTER_BROWSER": "none",
                "M365_AGENTS_PLAYGROUND_CONFIG_PATH": str(PLAYGROUND_CONFIG),
            }
            playground = start(
                "Agents Playground",
                [
                    str(BIN / "agentsplayground"),
                    "-e",
                    f"{host_url}/api/messages",
                    "-p",
                    str(args.playground_port),
                    "-c",
                    "msteams",
                    "--disable-telemetry",
                ],
                playground_env,
            )
            _wait_for(args.playground_port, "Agents Playground", playground)
            connected, tenant = _connect_playground_tenant(
                simulator,
                f"http://127.0.0.1:{args.playground_port}",
                host_url,
                keys["ADMIN_API_KEY"],
                env["ALERT_CHANNEL_TEAM_ID"],
            )
            if tenant:  # make publish posts for it, and saves workflows for it
                _save_run({**run, "tenant": tenant})
            if args.with_alertmanager:
                alerting = _start_alerting(host_url, keys["ADMIN_API_KEY"], tenant)
        print(
            "\nTeams Alert Connector is running locally"
            + (" (state kept from the last run)" if args.keep else " (fresh state)")
            + ".\n"
            f"  Chat with the bot:   {playground_url}   (opening it installs the bot; type 'help')\n"
            "                       Open it before publishing: alerts go where the bot is installed.\n"
            "  Publish an alert:    make publish FILE=examples/alert-created.json\n"
            "                       make publish FILE=examples/alert-resolved.json\n"
            "  Route alerts:        make publish FILE=examples/workflows/prod-critical.json   (the README's step 6)\n"
            f"  Admin console:       http://localhost:{args.port}/api/console/   (Sign in with Microsoft: pick "
            "the Playground's user, a Global Administrator here, or another, who is refused)\n"
            f"  Host's queues:       {host_url}/_localhost/console   (queues, message bodies, outcomes, "
            "rejected events)\n"
            f"  Microsoft 365:       {connected}\n"
            f"  Admin key:           {keys['ADMIN_API_KEY']}   (X-Admin-Key for the operator routes; in "
            f"{RUN_FILE.relative_to(ROOT)})\n"
            + (f"{alerting.describe()}\n" if alerting is not None else "")
            + "  Stop:                Ctrl-C   (make run KEEP=1 keeps this run's state for the next)\n",
            flush=True,
        )
        while all(p.poll() is None for _, p in processes):
            time.sleep(0.5)
        stopped = next(name for name, p in processes if p.poll() is not None)
        print(f"{stopped} stopped; stopping the rest", flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        # A second Ctrl-C (or the signal again from a wrapper) must not cut the stopping short.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        if alerting is not None:
            alerting.stop()
        if simulator is not None:
            simulator.stop()
        stop_in_order(processes)
        release_state()  # once nothing of this run writes to the state any more


if __name__ == "__main__":
    sys.exit(main())
