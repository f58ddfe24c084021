"""Job kinds: the kernel every job shares (:mod:`.kernel`) and one module per kind a suite can ask for.

:func:`job_kind_for` is the one place that reads which kind a suite is; the runner calls it once
and every executor executes the kind it is handed.
"""

from __future__ import annotations

from cxrbench.engine.jobs.kernel import Job, JobKind, JobOutput, build_model, describe_error, save_output
from cxrbench.suite.schema import Suite

__all__ = ["Job", "JobKind", "JobOutput", "build_model", "describe_error", "job_kind_for", "save_output"]


def job_kind_for(suite: Suite) -> JobKind:
    """The kind of every job of ``suite``: profile-only when ``profile.only``, else train + evaluate."""
    if suite.profile.only:
        from cxrbench.engine.jobs.profile import ProfileOnly

        return ProfileOnly()
    from cxrbench.engine.jobs.train_eval import TrainEvaluate

    return TrainEvaluate()
