"""The ``local`` executor: one job after another in this process, with live progress and epoch hooks."""

from __future__ import annotations

from typing import Any

import torch

from cxrbench.engine.executors.base import Finished, RunContext
from cxrbench.engine.jobs.kernel import Job
from cxrbench.suite.schema import ExecutorConfig


class LocalExecutor:
    """One job after another in this process."""

    name = "local"

    def __init__(self, config: ExecutorConfig | None = None):
        self.retries = config.retries if config is not None else 0

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "retries": self.retries, "torch_threads": torch.get_num_threads()}

    def run(self, jobs: list[Job], ctx: RunContext) -> Finished:
        """Yield ``(job, record)`` for each job, in plan order."""
        ctx.progress.start_jobs(len(jobs))
        for job in jobs:
            yield job, ctx.attempt(job, self.retries)
