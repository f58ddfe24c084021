"""The read side of a run folder: what the leaderboard, the report, the probes and ``profile --run`` read.

A :class:`RunView` gives the header, the validated :class:`~cxrbench.suite.schema.Suite` rebuilt from
``run.json``'s resolved suite, the job records, a job's predictions, a checkpoint as a model (built
by :func:`cxrbench.models.build.build_model`, as the engine builds it) and the dataset's pixels
decoded and split as the run had them (the data layer's own preparation).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from cxrbench.errors import ResultsError
from cxrbench.results.predictions import StoredPredictions, read_predictions
from cxrbench.results.records import JobRecord, first_checkpoints
from cxrbench.results.store import RunStore

NO_CHECKPOINT = "no checkpoint saved: set train.save_checkpoints: true in the suite and run it again"

if TYPE_CHECKING:
    import torch

    from cxrbench.data.prepare import PreparedData
    from cxrbench.plugins import Registry
    from cxrbench.results.pixels import RunPixels
    from cxrbench.suite.schema import ModelEntry, Suite


class RunView:
    """One run folder, read (header and records are read once, on first use)."""

    def __init__(self, store: RunStore, registry: "Registry | None" = None):
        self.store = store
        self._registry = registry

    @classmethod
    def open(cls, run: str | Path, root: Path | None = None, registry: "Registry | None" = None) -> "RunView":
        """A run by folder path or by run id (searched under ``root``, default the results root)."""
        return cls(RunStore.open(run, root), registry)

    @property
    def dir(self) -> Path:
        return self.store.dir

    @property
    def run_id(self) -> str:
        return self.store.run_id

    @property
    def registry(self) -> "Registry":
        if self._registry is None:
            from cxrbench.plugins import get_registry

            self._registry = get_registry()
        return self._registry

    @cached_property
    def header(self) -> dict[str, Any]:
        """``run.json``."""
        return self.store.read_header()

    @cached_property
    def records(self) -> list[JobRecord]:
        return self.store.records()

    @property
    def config(self) -> dict[str, Any]:
        """The resolved suite as plain data (``run.json``'s ``suite``)."""
        return self.header["suite"]

    @cached_property
    def suite(self) -> "Suite":
        """The resolved suite, validated again; :class:`ResultsError` when it no longer validates."""
        from cxrbench.suite.schema import Suite

        try:
            return Suite.model_validate(self.config)
        except Exception as exc:  # noqa: BLE001 - pydantic or a missing key
            raise ResultsError(f"{self.dir}: the run's suite no longer validates: {type(exc).__name__}: {exc}") \
                from None

    # -- the task, from the recorded suite (an old run.json that no longer validates still has it) ----

    @property
    def task(self) -> str:
        return self.config["task"]["type"]

    @property
    def classes(self) -> list[str]:
        return list(self.config["task"]["classes"])

    @property
    def positive(self) -> int:
        """Index of the positive class (binary tasks; 1 otherwise, as :class:`Predictions` expects)."""
        task = self.config["task"]
        return self.classes.index(task.get("positive_class") or self.classes[-1]) if self.task == "binary" else 1

    # -- artefacts -------------------------------------------------------------------------------

    def predictions(self, rec: JobRecord, external: str | None = None) -> StoredPredictions:
        """A job's test predictions (or its predictions on external set ``external``).

        Raises ``FileNotFoundError`` when the record names no file, and whatever reading it raises
        (``OSError``, ``KeyError``, ``ValueError``).
        """
        rel = rec.external.get(external, {}).get("predictions_path") if external else rec.predictions_path
        if not rel:
            what = f"external set {external!r}" if external else "the test split"
            raise FileNotFoundError(f"job {rec.job_id} recorded no predictions file for {what}")
        return read_predictions(self.dir / rel, self.classes, self.task, self.positive)

    def first_checkpoints(self) -> dict[str, JobRecord]:
        """model label -> the record of its first ok job (lowest fold, then seed) that saved a checkpoint."""
        return first_checkpoints(self.records)

    def checkpoint(self, rec: JobRecord) -> Path | None:
        """The job's checkpoint file, or None when it saved none."""
        return self.dir / rec.checkpoint_path if rec.checkpoint_path else None

    def model_entry(self, rec: JobRecord) -> "ModelEntry":
        """The suite entry a job trained (from its record's config when the suite no longer lists it)."""
        from cxrbench.suite.schema import ModelEntry

        entry = next((e for e in self.suite.models if e.key == rec.model), None)
        if entry is None:
            entry = ModelEntry.model_validate({k: v for k, v in rec.model_config.items() if k != "train"})
        return entry

    def model(self, rec: JobRecord, device: "torch.device | str" = "cpu") -> "torch.nn.Module":
        """The job's model with its trained weights, in eval mode, every parameter differentiable.

        Built without upstream or local weights (the checkpoint holds them all: no download) and
        unfrozen, so gradients reach any layer (Grad-CAM) even when the run froze the backbone.
        """
        from cxrbench.models.build import build_model
        from cxrbench.models.factory import read_state_dict

        path = self.checkpoint(rec)
        if path is None:
            raise FileNotFoundError(f"job {rec.job_id}: {NO_CHECKPOINT}")
        bare = self.model_entry(rec).model_copy(update={"pretrained": False, "weights": None, "freeze": "none"})
        model, _ = build_model(self.suite, bare, self.registry)
        model.load_state_dict(read_state_dict(path))
        for p in model.parameters():
            p.requires_grad_(True)
        return model.to(device).eval()

    # -- data ------------------------------------------------------------------------------------

    def train_ids(self, fold: int = 0) -> list[str]:
        """Sample ids of ``fold``'s training rows (``splits.csv``)."""
        splits = pd.read_csv(self.store.splits_path, dtype={"sample_id": str})
        return splits[(splits["fold"] == fold) & (splits["split"] == "train")]["sample_id"].tolist()

    def pixels(self) -> "RunPixels":
        """The dataset's images by sample id, decoded and normalised as the run evaluated them
        (raises whatever the dataset raises when its data is missing)."""
        from cxrbench.results.pixels import open_pixels

        return open_pixels(self.suite, self.registry, self.train_ids())

    def prepared_data(self) -> "PreparedData":
        """The data prepared exactly as the engine did; :class:`ResultsError` when the dataset now gives
        a different split than the run's (checked against its split manifest hash)."""
        from cxrbench.data.prepare import prepare_data

        data = prepare_data(self.suite, self.registry)
        expected = self.header.get("split_manifest_sha256")
        if expected and data.manifest_sha256 != expected:
            raise ResultsError(f"run {self.run_id}: the dataset now gives a different split than the run's (its "
                               "files changed?), so the run's test rows cannot be re-created")
        return data
