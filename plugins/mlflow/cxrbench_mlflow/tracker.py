"""The MLflow side of a cxrbench run: a parent run per suite run, a child run per job.

Every call goes through an explicit :class:`mlflow.MlflowClient` (never the fluent API with its
process-wide active run), so two runs, or two tests, in one process cannot leak into each other.
Every public method catches its own errors: tracking is a side channel and must never stop a
benchmark.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from cxrbench.results.records import JobRecord, RunInfo

from cxrbench_mlflow.config import artifact_location, enabled, tracking_uri
from cxrbench_mlflow.convert import (MAX_TAG_VALUE, as_param_value, curve_points, finite, flatten,
                                     record_metrics, truncate)
from cxrbench_mlflow.figures import confusion_figure

log = logging.getLogger("cxrbench_mlflow")

PARENT_TAG = "mlflow.parentRunId"
RUN_STATUS = {"complete": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
REPORT_GLOBS = ("report*.md", "report*.html", "report*.pdf", "leaderboard*.md", "leaderboard*.html",
                "leaderboard*.csv")
F = TypeVar("F", bound=Callable[..., Any])


def _guarded(method: F) -> F:
    """Log any exception as a warning instead of raising it."""
    @functools.wraps(method)
    def wrapper(self: "MlflowTracker", *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - MLflow trouble must not break the run
            log.warning("MLflow tracking: %s failed: %s: %s", method.__name__, type(exc).__name__, exc)
            return None
    return wrapper  # type: ignore[return-value]


@dataclass
class _Tracked:
    """One cxrbench run as tracked in MLflow."""

    client: Any
    uri: str
    experiment_id: str
    parent_id: str
    children: dict[str, str] = field(default_factory=dict)
    """job id -> MLflow run id of jobs whose MLflow run is still open."""
    epochs_seen: set[str] = field(default_factory=set)


def _now_ms() -> int:
    return int(time.time() * 1000)


class MlflowTracker:
    """Mirrors the cxrbench lifecycle hooks into an MLflow tracking store."""

    def __init__(self) -> None:
        self._runs: dict[str, _Tracked | None] = {}
        """Keyed by run folder; ``None`` = tracking this run failed at the start (warned once)."""

    # -- lifecycle -------------------------------------------------------------------------------

    @_guarded
    def run_start(self, run: RunInfo) -> None:
        """Create (or, on ``--resume``, reopen) the parent run of a suite run."""
        self._tracked(run)

    @_guarded
    def epoch_end(self, run: RunInfo, job: str, epoch: int, logs: dict[str, Any]) -> None:
        """Log one epoch's ``train_loss``, ``val_loss``, ``val_*`` and ``lr`` at ``step=epoch``."""
        tracked = self._tracked(run)
        if tracked is None:
            return
        child = self._child(tracked, run, job)
        tracked.epochs_seen.add(job)
        values = finite({k: v for k, v in logs.items() if k != "epoch"})
        self._log_metrics(tracked.client, child, values, step=int(epoch))

    @_guarded
    def model_result(self, run: RunInfo, record: JobRecord) -> None:
        """Log a finished job's params, test metrics, tags and artifacts, then end its run."""
        tracked = self._tracked(run)
        if tracked is None:
            return
        client = tracked.client
        child = self._child(tracked, run, record.job_id)
        try:
            self._log_params(client, child, self._job_params(run, record))
            metrics = record_metrics(record)
            self._log_metrics(client, child, metrics, step=0)
            if record.job_id not in tracked.epochs_seen and record.curves:
                self._log_curves(client, child, record.curves)
            client.set_tag(child, "status", record.status)
            if record.error:
                client.set_tag(child, "error", truncate(record.error, MAX_TAG_VALUE))
            self._log_job_artifacts(client, child, run, record)
        finally:
            tracked.children.pop(record.job_id, None)
            tracked.epochs_seen.discard(record.job_id)
            client.set_terminated(child, "FINISHED" if record.status == "ok" else "FAILED")

    @_guarded
    def run_end(self, run: RunInfo, records: list[JobRecord], status: str) -> None:
        """Log run.json, reports and baseline scores; end open job runs (KILLED) and the parent."""
        key = str(run.run_dir)
        tracked = self._tracked(run)
        self._runs.pop(key, None)
        if tracked is None:
            return
        client, parent = tracked.client, tracked.parent_id
        try:
            for child in tracked.children.values():  # jobs interrupted mid-training
                self._warn_only(client.set_tag, child, "status", "interrupted")
                self._warn_only(client.set_terminated, child, "KILLED")
            self._log_baselines(client, parent, records)
            client.set_tag(parent, "status", status)
            counts = {s: sum(r.status == s for r in records if r.kind == "model") for s in ("ok", "failed")}
            self._log_metrics(client, parent, {f"jobs_{s}": n for s, n in counts.items()}, step=0)
            run_json = Path(run.run_dir) / "run.json"
            if run_json.is_file():
                client.log_artifact(parent, str(run_json))
            for pattern in REPORT_GLOBS:
                for path in sorted(Path(run.run_dir).glob(pattern)):
                    client.log_artifact(parent, str(path), "reports")
        finally:
            client.set_terminated(parent, RUN_STATUS.get(status, "FAILED"))

    # -- runs ------------------------------------------------------------------------------------

    def _tracked(self, run: RunInfo) -> _Tracked | None:
        key = str(run.run_dir)
        if key not in self._runs:
            self._runs[key] = self._start(run) if enabled() else None
        return self._runs[key]

    def _start(self, run: RunInfo) -> _Tracked | None:
        uri = tracking_uri(Path(run.run_dir))
        try:
            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri=uri)
            experiment_id = self._experiment(client, uri, run.suite_name)
            parent = self._find_parent(client, experiment_id, run.run_id)
            if parent is None:
                parent = client.create_run(experiment_id, run_name=run.run_id,
                                           tags=self._parent_tags(run)).info.run_id
                self._log_params(client, parent, self._run_params(run))
            else:  # --resume: the same cxrbench run goes on in the same MLflow run
                client.update_run(parent, status="RUNNING")
                client.set_tag(parent, "status", "running")
            return _Tracked(client, uri, experiment_id, parent)
        except Exception as exc:  # noqa: BLE001
            log.warning("MLflow tracking is off for run %s: cannot use the tracking store %s: %s: %s",
                        run.run_id, uri, type(exc).__name__, exc)
            return None

    @staticmethod
    def _experiment(client: Any, uri: str, name: str) -> str:
        found = client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                client.restore_experiment(found.experiment_id)
            return found.experiment_id
        try:
            return client.create_experiment(name, artifact_location=artifact_location(uri, name))
        except Exception:  # another process created it in between
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    @staticmethod
    def _find_parent(client: Any, experiment_id: str, run_id: str) -> str | None:
        runs = client.search_runs([experiment_id], max_results=1,
                                  filter_string=f"tags.`cxrbench.run_id` = '{run_id}' "
                                                f"and tags.`cxrbench.role` = 'suite_run'")
        return runs[0].info.run_id if runs else None

    def _child(self, tracked: _Tracked, run: RunInfo, job: str) -> str:
        """The open MLflow run of ``job``, created at its first event."""
        if job not in tracked.children:
            tags = {PARENT_TAG: tracked.parent_id, "cxrbench.role": "job", "cxrbench.run_id": run.run_id,
                    "cxrbench.job_id": job, "status": "running"}
            tracked.children[job] = tracked.client.create_run(
                tracked.experiment_id, run_name=job, tags=tags).info.run_id
        return tracked.children[job]

    # -- what is logged --------------------------------------------------------------------------

    @staticmethod
    def _parent_tags(run: RunInfo) -> dict[str, str]:
        header = run.header or {}
        tags = {"cxrbench.role": "suite_run", "cxrbench.run_id": run.run_id, "cxrbench.suite": run.suite_name,
                "cxrbench.run_dir": str(Path(run.run_dir).resolve()), "status": "running",
                "synthetic": as_param_value(bool(header.get("synthetic", False)))}
        git = header.get("git") or {}
        if git.get("commit"):
            tags["mlflow.source.git.commit"] = git["commit"]
        if header.get("command"):
            tags["cxrbench.command"] = truncate(header["command"], MAX_TAG_VALUE)
        return tags

    @staticmethod
    def _run_params(run: RunInfo) -> dict[str, str]:
        header = run.header or {}
        params = flatten(run.suite, "suite.")
        extra = {"run_id": run.run_id, "suite_name": run.suite_name,
                 "dataset": (header.get("dataset") or {}).get("name", run.suite.get("dataset", {}).get("name")),
                 "synthetic": bool(header.get("synthetic", False)), "n_jobs": len(run.jobs),
                 "protocol_sha256": header.get("protocol_sha256"),
                 "split_manifest_sha256": header.get("split_manifest_sha256"),
                 "cxrbench_version": header.get("cxrbench_version")}
        return params | {k: as_param_value(v) for k, v in extra.items() if v is not None}

    @staticmethod
    def _job_params(run: RunInfo, record: JobRecord) -> dict[str, str]:
        dataset = (run.suite.get("dataset") or {}).get("name")
        extra = {"suite": run.suite_name, "run_id": run.run_id, "job_id": record.job_id, "model": record.model,
                 "fold": record.fold, "seed": record.seed, "dataset": dataset, "synthetic": record.synthetic,
                 "plugin": record.plugin, "kind": record.kind, "model_config_sha256": record.model_config_sha256}
        # the resolved model config wins no name clash: its keys are `name`, `params.*`, `train.*`, ...
        return flatten(record.model_config) | {k: as_param_value(v) for k, v in extra.items()
                                               if v not in (None, "")}

    def _log_job_artifacts(self, client: Any, child: str, run: RunInfo, record: JobRecord) -> None:
        run_dir = Path(run.run_dir)
        record_file = run_dir / "records" / f"{record.job_id}.json"
        if record_file.is_file():
            client.log_artifact(child, str(record_file))
        else:
            client.log_dict(child, record.to_dict(), f"{record.job_id}.json")
        if record.predictions_path and (run_dir / record.predictions_path).is_file():
            client.log_artifact(child, str(run_dir / record.predictions_path))
        if record.confusion_matrix:
            classes = list((run.suite.get("task") or {}).get("classes") or [])
            client.log_dict(child, {"classes": classes, "matrix": record.confusion_matrix},
                            "confusion_matrix.json")
            fig = confusion_figure(record.confusion_matrix, classes)
            if fig is not None:
                client.log_figure(child, fig, "confusion_matrix.png")
        if record.curves:
            client.log_dict(child, record.curves, "curves.json")

    def _log_curves(self, client: Any, run_id: str, curves: dict[str, list[float]]) -> None:
        """Per-epoch curves of a job whose epochs were not seen live (e.g. imported records)."""
        from mlflow.entities import Metric

        ts = _now_ms()
        self._batched(client, run_id, "metrics",
                      [Metric(k, v, ts, step) for k, step, v in curve_points(curves)], 1000)

    def _log_baselines(self, client: Any, parent: str, records: list[JobRecord]) -> None:
        """Baseline (majority, stratified) test scores on the parent run, ``step`` = fold."""
        from mlflow.entities import Metric

        ts = _now_ms()
        metrics = [Metric(f"{r.model}.test_{k}", v, ts, r.fold)
                   for r in records if r.kind == "baseline" and r.status == "ok"
                   for k, v in finite(r.metrics).items()]
        self._batched(client, parent, "metrics", metrics, 1000)

    def _log_params(self, client: Any, run_id: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        self._batched(client, run_id, "params", [Param(k, v) for k, v in params.items()], 100)

    def _log_metrics(self, client: Any, run_id: str, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        ts = _now_ms()
        metrics = [Metric(k, v, ts, step) for k, v in values.items() if not math.isnan(v)]
        self._batched(client, run_id, "metrics", metrics, 1000)

    @staticmethod
    def _batched(client: Any, run_id: str, kind: str, items: list[Any], size: int) -> None:
        for i in range(0, len(items), size):
            client.log_batch(run_id, **{kind: items[i:i + size]})

    @staticmethod
    def _warn_only(fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001
            log.warning("MLflow tracking: %s failed: %s", getattr(fn, "__name__", fn), exc)
