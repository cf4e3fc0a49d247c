"""``python -m sandbox``: serve the sandbox with settings from ``SANDBOX_*`` env vars."""

import uvicorn

from sandbox.app import create_app
from sandbox.config import SandboxConfig


def main() -> None:
    """Run the sandbox until interrupted."""
    config = SandboxConfig()
    uvicorn.run(create_app(config), host=config.host, port=config.port)


if __name__ == "__main__":
    main()
