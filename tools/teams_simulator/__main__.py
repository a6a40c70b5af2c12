"""Run the Teams simulator standalone: ``python -m tools.teams_simulator --port 3978``."""

from __future__ import annotations

import argparse
import threading

from .server import TeamsSimulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Loopback Teams Bot Connector simulator.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument(
        "--bot",
        nargs=2,
        metavar=("APP_ID", "SECRET"),
        action="append",
        default=[],
        help="register a bot that may fetch connector tokens (repeatable)",
    )
    parser.add_argument("--no-auth", action="store_true", help="accept connector calls without a bearer token")
    args = parser.parse_args(argv)

    sim = TeamsSimulator(port=args.port)
    for app_id, secret in args.bot:
        sim.register_bot(app_id, secret)
    sim.start()
    sim.require_connector_auth = not args.no_auth
    print(f"Teams simulator on {sim.url}", flush=True)
    print(f"  serviceUrl        {sim.service_url}")
    print(f"  token endpoint    {sim.token_url()}")
    print(f"  OpenID metadata   {sim.openid_metadata_url}")
    print(f"  conversations     {sim.url}/_sim/conversations")
    print(f"  requests          {sim.url}/_sim/requests", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
