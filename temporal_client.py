"""The one way every process (API, worker, relay, scripts, bench, tests) connects to Temporal, with
the data converter (with the payload encryption codec), interceptors, TLS (mTLS) and API key they
must share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from observability import tracing_interceptors
from payload_codec import with_encryption
from settings import Settings


def tls_config(settings: Settings) -> TLSConfig | bool:
    """False for plain gRPC (a local dev server, a private compose network), else the TLS
    settings: a CA of our own, a client certificate (mTLS), the server name to verify."""
    if not settings.temporal_uses_tls:
        return False

    def read(path: str) -> bytes | None:
        return Path(path).read_bytes() if path else None

    return TLSConfig(
        server_root_ca_cert=read(settings.temporal_tls_ca_cert_path),
        client_cert=read(settings.temporal_tls_client_cert_path),
        client_private_key=read(settings.temporal_tls_client_key_path),
        domain=settings.temporal_tls_server_name or None,
    )


def connect_options(settings: Settings) -> dict[str, Any]:
    """Everything `Client.connect` is given besides the address."""
    return {
        "namespace": settings.temporal_namespace,
        "api_key": settings.temporal_api_key.get_secret_value() or None,
        "tls": tls_config(settings),
        "data_converter": with_encryption(pydantic_data_converter, settings.payload_keys),
        "interceptors": tracing_interceptors(settings.tracing_exporter),
    }


async def connect_temporal(
    settings: Settings, *, lazy: bool = False, runtime: Runtime | None = None
) -> Client:
    return await Client.connect(
        settings.temporal_address, **connect_options(settings), lazy=lazy, runtime=runtime
    )
