"""Dashboards and alert rules as code: every expression names only metrics that exist (ours, from
api/metrics.py and the workflows' metric meter; the Temporal SDK's, as its Core defines them;
Prometheus' own `up`) and parses; `promtool check` and `promtool test rules` pass; every alert
has its runbook section and a unit test."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import temporalio
import yaml

from observability import HISTOGRAM_BUCKETS

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
PROMETHEUS = ROOT / "deploy" / "prometheus"
RUNBOOK = ROOT / "docs" / "runbook.md"

# The Temporal SDK's worker metrics used here, by kind (https://docs.temporal.io/references/
# sdk-metrics; exported with the prefix `temporal_`, histograms in seconds: observability.py).
SDK_HISTOGRAMS = {
    "workflow_task_schedule_to_start_latency",
    "workflow_task_execution_latency",
    "activity_schedule_to_start_latency",
    "activity_execution_latency",
}
SDK_COUNTERS_AND_GAUGES = {
    "workflow_completed",
    "workflow_failed",
    "workflow_task_execution_failed",
    "activity_execution_failed",
    "sticky_cache_hit",
    "sticky_cache_miss",
    "sticky_cache_total_forced_eviction",
    "sticky_cache_size",
    "worker_task_slots_available",
    "worker_task_slots_used",
    "num_pollers",
}
PROMETHEUS_OWN = {"up"}
PROMQL_OPERATORS = {"and", "or", "unless", "bool"}


def promtool() -> str:
    found = shutil.which("promtool", path=str(BIN)) or shutil.which("promtool")
    assert found, "promtool (Debian's prometheus package) is missing: scripts/_venv.sh fetches it"
    return found


def histogram(name: str) -> set[str]:
    return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}


def defined_metrics() -> set[str]:
    """The series names the code exports, read from the code that defines them."""
    names: set[str] = set()
    api = (ROOT / "api" / "metrics.py").read_text()
    for kind, name in re.findall(r'(Counter|Histogram|GaugeMetricFamily)\(\s*"(\w+)"', api):
        if kind == "Histogram":
            names |= histogram(name)
        elif kind == "Counter":
            names.add(name if name.endswith("_total") else f"{name}_total")
        else:
            names.add(name)
    for source in (ROOT / "workflows").glob("*.py"):
        meter = re.findall(r'create_(\w+)\(\s*"(\w+)"', source.read_text())
        for kind, name in meter:  # the worker's exporter adds no `_total`
            names |= histogram(name) if kind.startswith("histogram") else {name}
    for name in SDK_HISTOGRAMS:
        names |= histogram(f"temporal_{name}")
    names |= {f"temporal_{name}" for name in SDK_COUNTERS_AND_GAUGES}
    return names | PROMETHEUS_OWN


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (a static reading: strings, label matchers,
    ranges, label lists, offsets and function names removed)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\boffset\s+\w+", "", expr)
    expr = re.sub(r"\b[A-Za-z_]\w*\s*\(", "(", expr)
    return set(re.findall(r"\b[A-Za-z_:][A-Za-z0-9_:]*", expr)) - PROMQL_OPERATORS


def dashboard_expressions() -> Iterator[tuple[str, str, str]]:
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                yield path.name, panel["title"], target["expr"]


def alert_rules() -> list[dict[str, object]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_the_metric_reader_sees_through_promql() -> None:
    assert metric_names(
        'histogram_quantile(0.95, sum by (le, gateway) (rate(a_bucket{x=~"y|z"}[5m]))) > 1'
    ) == {"a_bucket"}
    assert metric_names("time() - max(b) > 3 * 86400 or c unless d offset 15m") == {"b", "c", "d"}


def test_dashboards_name_only_metrics_the_code_defines() -> None:
    assert [p.name for p in DASHBOARDS] == ["payments.json", "temporal-workers.json"]
    defined = defined_metrics()
    expressions = list(dashboard_expressions())
    assert len(expressions) > 30
    for dashboard, title, expr in expressions:
        unknown = metric_names(expr) - defined
        assert not unknown, f"{dashboard} / {title}: {sorted(unknown)} are not defined"


def test_every_dashboard_panel_has_a_query_and_a_unique_id() -> None:
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        panels = dashboard["panels"]
        assert len({p["id"] for p in panels}) == len(panels), path.name
        for panel in panels:
            assert panel["type"] == "row" or panel["targets"], (path.name, panel["title"])


def test_alerts_name_only_metrics_the_code_defines() -> None:
    defined = defined_metrics()
    for rule in alert_rules():
        unknown = metric_names(str(rule["expr"])) - defined
        assert not unknown, f"{rule['alert']}: {sorted(unknown)} are not defined"


def test_dashboard_expressions_parse(tmp_path: Path) -> None:
    # promtool parses PromQL when it checks rules: each expression as a recording rule
    rules = [
        {"record": f"dashboard:expression_{i}", "expr": expr}
        for i, (_, _, expr) in enumerate(dashboard_expressions())
    ]
    checked = tmp_path / "dashboards.yml"
    checked.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool(), "check", "rules", str(checked)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    for command in (
        ["check", "rules", str(PROMETHEUS / "alerts.yml")],
        ["check", "config", str(PROMETHEUS / "prometheus.yml")],
        ["test", "rules", str(PROMETHEUS / "alerts_test.yml")],
    ):
        result = subprocess.run([promtool(), *command], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_runbook_section_and_a_firing_test() -> None:
    headings = set(re.findall(r"^## (\w+)$", RUNBOOK.read_text(), re.MULTILINE))
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    firing = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    for rule in alert_rules():
        name = str(rule["alert"])
        assert name in headings, f"docs/runbook.md has no section ## {name}"
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        assert annotations["runbook"] == f"docs/runbook.md#{name.lower()}"
        assert name in firing, f"no test of alerts_test.yml shows {name} firing"
        assert rule["labels"] in ({"severity": "page"}, {"severity": "ticket"}), name


def test_sdk_metrics_are_those_the_installed_sdk_defines() -> None:
    crates = Path(temporalio.__file__).parent / "bridge" / "sdk-core" / "crates"
    source = "".join(p.read_text() for p in crates.glob("*/src/telemetry/metrics.rs"))
    for name in SDK_HISTOGRAMS | SDK_COUNTERS_AND_GAUGES:
        assert f'"{name}"' in source, name


def test_histogram_buckets_are_for_metrics_the_workflows_define() -> None:
    defined = defined_metrics()
    for name in HISTOGRAM_BUCKETS:
        assert f"{name}_bucket" in defined, name
