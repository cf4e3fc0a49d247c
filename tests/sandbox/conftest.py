"""Fixtures: the sandbox and a webhook receiver, each served by uvicorn in a thread."""

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import razorpay
import stripe
import uvicorn
from fastapi import FastAPI, Request, Response

from sandbox.app import create_app
from sandbox.config import SandboxConfig

# What an order adds to be captured by the caller, as the product's orders do; without it the
# account's default (automatic capture) applies.
MANUAL_CAPTURE: dict[str, Any] = {
    "payment": {
        "capture": "manual",
        "capture_options": {"manual_expiry_period": 7200, "refund_speed": "normal"},
    }
}


@dataclass
class Served:
    """A running uvicorn server."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _serve(app: Any) -> Served:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.01)
    return Served(f"http://127.0.0.1:{port}", server, thread)


@dataclass
class Received:
    """One webhook request as the receiver saw it."""

    path: str
    body: bytes
    headers: dict[str, str]
    status: int


@dataclass
class Receiver:
    """Captures webhooks; answers 500 to the first ``fail_next`` requests."""

    url: str
    requests: list[Received] = field(default_factory=list)
    fail_next: int = 0

    def of(self, path: str) -> list[Received]:
        """The webhooks on ``path`` that were accepted (answered 200)."""
        return [r for r in self.requests if r.path == path and r.status == 200]

    def wait_for(self, path: str, count: int, timeout: float = 5) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.of(path)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"expected {count} webhooks on {path}, got {len(self.of(path))}"
                )
            time.sleep(0.02)
        return self.of(path)


@pytest.fixture(scope="session")
def sandbox_receiver() -> Iterator[Receiver]:
    app = FastAPI()
    receiver = Receiver(url="")

    @app.post("/{path}")
    async def receive(path: str, request: Request) -> Response:
        status = 200
        if receiver.fail_next > 0:
            receiver.fail_next -= 1
            status = 500
        receiver.requests.append(
            Received(f"/{path}", await request.body(), dict(request.headers), status)
        )
        return Response(status_code=status)

    served = _serve(app)
    receiver.url = served.url
    yield receiver
    served.stop()


@dataclass
class Sandbox:
    """A running sandbox with SDK clients pointed at it."""

    url: str
    config: SandboxConfig
    stripe: stripe.StripeClient
    razorpay: razorpay.Client
    http: httpx.Client
    served: Served

    def stop(self) -> None:
        """Stop the server now (teardown tolerates it being stopped already)."""
        self.served.stop()

    def movements(self, **params: str) -> list[dict[str, Any]]:
        response = self.http.get("/sandbox/movements", params=params)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result


SandboxFactory = Callable[..., Sandbox]


@pytest.fixture
def sandbox_factory(tmp_path: Path, sandbox_receiver: Receiver) -> Iterator[SandboxFactory]:
    """Start sandboxes (stopped at teardown); keyword arguments override the config."""
    started: list[tuple[Served, httpx.Client]] = []

    def start(**overrides: Any) -> Sandbox:
        settings: dict[str, Any] = {
            "stripe_webhook_url": f"{sandbox_receiver.url}/stripe",
            "razorpay_webhook_url": f"{sandbox_receiver.url}/razorpay",
            "webhook_initial_backoff_seconds": 0.05,
            "state_file": tmp_path / "state.json",
            **overrides,
        }
        config = SandboxConfig(**settings)
        served = _serve(create_app(config))
        http = httpx.Client(base_url=served.url, timeout=10)
        started.append((served, http))
        return Sandbox(
            url=served.url,
            config=config,
            stripe=stripe.StripeClient(
                config.stripe_secret_key,
                base_addresses={"api": f"{served.url}/stripe"},
                http_client=stripe.HTTPXClient(timeout=5),
                max_network_retries=0,
            ),
            razorpay=razorpay.Client(
                auth=(config.razorpay_key_id, config.razorpay_key_secret),
                base_url=f"{served.url}/razorpay",
            ),
            http=http,
            served=served,
        )

    sandbox_receiver.requests.clear()
    sandbox_receiver.fail_next = 0
    yield start
    for served, http in started:
        http.close()
        served.stop()


@pytest.fixture
def sandbox_api(sandbox_factory: SandboxFactory) -> Sandbox:
    """A sandbox in instant refund mode."""
    return sandbox_factory()
