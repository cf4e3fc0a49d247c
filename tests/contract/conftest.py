"""The gateway emulators the adapters are checked against, each a separate process: our sandbox
and localstripe, a third-party Stripe emulator (PyPI), so the sandbox is not its own only judge."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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
