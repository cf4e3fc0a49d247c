"""Worker Versioning on the dev server: a pinned workflow started on the old build finishes on it
while new ones run on the new build, an auto-upgrade workflow moves to the new build, and every
saga declares which of the two it is."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.common import VersioningBehavior
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.workflow import _Definition

from settings import Settings, development_settings
from worker import WORKFLOWS, deployment_config, make_current_if_none
from workflows.checkout import CheckoutWorkflow
from workflows.dispute import DisputeWorkflow
from workflows.payout import PayoutWorkflow
from workflows.reconcile import ReconcileWorkflow
from workflows.refund import RefundWorkflow

TEMPORAL = str(Path(sys.executable).parent / "temporal")


class Waiting:
    """Waits for `finish`, then says which build ran its last task."""

    BUILD = ""

    def __init__(self) -> None:
        self._finish = False

    async def wait_then_tell_build(self) -> str:
        await workflow.wait_condition(lambda: self._finish)
        return self.BUILD

    @workflow.signal
    def finish(self) -> None:
        self._finish = True


@workflow.defn(name="PinnedWait", sandboxed=False, versioning_behavior=VersioningBehavior.PINNED)
class PinnedOnBuild1(Waiting):
    BUILD = "build-1"

    @workflow.run
    async def run(self) -> str:
        return await self.wait_then_tell_build()


@workflow.defn(name="PinnedWait", sandboxed=False, versioning_behavior=VersioningBehavior.PINNED)
class PinnedOnBuild2(Waiting):
    BUILD = "build-2"

    @workflow.run
    async def run(self) -> str:
        return await self.wait_then_tell_build()


@workflow.defn(
    name="UpgradingWait", sandboxed=False, versioning_behavior=VersioningBehavior.AUTO_UPGRADE
)
class UpgradingOnBuild1(Waiting):
    BUILD = "build-1"

    @workflow.run
    async def run(self) -> str:
        return await self.wait_then_tell_build()


@workflow.defn(
    name="UpgradingWait", sandboxed=False, versioning_behavior=VersioningBehavior.AUTO_UPGRADE
)
class UpgradingOnBuild2(Waiting):
    BUILD = "build-2"

    @workflow.run
    async def run(self) -> str:
        return await self.wait_then_tell_build()


def build(deployment: str, build_id: str) -> Settings:
    return development_settings(
        _env_file=None,
        worker_deployment_name=deployment,
        worker_build_id=build_id,
    )


async def build_of_last_task(handle: WorkflowHandle[Any, str]) -> str:
    """The build the server recorded for the workflow's last completed task (polled: it appears
    once a worker of the deployment has run the first task)."""
    for _ in range(100):
        info = (await handle.describe()).raw_description.workflow_execution_info.versioning_info
        if info.deployment_version.build_id:
            return info.deployment_version.build_id
        await asyncio.sleep(0.1)
    pytest.fail(f"{handle.id} never ran on a versioned worker")


def worker(client: Client, queue: str, settings: Settings, workflows: list[type]) -> Worker:
    return Worker(
        client, task_queue=queue, workflows=workflows, deployment_config=deployment_config(settings)
    )


async def test_pinned_run_finishes_on_its_build_while_new_runs_go_to_the_new_build(
    dev_server_env: WorkflowEnvironment,
) -> None:
    client = dev_server_env.client
    deployment, queue = f"payments-{uuid.uuid4().hex[:8]}", f"versioning-{uuid.uuid4().hex}"
    old, new = build(deployment, "build-1"), build(deployment, "build-2")

    async with worker(client, queue, old, [PinnedOnBuild1, UpgradingOnBuild1]):
        assert await make_current_if_none(client, deployment_config(old).version)  # the first
        pinned = await client.start_workflow(
            PinnedOnBuild1.run, id=f"pinned-{queue}", task_queue=queue
        )
        upgrading = await client.start_workflow(
            UpgradingOnBuild1.run, id=f"upgrading-{queue}", task_queue=queue
        )
        assert await build_of_last_task(pinned) == "build-1"
        assert await build_of_last_task(upgrading) == "build-1"

        # The new build runs beside the old one; it becomes current only when an operator says so
        async with worker(client, queue, new, [PinnedOnBuild2, UpgradingOnBuild2]):
            assert not await make_current_if_none(client, deployment_config(new).version)
            rollout = await asyncio.to_thread(
                subprocess.run,
                [TEMPORAL, "worker", "deployment", "set-current-version",
                 "--address", client.service_client.config.target_host,
                 "--namespace", client.namespace,
                 "--deployment-name", deployment, "--build-id", "build-2", "--yes"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert rollout.returncode == 0, rollout.stderr

            started_after = await client.start_workflow(
                PinnedOnBuild2.run, id=f"pinned-after-{queue}", task_queue=queue
            )
            assert await build_of_last_task(started_after) == "build-2"
            for handle in (pinned, upgrading, started_after):
                await handle.signal("finish")

            assert await pinned.result() == "build-1"  # finished where it started
            assert await started_after.result() == "build-2"
            assert await upgrading.result() == "build-2"  # moved on its next task


def test_every_saga_declares_how_it_moves_between_builds() -> None:
    behaviours = {cls: _Definition.must_from_class(cls).versioning_behavior for cls in WORKFLOWS}
    assert behaviours == {
        CheckoutWorkflow: VersioningBehavior.PINNED,
        ReconcileWorkflow: VersioningBehavior.PINNED,
        RefundWorkflow: VersioningBehavior.AUTO_UPGRADE,
        DisputeWorkflow: VersioningBehavior.AUTO_UPGRADE,
        PayoutWorkflow: VersioningBehavior.AUTO_UPGRADE,
    }


def test_a_worker_needs_a_build_id_and_a_deployment_name_without_dots() -> None:
    with pytest.raises(ValueError, match="WORKER_BUILD_ID"):
        development_settings(_env_file=None, worker_build_id="")
    with pytest.raises(ValueError, match="WORKER_DEPLOYMENT_NAME"):
        development_settings(_env_file=None, worker_deployment_name="payments.v2")
