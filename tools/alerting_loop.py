"""A real alerting source on loopback: Debian's Prometheus and Alertmanager, started with their own
configuration in a scratch folder, and a metric the caller sets.

Prometheus scrapes the metric ``checkout_failing`` from a small HTTP endpoint served here, and
its rule ``CheckoutErrors`` fires while the metric is above 0; Alertmanager sends what fires,
and its resolution, to the connector's Alertmanager ingest URL with its real webhook receiver.
The intervals are a second so a test sees a change within seconds (Prometheus scrapes and
evaluates every second; Alertmanager waits a second before the first notification of a group
and between its updates).

Installed by ``tools/install_alertmanager.sh``. Development tool; not deployed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

PROMETHEUS = os.environ.get("PROMETHEUS", "/usr/bin/prometheus")
ALERTMANAGER = os.environ.get("ALERTMANAGER", "/usr/bin/prometheus-alertmanager")
ALERT_NAME = "CheckoutErrors"
METRIC = "checkout_failing"
READY_SECONDS = 60.0


def installed() -> bool:
    return os.access(PROMETHEUS, os.X_OK) and os.access(ALERTMANAGER, os.X_OK)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _yaml(document: Any) -> str:
    """YAML as Prometheus and Alertmanager read it: JSON is YAML (no YAML library needed)."""
    return json.dumps(document, indent=2)


class AlertingLoop:
    """``async with AlertingLoop(webhook_url, key) as loop: loop.failing = 1``: the pair running,
    fed by a metric; Alertmanager sends to ``webhook_url`` with the source key as its bearer
    credentials (docs/SOURCES.md); ``loop.alertmanager_url`` is Alertmanager's API."""

    def __init__(self, webhook_url: str, key: str) -> None:
        self.webhook_url = webhook_url
        self._key = key
        self.failing = 0.0
        self.regions: dict[str, float] = {}  # region -> value: one alert per region
        self._folder = Path(tempfile.mkdtemp(prefix="alerting-loop-"))
        self._processes: list[subprocess.Popen[bytes]] = []
        self._logs: list[Any] = []
        self._metrics: Any = None
        self.prometheus_port = _free_port()
        self.alertmanager_port = _free_port()
        self.alertmanager_url = f"http://127.0.0.1:{self.alertmanager_port}"
        self.prometheus_url = f"http://127.0.0.1:{self.prometheus_port}"
        self.metrics_url = ""

    async def __aenter__(self) -> AlertingLoop:
        if not installed():
            raise RuntimeError(
                f"Prometheus ({PROMETHEUS}) or Alertmanager ({ALERTMANAGER}) is missing: "
                "run tools/install_alertmanager.sh"
            )
        try:
            metrics_port = await self._serve_metrics()
            self._write_configs(metrics_port)
            self._start(
                "alertmanager",
                ALERTMANAGER,
                f"--config.file={self._folder / 'alertmanager.yml'}",
                f"--storage.path={self._folder / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{self.alertmanager_port}",
                "--cluster.listen-address=",  # one instance, no gossip
            )
            self._start(
                "prometheus",
                PROMETHEUS,
                f"--config.file={self._folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={self._folder / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
            )
            await self._ready(f"{self.alertmanager_url}/-/ready", "alertmanager")
            await self._ready(f"{self.prometheus_url}/-/ready", "prometheus")
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in self._logs:
            log.close()
        if self._metrics is not None:
            await self._metrics.cleanup()
        shutil.rmtree(self._folder, ignore_errors=True)

    async def _serve_metrics(self) -> int:
        from aiohttp import web

        async def metrics(_request: web.Request) -> web.Response:
            # One series, or one per region when regions are set (each region its own alert).
            series = (
                [f'{METRIC}{{region="{region}"}} {value}' for region, value in self.regions.items()]
                if self.regions
                else [f"{METRIC} {self.failing}"]
            )
            body = f"# TYPE {METRIC} gauge\n" + "\n".join(series) + "\n"
            return web.Response(text=body, content_type="text/plain")

        async def set_failing(request: web.Request) -> web.Response:
            # For a person trying it (make run WITH_ALERTMANAGER=1): POST /failing?value=1 fires the
            # rule at Prometheus's next evaluation, value=0 clears it.
            try:
                self.failing = float(request.query.get("value", "1"))
            except ValueError:
                return web.Response(status=400, text="value must be a number\n")
            return web.Response(text=f"{METRIC} is now {self.failing:g}\n")

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_post("/failing", set_failing)
        self._metrics = web.AppRunner(app)
        await self._metrics.setup()
        port = _free_port()
        await web.TCPSite(self._metrics, "127.0.0.1", port).start()
        self.metrics_url = f"http://127.0.0.1:{port}"
        return port

    def _write_configs(self, metrics_port: int) -> None:
        (self._folder / "rules.yml").write_text(
            _yaml(
                {
                    "groups": [
                        {
                            "name": "checkout",
                            "rules": [
                                {
                                    "alert": ALERT_NAME,
                                    "expr": f"{METRIC} > 0",
                                    "labels": {"severity": "critical", "service": "checkout"},
                                    "annotations": {
                                        "summary": "Checkout requests are failing",
                                        "description": "checkout_failing is {{ $value }} on {{ $labels.instance }}",
                                    },
                                }
                            ],
                        }
                    ]
                }
            )
        )
        (self._folder / "prometheus.yml").write_text(
            _yaml(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(self._folder / "rules.yml")],
                    "alerting": {
                        "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{self.alertmanager_port}"]}]}]
                    },
                    "scrape_configs": [
                        {"job_name": "checkout", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}
                    ],
                }
            )
        )
        (self._folder / "alertmanager.yml").write_text(
            _yaml(
                {
                    "route": {
                        "receiver": "teams",
                        "group_by": ["alertname"],
                        "group_wait": "1s",
                        "group_interval": "1s",
                        "repeat_interval": "1h",
                    },
                    "receivers": [
                        {
                            "name": "teams",
                            "webhook_configs": [
                                {
                                    "url": self.webhook_url,
                                    "send_resolved": True,
                                    "http_config": {"authorization": {"type": "Bearer", "credentials": self._key}},
                                }
                            ],
                        }
                    ],
                }
            )
        )

    def _start(self, name: str, binary: str, *args: str) -> None:
        log = (self._folder / f"{name}.log").open("wb")
        self._logs.append(log)
        self._processes.append(
            subprocess.Popen([binary, *args], stdout=log, stderr=subprocess.STDOUT, cwd=self._folder)
        )

    def log(self, name: str) -> str:
        path = self._folder / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    async def _ready(self, url: str, name: str) -> None:
        import aiohttp

        deadline = time.monotonic() + READY_SECONDS
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while True:
                try:
                    async with http.get(url) as answer:
                        if answer.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline or any(p.poll() is not None for p in self._processes):
                    raise RuntimeError(f"{name} did not become ready at {url}:\n{self.log(name)}")
                await asyncio.sleep(0.2)
