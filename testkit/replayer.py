"""The replayer of recorded histories, built as the worker decodes: the workflows it runs, the
encryption codec (which lets the recordings' unsealed payloads through) and its interceptor."""

from __future__ import annotations

from temporalio.worker import Replayer

from observability import ActivityLogInterceptor
from settings import development_settings
from temporal_client import connect_options
from worker import WORKFLOWS


def worker_replayer() -> Replayer:
    return Replayer(
        workflows=WORKFLOWS,
        data_converter=connect_options(development_settings(_env_file=None))["data_converter"],
        interceptors=[ActivityLogInterceptor()],
    )
