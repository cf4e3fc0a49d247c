"""The gateway emulators the adapters are checked against, each a separate process: our sandbox
and localstripe, a third-party Stripe emulator (PyPI), so the sandbox is not its own only judge."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.stack import free_port, wait_for_http, wait_for_port

BIN = Path(sys.executable).parent
SANDBOX_STRIPE_KEY = "sk_test_contract"
SANDBOX_RAZORPAY_KEY = ("rzp_test_contract", "rzp_test_contract_secret")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    """The sandbox with its default (realistic) behaviour and no webhook receivers."""
    port = free_port()
    env = {
        **os.environ,
        "SANDBOX_PORT": str(port),
        "SANDBOX_STRIPE_SECRET_KEY": SANDBOX_STRIPE_KEY,
        "SANDBOX_RAZORPAY_KEY_ID": SANDBOX_RAZORPAY_KEY[0],
        "SANDBOX_RAZORPAY_KEY_SECRET": SANDBOX_RAZORPAY_KEY[1],
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/health", 30, process)
        yield url
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "localstripe"), "--port", str(port), "--from-scratch"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 30, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)


class SandboxControl:
    """The sandbox's test controls over HTTP: faults armed for the next calls of an operation."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    def arm(
        self, gateway: str, operation: str, kind: str, times: int = 1, delay_seconds: float = 0
    ) -> None:
        armed = self.http.post(
            "/sandbox/faults",
            json={
                "gateway": gateway,
                "operation": operation,
                "kind": kind,
                "times": times,
                "delay_seconds": delay_seconds,
            },
        )
        assert armed.status_code == 200, armed.text

    def movements(self, payment: str) -> list[str]:
        """The kinds of money movement the sandbox made for a payment, in order."""
        moved = self.http.get("/sandbox/movements", params={"payment": payment})
        return [m["kind"] for m in moved.json()]

    def wait_for_movement(self, payment: str, kind: str) -> None:
        """Until a late write has landed (a `slow_commit`); no time is asserted."""
        for _ in range(200):
            if kind in self.movements(payment):
                return
            time.sleep(0.05)
        raise AssertionError(f"no {kind} of {payment} landed")


@pytest.fixture
def sandbox_control(sandbox_url: str) -> Iterator[SandboxControl]:
    """The controls; every default (faults disarmed) comes back after the test."""
    control = SandboxControl(sandbox_url)
    try:
        yield control
    finally:
        control.http.post("/sandbox/reset-behaviour").raise_for_status()
        control.http.close()
