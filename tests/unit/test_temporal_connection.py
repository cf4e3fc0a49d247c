"""Every process connects to Temporal the same way, and can do so over TLS, mTLS or with a
Temporal Cloud API key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.service import TLSConfig

from settings import development_settings
from temporal_client import connect_options, tls_config


def test_a_local_server_is_reached_without_tls_or_key() -> None:
    options = connect_options(development_settings(_env_file=None))
    assert options["tls"] is False
    assert options["api_key"] is None


def test_an_api_key_goes_over_tls() -> None:
    settings = development_settings(
        _env_file=None, temporal_address="ns.acct.tmprl.cloud:7233", temporal_api_key="key-123"
    )
    options = connect_options(settings)
    assert options["api_key"] == "key-123"
    assert isinstance(options["tls"], TLSConfig)
    assert options["tls"].client_cert is None  # the system's trust store, no client certificate


def test_mtls_reads_the_certificates_from_their_files(tmp_path: Path) -> None:
    files = {}
    for name in ("ca", "cert", "key"):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_bytes(f"-----BEGIN {name}-----".encode())
    settings = development_settings(
        _env_file=None,
        temporal_tls_ca_cert_path=str(files["ca"]),
        temporal_tls_client_cert_path=str(files["cert"]),
        temporal_tls_client_key_path=str(files["key"]),
        temporal_tls_server_name="temporal.internal",
    )
    tls = tls_config(settings)
    assert isinstance(tls, TLSConfig)
    assert tls.server_root_ca_cert == b"-----BEGIN ca-----"
    assert tls.client_cert == b"-----BEGIN cert-----"
    assert tls.client_private_key == b"-----BEGIN key-----"
    assert tls.domain == "temporal.internal"


def test_a_client_certificate_without_its_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="TEMPORAL_TLS_CLIENT_KEY_PATH"):
        development_settings(_env_file=None, temporal_tls_client_cert_path="/etc/cert.pem")


def test_every_connection_in_the_repository_goes_through_connect_temporal() -> None:
    root = Path(__file__).resolve().parents[2]
    offenders = [
        str(path.relative_to(root))
        for folder in ("api", "activities", "bench", "deploy", "devstack", "testkit", "tests",
                       "workflows", "sandbox", "db")
        for path in (root / folder).rglob("*.py")
        if "Client.connect(" in path.read_text() and path.name != Path(__file__).name
    ]  # fmt: skip
    offenders += [n for n in ("worker.py",) if "Client.connect(" in (root / n).read_text()]
    assert offenders == []
