"""The Temporal worker: runs the saga workflows and their activities against real clients."""

from __future__ import annotations

import argparse
import asyncio
import compileall
import signal
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import structlog
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
)
from temporalio.common import WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker, WorkerDeploymentConfig

import workflows
from activities.disputes import DisputeActivities
from activities.gateways.registry import build_adapters, build_transfer_gateways
from activities.ledger import LedgerActivities
from activities.marketplace import PayoutActivities, PayoutStarter
from activities.merchant import MerchantActivities
from activities.payments import GatewayActivities
from activities.reconcile import ReconcileActivities
from activities.risk import RiskActivities
from db.migrate import pending_migrations
from db.pool import create_pool
from domain import names
from domain.reconcile import ReconcileRequest
from observability import (
    ActivityLogInterceptor,
    configure_logging,
    worker_runtime,
)
from settings import Settings, get_settings
from temporal_client import connect_temporal
from workflows.checkout import CheckoutWorkflow
from workflows.dispute import DisputeWorkflow
from workflows.payout import PayoutWorkflow
from workflows.policies import BACKGROUND
from workflows.reconcile import ReconcileWorkflow
from workflows.refund import RefundWorkflow

log = structlog.get_logger("worker")

WORKFLOWS: Sequence[type] = [
    CheckoutWorkflow, RefundWorkflow, ReconcileWorkflow, DisputeWorkflow, PayoutWorkflow,
]  # fmt: skip


def activities_for(settings: Settings, pool: Any, http: httpx.AsyncClient) -> list[Any]:
    starter = PayoutStarter(pool, settings.task_queue)
    ledger = LedgerActivities(pool, starter)
    adapters = build_adapters(settings)
    gateways = GatewayActivities(adapters, pool, settings.breaker, starter)
    transfer_gateways = build_transfer_gateways(settings)
    payouts = PayoutActivities(pool, transfer_gateways)
    risk = RiskActivities(adapters, pool)
    reconcile = ReconcileActivities(
        pool,
        adapters,
        settings.reconcile_stale_after_seconds,
        settings.reconcile_lookback_hours,
        transfer_gateways,
    )
    merchant = MerchantActivities(
        http,
        settings.merchant_confirmation_url,
        settings.merchant_callback_secret.get_secret_value(),
    )
    disputes = DisputeActivities(
        adapters,
        http,
        settings.merchant_confirmation_url,
        settings.merchant_callback_secret.get_secret_value(),
    )
    return [
        ledger.record_checkout_steps,
        ledger.reserve_refund,
        ledger.record_refund_step,
        gateways.create_gateway_payment,
        gateways.fetch_gateway_payment,
        gateways.capture_gateway_payment,
        gateways.release_gateway_payment,
        gateways.expire_gateway_payment,
        gateways.abandon_gateway_payment,
        gateways.refund_gateway_payment,
        gateways.refund_and_record,
        gateways.fetch_gateway_refund,
        merchant.confirm_order_with_merchant,
        reconcile.find_reconciliation_candidates,
        reconcile.check_against_gateway,
        reconcile.flag_disagreement,
        reconcile.record_reconciliation_run,
        disputes.fetch_gateway_dispute,
        disputes.submit_gateway_dispute_evidence,
        disputes.accept_gateway_dispute,
        disputes.notify_merchant_of_dispute,
        ledger.open_dispute,
        ledger.record_dispute_step,
        ledger.flag_unverified_dispute,
        ledger.read_disputed_payment,
        risk.assess_checkout_risk,
        risk.record_risk_review,
        payouts.open_payout,
        payouts.read_clawback,
        payouts.release_payout,
        payouts.reverse_payout,
        payouts.hold_payout,
    ]


def compile_workflow_code(source: Path = Path(workflows.__file__).parent) -> bool:
    """Write the bytecode of the workflow modules (a package folder or one file) if it is missing
    or stale; False if it could not be written. The workflow sandbox imports these modules afresh
    for every workflow it loads (a new run, or a replay after the workflow cache evicted it) and,
    where no bytecode is on disk (PYTHONDONTWRITEBYTECODE, a read-only image built with
    `pip install --no-compile`), compiles their source each time: a third of the worker's CPU in
    a deadline storm (BENCHMARKS.md). The image compiles them when it is built (Dockerfile)."""
    if source.is_dir():
        return bool(compileall.compile_dir(source, quiet=2))
    return bool(compileall.compile_file(source, quiet=2))


async def ensure_reconcile_schedule(client: Client, settings: Settings) -> None:
    """Create (or bring up to date) the Schedule that runs the reconciler; overlaps are skipped."""
    if settings.reconcile_interval_seconds <= 0:
        return
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            ReconcileWorkflow.run,
            ReconcileRequest(),
            id=names.RECONCILE_SCHEDULED_RUN_ID,
            task_queue=settings.task_queue,
            static_summary="Reconcile payments and refunds with the gateways",
            priority=BACKGROUND,  # its checks and children inherit it: live checkouts go first
        ),
        spec=ScheduleSpec(
            intervals=[
                ScheduleIntervalSpec(every=timedelta(seconds=settings.reconcile_interval_seconds))
            ]
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    try:
        await client.create_schedule(names.RECONCILE_SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:
        await client.get_schedule_handle(names.RECONCILE_SCHEDULE_ID).update(
            lambda _: ScheduleUpdate(schedule=schedule)
        )


def deployment_config(settings: Settings) -> WorkerDeploymentConfig:
    """Worker Versioning: this process is one build of the Worker Deployment, and each workflow
    type declares whether its runs stay on the build they started on (pinned) or move to the
    deployment's current build (auto-upgrade), in `@workflow.defn`. A Temporal server refuses
    those declarations from an unversioned worker, so there is no unversioned mode."""
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(settings.worker_deployment_name, settings.worker_build_id),
        use_worker_versioning=True,
    )


async def make_current_if_none(client: Client, version: WorkerDeploymentVersion) -> bool:
    """Make `version` its deployment's current version if the deployment has none yet (its very
    first build); True if it did. A later build becomes current only when an operator says so
    (`temporal worker deployment set-current-version`) once its workers run beside the old
    ones: that is the rollout (docs/deployment.md)."""
    try:
        described = await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(
                namespace=client.namespace, deployment_name=version.deployment_name
            )
        )
    except RPCError as error:
        if error.status is not RPCStatusCode.NOT_FOUND:
            raise
        conflict_token = b""  # no worker of this deployment has ever polled
    else:
        if described.worker_deployment_info.routing_config.HasField("current_deployment_version"):
            return False
        conflict_token = described.conflict_token
    await client.workflow_service.set_worker_deployment_current_version(
        SetWorkerDeploymentCurrentVersionRequest(
            namespace=client.namespace,
            deployment_name=version.deployment_name,
            build_id=version.build_id,
            conflict_token=conflict_token,
            identity=client.identity,
            allow_no_pollers=True,  # this worker starts polling right after
        )
    )
    return True


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    if not compile_workflow_code():
        log.warning("workflow bytecode could not be written: each workflow load compiles source")
    pool = await create_pool(settings.database_url, settings.database_pool_size)
    pending = await pending_migrations(pool)
    if pending:
        await pool.close()
        raise SystemExit(
            f"the database lacks migrations {', '.join(pending)}: run `python -m db migrate`"
        )
    client = await connect_temporal(
        settings, runtime=worker_runtime(settings.worker_metrics_address)
    )
    await ensure_reconcile_schedule(client, settings)
    deployment = deployment_config(settings)
    if await make_current_if_none(client, deployment.version):
        log.info("first build of the deployment made current", build_id=settings.worker_build_id)
    async with httpx.AsyncClient(timeout=10.0) as http:
        worker = Worker(
            client,
            task_queue=settings.task_queue,
            workflows=WORKFLOWS,
            activities=activities_for(settings, pool, http),
            interceptors=[ActivityLogInterceptor()],
            max_cached_workflows=settings.worker_max_cached_workflows,
            # On SIGTERM, running activities get this long to finish before they are handed
            # back to Temporal (and retried elsewhere with the same idempotency keys).
            graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_grace_seconds),
            deployment_config=deployment,
        )
        async with worker:
            log.info(
                "worker polling", task_queue=settings.task_queue, build_id=settings.worker_build_id
            )
            await stop.wait()
            log.info("worker draining", grace_seconds=settings.worker_shutdown_grace_seconds)
    await pool.close()
    log.info("worker stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description="The Temporal worker of the payment sagas.")
    parser.add_argument(
        "--ensure-schedules",
        action="store_true",
        help="create or update the reconciler's Schedule, then exit (set-up of a new cluster)",
    )
    args = parser.parse_args()
    settings = get_settings()
    configure_logging("worker", settings.log_level)
    if args.ensure_schedules:

        async def setup() -> None:
            await ensure_reconcile_schedule(await connect_temporal(settings), settings)
            log.info("schedules ready", schedule=names.RECONCILE_SCHEDULE_ID)

        asyncio.run(setup())
        return

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
