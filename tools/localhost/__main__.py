"""``python -m tools.localhost``: run the function app locally."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from .host import DEFAULT_PORT, LocalHost
from .indexing import IndexingError, load_app
from .queues import DEFAULT_MAX_DELIVERY_COUNT
from .schedule import ScheduleError
from .settings import SettingsError, load_settings

logger = logging.getLogger("tools.localhost")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of the local host."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.localhost",
        description="Run the function app locally: HTTP routes, in-memory Service Bus queues, timers.",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--app", default="function_app", help="MODULE[:ATTRIBUTE] of the FunctionApp (default function_app:app)"
    )
    parser.add_argument(
        "--settings", type=Path, help="settings file (default local.settings.json, else local.settings.sample.json)"
    )
    parser.add_argument(
        "--max-delivery-count",
        type=int,
        default=DEFAULT_MAX_DELIVERY_COUNT,
        help="deliveries before a message is dead-lettered (default 10)",
    )
    parser.add_argument(
        "--redelivery-delay",
        type=float,
        default=0.5,
        help="seconds before an abandoned message is delivered again (default 0.5)",
    )
    parser.add_argument(
        "--duplicate-detection",
        action="append",
        default=[],
        metavar="QUEUE",
        help="drop messages whose id was seen on QUEUE in the last 10 minutes (repeatable)",
    )
    parser.add_argument("--verbose", action="store_true", help="show debug logging")
    return parser.parse_args(argv)


async def _serve(host: LocalHost) -> None:
    await host.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
    finally:
        logger.info("Stopping the local host")
        await host.stop()
        await _close_app_clients()


async def _close_app_clients() -> None:
    """Close the clients the app keeps for the process (its Table Storage client): the
    Functions host just ends the worker, but here aiohttp would report them unclosed."""
    reset = getattr(sys.modules.get("shared.bootstrap"), "reset", None)
    if reset is not None:
        await reset()


def main(argv: list[str] | None = None) -> int:
    """Run until interrupted; return the process exit code."""
    arguments = parse_arguments(argv)
    logging.basicConfig(
        level=logging.DEBUG if arguments.verbose else logging.INFO,
        format="[%(asctime)s] %(message)s",
    )
    # The Azure SDKs log every HTTP request at INFO.
    logging.getLogger("azure").setLevel(logging.WARNING)
    sys.path.insert(0, str(Path.cwd()))
    try:
        settings_file, _ = load_settings(arguments.settings)
        # This process is the local host: the app's development-only switches may work here
        # (shared.settings.check_startup_safety), unless the settings say otherwise.
        os.environ.setdefault("LOCAL_DEVELOPMENT", "true")
        if settings_file:
            logger.info("Settings loaded from %s", settings_file)
        app = load_app(arguments.app)
        module_file = getattr(sys.modules.get(arguments.app.partition(":")[0]), "__file__", None)
        app_directory = Path(module_file).parent if module_file else Path.cwd()
        host_json = app_directory / "host.json"
        host = LocalHost(
            app,
            port=arguments.port,
            max_delivery_count=arguments.max_delivery_count,
            redelivery_delay=arguments.redelivery_delay,
            host=arguments.host,
            host_json=host_json if host_json.is_file() else None,
            duplicate_detection=arguments.duplicate_detection,
            app_directory=app_directory,
            token=os.environ.get("LOCAL_HOST_TOKEN") or None,
        )
    except (SettingsError, IndexingError, ScheduleError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(host))
    except OSError as error:
        reason = error.strerror or error
        print(f"error: cannot listen on {arguments.host}:{arguments.port}: {reason}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
