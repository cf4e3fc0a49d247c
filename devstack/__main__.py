"""`python -m devstack`: run the whole product locally until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path

from api.auth import Role, mint_token
from devstack.stack import ROOT, Ports, Stack
from settings import development_settings

TOKEN_DAYS = 30


def dev_tokens(data_dir: Path, api_url: str) -> str:
    """A ready-to-use bearer token per role, signed with the development secret; also written
    to `<data dir>/tokens.env` for `source`, with the API's codec server for the `temporal` CLI
    (payloads are encrypted: without it the CLI shows ciphertext)."""
    settings = development_settings()
    ttl = TOKEN_DAYS * 24 * 3600
    tokens = {
        role.value: mint_token(settings, f"dev-{role.value}", [role], ttl_seconds=ttl)
        for role in (Role.MERCHANT, Role.OPERATOR, Role.ADMIN)
    }
    tokens["customer"] = mint_token(
        settings, "dev-customer-c_42", [Role.CUSTOMER], customer_id="c_42", ttl_seconds=ttl
    )
    env_file = data_dir / "tokens.env"
    env_file.write_text(
        "".join(f"{r.upper()}_TOKEN={t}\n" for r, t in tokens.items())
        + f"export TEMPORAL_CODEC_ENDPOINT={api_url}/codec\n"
    )
    env_file.chmod(0o600)
    lines = [f"  {role:<9} {token}" for role, token in tokens.items()]
    lines.append(f"  (customer is c_42; all as shell variables: source {env_file})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data")
    parser.add_argument("--api-port", type=int, default=8000)
    args = parser.parse_args()

    stack = Stack(
        args.data_dir,
        Ports(api=args.api_port),
        database_url=os.environ.get("DATABASE_URL"),
    )
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    print("Starting Temporal, PostgreSQL, the sandbox gateways, the worker and the API...")
    stack.start()
    print(
        f"""
Payment sagas are running.
  API docs          {stack.api_url}/docs
  Temporal UI       {stack.temporal_ui_url}
  Sandbox checkout  {stack.sandbox_url}/checkout/<gateway>/<payment id>  (linked from each checkout)
  Sandbox movements {stack.sandbox_url}/sandbox/movements
  Temporal server   {stack.temporal_address}
  Metrics           http://127.0.0.1:{stack.ports.api_metrics}/metrics (API), \
http://127.0.0.1:{stack.ports.worker_metrics}/metrics (worker), \
http://127.0.0.1:{stack.ports.relay_metrics}/metrics (webhook relay)
  Logs              {stack.data_dir / "logs"}

Bearer tokens for the API ({TOKEN_DAYS} days, development secret):
{dev_tokens(stack.data_dir, stack.api_url)}

Press Ctrl-C to stop everything.""",
        flush=True,
    )
    try:
        while not stopping.wait(1):
            exited = {
                c.name: c.process.returncode
                for c in stack.children.values()
                if c.process is not None and c.process.poll() is not None
            }
            for name, code in exited.items():
                print(
                    f"{name} exited with {code}; restarting it (log: logs/{name}.log)", flush=True
                )
            try:
                stack.revive_exited()
            except (RuntimeError, TimeoutError) as error:
                print(f"could not restart: {error}; trying again", flush=True)
    finally:
        print("Stopping...", flush=True)
        stack.stop()
        print("Stopped.")


if __name__ == "__main__":
    main()
