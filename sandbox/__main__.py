"""``python -m sandbox``: serve the sandbox with settings from ``SANDBOX_*`` env vars."""

import sys

import uvicorn
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from sandbox.app import create_app
from sandbox.config import SandboxConfig


def _problem(error: ErrorDetails) -> str:
    setting = "SANDBOX_" + "_".join(str(part) for part in error["loc"]).upper()
    return f"{setting}: {error['msg'].removeprefix('Value error, ')}"


def main() -> None:
    """Run the sandbox until interrupted; refuse to start with a bad setting, saying which."""
    try:
        config = SandboxConfig()
    except ValidationError as invalid:
        sys.exit("sandbox: refusing to start: " + "; ".join(map(_problem, invalid.errors())))
    uvicorn.run(create_app(config), host=config.host, port=config.port)


if __name__ == "__main__":
    main()
