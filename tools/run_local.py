"""Run the connector locally on its embedded defaults: Azurite, the local Functions host and
Microsoft 365 Agents Playground, all on loopback. Ctrl-C stops everything.

    python -m tools.run_local            (what `make run` does)

Then open http://localhost:56150 to chat with the bot, and publish an example in another
terminal:  make publish FILE=examples/alert-created.json
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "node_modules" / ".bin"
STATE_DIR = ROOT / ".local"
AZURITE_TABLE_PORT = 10002  # the port UseDevelopmentStorage=true expects
PLAYGROUND_PORT = 56150
# A fixed personal chat id: the Playground makes a new one at every start otherwise, and the
# conversation the connector remembered from the last run would be gone.
PLAYGROUND_CONVERSATION_ID = "local-personal-chat"


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7071, help="local Functions host port (default 7071)")
    parser.add_argument("--no-playground", action="store_true", help="do not start Agents Playground")
    args = parser.parse_args(argv)

    for tool in ("azurite-table", "agentsplayground"):
        if not (BIN / tool).exists():
            raise SystemExit(f"{BIN / tool} is missing: run 'npm ci' first (make run does it)")
    busy = [p for p in (AZURITE_TABLE_PORT, args.port) + (() if args.no_playground else (PLAYGROUND_PORT,)) if _port_open(p)]
    if busy:
        raise SystemExit(f"port(s) {', '.join(map(str, busy))} already in use: is the connector already running?")

    (STATE_DIR / "azurite").mkdir(parents=True, exist_ok=True)
    processes: list[tuple[str, subprocess.Popen]] = []

    def start(name: str, command: list[str], env: dict | None = None) -> subprocess.Popen:
        print(f"» starting {name}: {' '.join(command)}", flush=True)
        process = subprocess.Popen(command, cwd=ROOT, env=env)
        processes.append((name, process))
        return process

    try:
        azurite = start("Azurite (tables)", [str(BIN / "azurite-table"), "--tableHost", "127.0.0.1", "--tablePort", str(AZURITE_TABLE_PORT),
                                              "--location", str(STATE_DIR / "azurite"), "--skipApiVersionCheck", "--disableTelemetry", "--silent"])
        _wait_for(AZURITE_TABLE_PORT, "Azurite", azurite)
        # The queues drop a resent message id, as the deployed ones do (infra/app/servicebus.bicep).
        dedupe = [arg for queue in ("alert-events", "teams-deliveries", "teams-actions") for arg in ("--duplicate-detection", queue)]
        host = start("local Functions host", [sys.executable, "-m", "tools.localhost", "--port", str(args.port), *dedupe])
        _wait_for(args.port, "the local Functions host", host)
        if not args.no_playground:
            env = {**os.environ, "TEAMSAPPTESTER_BROWSER": "none"}
            playground = start("Agents Playground", [str(BIN / "agentsplayground"), "-e", f"http://127.0.0.1:{args.port}/api/messages",
                                                     "-c", "msteams", "--conversation-id", PLAYGROUND_CONVERSATION_ID, "--disable-telemetry"], env)
            _wait_for(PLAYGROUND_PORT, "Agents Playground", playground)
        print(
            "\nTeams Alert Connector is running locally.\n"
            f"  Chat with the bot:   http://localhost:{PLAYGROUND_PORT}   (opening it installs the bot; type 'help')\n"
            "                       Open it before publishing: alerts go where the bot is installed.\n"
            "  Publish an alert:    make publish FILE=examples/alert-created.json\n"
            "                       make publish FILE=examples/alert-resolved.json\n"
            f"  Queue state:         http://127.0.0.1:{args.port}/_localhost/queues\n"
            "  Stop:                Ctrl-C\n",
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
        for _, process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for _, process in reversed(processes):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    sys.exit(main())
