"""Assemble one run's HTML report: leaderboard, per-model diagnostics, cost trade-off, environment.

About 420 lines because it is one report's assembly: each section is a short method of one class
sharing the run, the output folder and the lazily loaded pixels (the figures are in ``plots``,
the per-model diagnostics in ``diagnostics``).

Everything is read from the run folder through :class:`~cxrbench.results.view.RunView`; only the
misclassified-image grid and Grad-CAM need the dataset again (re-decoded through the registry) and
Grad-CAM the saved checkpoints. A section whose inputs are missing says why instead of failing the
report.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrbench.errors import ResultsError
from cxrbench.leaderboard.latency import board_latency
from cxrbench.leaderboard.render import comparison_frame, display_frame, notices, stats_note, title
from cxrbench.leaderboard.table import Board, build_boards
from cxrbench.plugins import Registry, get_registry
from cxrbench.report import plots
from cxrbench.report.diagnostics import gradcam_picks, most_confident_errors, roc_curves
from cxrbench.report.html import render_html
from cxrbench.results.records import JobRecord
from cxrbench.results.store import write_atomic
from cxrbench.results.view import NO_CHECKPOINT, RunView
from cxrbench.specs import Predictions

log = logging.getLogger(__name__)


@dataclass
class Figure:
    """One PNG of the report: its file in the report folder and the same bytes as a data URI."""

    id: str
    title: str
    file: str
    uri: str


def slug(label: str) -> str:
    """A model label as an HTML id / file-name fragment."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "model"


def _figure(path: Path, fig_id: str, fig_title: str) -> Figure:
    uri = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    return Figure(fig_id, fig_title, path.name, uri)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _table(df: pd.DataFrame, text_columns: int = 1) -> str:
    """``df`` as an HTML table; the first ``text_columns`` (1 or 2) columns are left-aligned."""
    classes = ["table", "left2"] if text_columns == 2 else ["table"]
    return df.to_html(index=False, escape=True, border=0, classes=classes, na_rep="")


class _Report:
    """State shared by the sections of one report."""

    def __init__(self, run: RunView, out: Path, gradcam: bool, device: str, n_misclassified: int,
                 cams_per_class: int):
        self.run, self.store, self.out, self.registry = run, run.store, out, run.registry
        self.gradcam, self.device_name = gradcam, device
        self.n_misclassified, self.cams_per_class = n_misclassified, cams_per_class
        self.header, self.records = run.header, run.records
        self.task, self.classes = run.task, run.classes
        self.suite, self.suite_error = None, None
        try:
            self.suite = run.suite
        except ResultsError as exc:  # an old run.json still gets the record-based sections
            self.suite_error = str(exc)
        self._pixels: Any = None
        self._pixels_error: str | None = None
        self._device: Any = None

    # -- shared inputs ---------------------------------------------------------------------------

    def pixels(self) -> Any:
        """The run's dataset (loaded once), or None with ``_pixels_error`` saying why."""
        if self._pixels is None and self._pixels_error is None:
            if self.suite is None:
                self._pixels_error = self.suite_error
                return None
            try:
                self._pixels = self.run.pixels()
            except Exception as exc:  # noqa: BLE001 - missing data must not stop the report
                self._pixels_error = f"{type(exc).__name__}: {exc}"
        return self._pixels

    def device(self) -> Any:
        if self._device is None:
            from cxrbench.engine.device import resolve_device

            self._device = resolve_device(self.device_name)
        return self._device

    # -- sections --------------------------------------------------------------------------------

    def leaderboard(self, board: Board) -> dict[str, Any]:
        has_ref = bool(board.reference and board.reference.get("models"))
        reproduce = list(zip(board.rows.model, board.rows.reproduce)) if not board.rows.empty else []
        return {
            "title": title(board), "notices": notices(board), "stats": stats_note(board), "synthetic": board.synthetic,
            "table": _table(display_frame(board), 2) if not board.rows.empty else "",
            "comparison": _table(comparison_frame(board), 2) if has_ref else "",
            "reference": board.reference if has_ref else None,
            "failed": board.failed, "reproduce": reproduce,
        }

    def model_section(self, label: str, recs: list[JobRecord], board: Board) -> dict[str, Any]:
        recs = sorted(recs, key=lambda r: (r.fold, r.seed))
        ok = [r for r in recs if r.status == "ok"]
        s = slug(label)
        section: dict[str, Any] = {"label": label, "slug": s, "jobs": self.jobs_table(recs, board),
                                   "n_jobs": len(recs), "failed": [r for r in recs if r.status != "ok"]}
        if not ok:
            return section
        rec = ok[0]
        section |= {"job": rec.job_id, "name": rec.model_name, "plugin": rec.plugin,
                    "params": rec.cost.get("params"), "macs": rec.cost.get("macs"),
                    "best_epoch": rec.best_epoch, "epochs_run": rec.epochs_run,
                    "summary": [(m, _fmt(rec.metrics.get(m)), rec.ci.get(m)) for m in board.metrics]}
        section["curves"] = self.curves(rec, s)
        pred, ids, pred_error = self.predictions(rec)
        section["pred_error"] = pred_error
        section["confusion"] = self.confusion(rec, pred, s)
        section["report"] = self.class_report(rec)
        if pred is not None:
            section["roc"] = self.roc(pred, s, label)
            section["reliability"] = self.reliability(pred, s, label)
            section["misclassified"] = self.misclassified(ids, pred, s)
            section["gradcam"] = self.gradcam_section(rec, ids, pred, s)
        return section

    def predictions(self, rec: JobRecord) -> tuple[Predictions | None, list[str], str | None]:
        """The job's test predictions and their sample ids, or why they cannot be read."""
        if not rec.predictions_path:
            return None, [], "this job recorded no predictions file"
        try:
            stored = self.run.predictions(rec)
        except (OSError, KeyError, ValueError) as exc:
            return None, [], f"cannot read {Path(rec.predictions_path).name}: {type(exc).__name__}: {exc}"
        return stored.pred, stored.sample_ids, None

    def curves(self, rec: JobRecord, s: str) -> dict[str, Any]:
        if not rec.curves or not rec.curves.get("train_loss"):
            return {"note": "no per-epoch curves recorded"}
        path = plots.curves_plot(rec.curves, rec.best_epoch, self.out / f"curves-{s}.png")
        note = "" if any(k.startswith("val_") for k in rec.curves) else "no validation split: training loss only"
        return {"figure": _figure(path, f"curves-{s}", "training curves"), "note": note}

    def roc(self, pred: Predictions, s: str, label: str) -> dict[str, Any]:
        curves, skipped = roc_curves(pred)
        note = (f"AUC undefined (only one value in the test set) for: {', '.join(skipped)}" if skipped else "")
        if not curves:
            return {"note": note or "no ROC curve can be drawn", "aucs": []}
        kind = {"binary": f"positive class {pred.class_names[pred.positive]}", "multiclass": "one-vs-rest",
                "multilabel": "per label"}[pred.task]
        path = plots.roc_plot(curves, f"ROC ({kind}), test", self.out / f"roc-{s}.png")
        return {"figure": _figure(path, f"roc-{s}", f"ROC curves of {label}"), "note": note,
                "aucs": [(c["name"], f"{c['auc']:.4f}") for c in curves]}

    def confusion(self, rec: JobRecord, pred: Predictions | None, s: str) -> dict[str, Any]:
        cm = np.asarray(rec.confusion_matrix)
        if cm.size == 0:
            return {"note": "no confusion matrix recorded"}
        path = plots.confusion_plot(cm, self.classes, self.out / f"confusion-{s}.png")
        if cm.ndim == 3:
            header = ["label", "TN", "FP", "FN", "TP"]
            rows = [[name, *[int(v) for v in cm[j].ravel()]] for j, name in enumerate(self.classes)]
        else:
            header = ["true \\ predicted", *self.classes]
            rows = [[name, *[int(v) for v in cm[i]]] for i, name in enumerate(self.classes)]
        note = ""
        if pred is not None:
            from cxrbench.metrics import confusion_matrix

            if not np.array_equal(confusion_matrix(pred), cm):
                note = "warning: the predictions file gives a different confusion matrix than the record"
        return {"figure": _figure(path, f"confusion-{s}", "confusion matrix"), "header": header,
                "rows": rows, "note": note}

    def class_report(self, rec: JobRecord) -> dict[str, Any]:
        report = rec.class_report or {}
        auc = report.get("per_label_auc") or {}
        rows = []
        for key, value in report.items():
            if isinstance(value, dict) and "precision" in value:
                row = {"class": key, **{m: _fmt(float(value[m])) for m in ("precision", "recall", "f1-score")},
                       "support": int(value["support"])}
                if auc:
                    row["AUC"] = _fmt(float(auc[key])) if auc.get(key) is not None else ""
                rows.append(row)
        if not rows:
            return {"note": "no classification report recorded"}
        accuracy = report.get("accuracy")
        return {"table": _table(pd.DataFrame(rows)), "accuracy": _fmt(accuracy) if accuracy is not None else None}

    def reliability(self, pred: Predictions, s: str, label: str) -> dict[str, Any]:
        from cxrbench.report.calibration import reliability_data

        data = reliability_data(pred)
        path = plots.reliability_plot(data["curve"], f"reliability ({data['kind']}), test",
                                      self.out / f"reliability-{s}.png", data["xlabel"], data["ylabel"])
        return {"figure": _figure(path, f"reliability-{s}", f"reliability diagram of {label}: {data['caption']}"),
                "ece": data["ece"]}

    def misclassified(self, ids: list[str], pred: Predictions, s: str) -> dict[str, Any]:
        errors = most_confident_errors(ids, pred, self.n_misclassified)
        out: dict[str, Any] = {"items": [e | {"confidence": f"{e['confidence']:.3f}"} for e in errors]}
        if not errors:
            return out | {"note": "no misclassified test image"}
        pixels = self.pixels()
        if pixels is None:
            return out | {"note": f"images unavailable (the dataset could not be loaded: {self._pixels_error}); "
                                  "the sample ids are listed instead"}
        try:
            images = pixels.uint8([e["sample_id"] for e in errors]).numpy()
        except KeyError as exc:
            return out | {"note": f"images unavailable: {exc}"}
        captions = [f"{e['sample_id']}\n{e['caption']}\nconfidence {e['confidence']:.3f}" for e in errors]
        path = plots.image_grid(list(images), captions, self.out / f"misclassified-{s}.png")
        return out | {"figure": _figure(path, f"misclassified-{s}", "most confident errors")}

    def gradcam_section(self, rec: JobRecord, ids: list[str], pred: Predictions, s: str) -> dict[str, Any]:
        from cxrbench.models.gradcam import gradcam_missing

        if not self.gradcam:
            return {"note": "skipped (--no-gradcam)"}
        missing = gradcam_missing()
        if missing:
            return {"note": missing}
        if self.suite is None:
            return {"note": self.suite_error}
        spec = self.registry.model(rec.model_name)
        if not spec.cam_layer:
            return {"note": f"model {rec.model_name!r} declares no cam_layer in its ModelSpec"}
        if not rec.checkpoint_path:
            return {"note": NO_CHECKPOINT}
        ckpt = self.run.checkpoint(rec)
        if not ckpt.is_file():
            return {"note": f"checkpoint {rec.checkpoint_path} is missing from the run folder"}
        pixels = self.pixels()
        if pixels is None:
            return {"note": f"images unavailable (the dataset could not be loaded: {self._pixels_error})"}
        try:
            return self._gradcam(rec, spec.cam_layer, ids, pred, pixels, s)
        except Exception as exc:  # noqa: BLE001 - one model's Grad-CAM failure must not lose the report
            log.debug("Grad-CAM failed for %s", rec.job_id, exc_info=True)
            return {"note": f"Grad-CAM failed: {type(exc).__name__}: {exc}"}

    def _gradcam(self, rec: JobRecord, layer: str, ids: list[str], pred: Predictions, pixels: Any,
                 s: str) -> dict[str, Any]:
        import torch

        from cxrbench.models.gradcam import grad_cam, overlay
        from cxrbench.models.predict import probabilities

        picks = gradcam_picks(pred, self.cams_per_class)
        if not picks:
            return {"note": "no test image to explain"}
        images = pixels.uint8([ids[i] for i, _ in picks])
        device = self.device()
        model = self.run.model(rec, device)
        x = pixels.model_input(images, rec.input).to(device)
        with torch.no_grad():
            prob = probabilities(model(x).float(), self.task).cpu().numpy()
        recorded = np.asarray(pred.y_prob)[[i for i, _ in picks]]
        drift = float(np.abs(prob - recorded).max())
        multilabel = self.task == "multilabel"
        maps, shape = grad_cam(model, layer, x, [j for _, j in picks] if multilabel else None)
        names = pred.class_names
        tiles, captions = [], []
        for (i, j), img, mask, p in zip(picks, images.numpy(), maps, prob):
            tiles.append(overlay(img, mask))
            empty = " [empty map]" if float(mask.max()) <= 0 else ""  # no positive evidence at this layer
            if multilabel:
                captions.append(f"{ids[i]}\n{names[j]} (p={p[j]:.2f}){empty}")
            else:
                top = int(p.argmax())
                captions.append(f"{ids[i]}\ntrue {names[j]}\nmap: {names[top]} (p={p[top]:.2f}){empty}")
        path = plots.image_grid(tiles, captions, self.out / f"gradcam-{s}.png")
        spatial = "x".join(str(v) for v in shape[-2:]) if len(shape) >= 2 else "?"
        note = (f"the target layer's feature map is {spatial} at this input size, so every map is uniform; "
                f"a larger input size gives informative maps") if shape[-2:] == (1, 1) else ""
        return {"figure": _figure(path, f"gradcam-{s}", "Grad-CAM"), "layer": layer, "drift": f"{drift:.2g}",
                "reproduced": drift < 1e-3, "target": "the labelled finding" if multilabel else "the predicted class",
                "feature": spatial, "note": note, "empty": any("[empty map]" in c for c in captions)}

    def jobs_table(self, recs: list[JobRecord], board: Board) -> str:
        rows = []
        for r in recs:
            row: dict[str, Any] = {"job": r.job_id, "fold": r.fold, "seed": r.seed, "status": r.status}
            for m in board.metrics:
                row[m] = _fmt(r.metrics.get(m)) if r.status == "ok" else ""
            row["best epoch"] = f"{r.best_epoch}/{r.epochs_run}" if r.status == "ok" else ""
            row["train s"] = f"{r.train_seconds:.1f}" if r.status == "ok" else ""
            row["error"] = r.error or ""
            rows.append(row)
        return _table(pd.DataFrame(rows))

    def tradeoff(self, board: Board) -> dict[str, Any]:
        primary = board.primary
        rows = board.rows.to_dict("records") if not board.rows.empty else []
        points = [{"model": r["model"], "macs": r.get("macs"), "metric": r[f"{primary}_mean"],
                   "std": r[f"{primary}_std"] if r.get("n", 1) > 1 else None}
                  for r in rows if r.get("kind", "model") == "model"]
        out: dict[str, Any] = {"primary": primary}
        path = plots.cost_plot(points, primary, self.out / "tradeoff-macs.png")
        out["macs"] = _figure(path, "tradeoff-macs", f"{primary} vs MACs")
        latency, note = self.latency_points(board)
        if latency:
            from cxrbench.profiling.plot import pareto_plot

            png = pareto_plot(latency, primary, self.out / "tradeoff-latency",
                              higher_is_better=board.higher_is_better)[0]
            out["latency"] = _figure(png, "tradeoff-latency", f"{primary} vs p90 latency")
            out["latency_table"] = _table(pd.DataFrame(
                [{"model": p["model"], "device": p["device"], "runtime": p["runtime"], "threads": p["threads"],
                  "batch": p["batch_size"], "median ms": f"{p['median_ms']:.2f}", "p90 ms": f"{p['p90_ms']:.2f}",
                  primary: _fmt(p["metric"])} for p in latency]))
        out["latency_note"] = note
        return out

    def latency_points(self, board: Board) -> tuple[list[dict[str, Any]], str]:
        """Pareto points from the board's latency records (:func:`board_latency`, the leaderboard's selection;
        the smallest batch size measured), or why there are none."""
        hint = (f"Latency was not profiled for suite {board.suite!r}, so the plot below uses MACs. To add it: "
                f"cxrbench profile --suite {self.header.get('suite_path') or '<suite.yaml>'} --run "
                f"{self.store.run_id} --latency --out latency.json; cxrbench results import latency.json")
        try:
            from cxrbench.profiling.plot import pareto_plot  # noqa: F401
        except ImportError:
            return [], hint
        from cxrbench.results.latency import load_latency_records

        try:
            records = board_latency(load_latency_records(self.store.dir.parent.parent, suite=board.suite), board)
        except Exception as exc:  # noqa: BLE001 - an unreadable latency file must not stop the report
            return [], f"latency records could not be read: {exc}"
        metric = {r["model"]: r[f"{board.primary}_mean"] for r in board.rows.to_dict("records")} \
            if not board.rows.empty else {}
        records = [r for r in records if r["model"] in metric and r.get("p90_ms")]
        if not records:
            return [], hint
        smallest = min(r["batch_size"] for r in records)
        records = [r for r in records if r["batch_size"] == smallest]
        several = len({(r["runtime"], r["threads"]) for r in records}) > 1
        points = []
        for r in records:
            name = f"{r['model']} [{r['runtime']}, {r['threads']}t]" if several else r["model"]
            points.append({"model": name, "metric": metric[r["model"]], "p90_ms": r["p90_ms"],
                           "median_ms": r.get("median_ms") or math.nan, "device": r["device_name"] or "?",
                           "runtime": r["runtime"], "threads": r["threads"], "batch_size": r["batch_size"]})
        return points, ""

    def environment_facts(self) -> list[tuple[str, str]]:
        """The few facts worth reading before the full JSON."""
        env, git = self.header.get("environment") or {}, self.header.get("git") or {}
        facts = [("python", env.get("python")), ("torch", env.get("torch")), ("device", env.get("device")),
                 ("GPU", env.get("cuda_device")), ("CPU", env.get("cpu_model")),
                 ("cxrbench", self.header.get("cxrbench_version")),
                 ("git", (git.get("commit") or "")[:12] + (" (uncommitted changes)" if git.get("dirty") else ""))]
        return [(k, str(v)) for k, v in facts if v]

    def environment(self) -> str:
        h = self.header
        keep = ["run_id", "status", "created_at", "finished_at", "command", "suite_path", "overrides",
                "models_filter", "cxrbench_version", "git", "environment", "plugins", "dataset", "synthetic",
                "split_manifest_sha256", "suite_sha256", "protocol_sha256"]
        return json.dumps({k: h[k] for k in keep if k in h}, indent=2, default=str)

    def suite_text(self) -> str:
        import yaml

        return yaml.safe_dump(self.header["suite"], sort_keys=False, allow_unicode=True)


def build_report(run: str | Path, out_dir: str | Path | None = None, *, results_root: Path | None = None,
                 gradcam: bool = True, device: str = "auto", registry: Registry | None = None,
                 n_misclassified: int = 8, cams_per_class: int = 2) -> Path:
    """Write ``<run>/report/index.html`` (or ``<out_dir>/index.html``) and its PNGs; returns the HTML path.

    ``run`` is a run folder or a run id under ``results_root``. Figures are written as PNG files and
    embedded in the HTML (data URIs), so the single file opens anywhere without a network.
    """
    view = RunView.open(run, results_root, registry or get_registry())
    store = view.store
    out = Path(out_dir) if out_dir else store.report_dir
    out.mkdir(parents=True, exist_ok=True)
    report = _Report(view, out, gradcam, device, n_misclassified, cams_per_class)
    board = build_boards([view], registry=view.registry)[0]
    by_model: dict[str, list[JobRecord]] = {}
    for rec in report.records:
        if rec.kind == "model":
            by_model.setdefault(rec.model, []).append(rec)
    ranked = [m for m in board.rows.model if m in by_model] if not board.rows.empty else []
    order = ranked + [m for m in by_model if m not in ranked]
    context = {
        "header": report.header, "run_id": store.run_id, "suite_name": report.header.get("suite_name"),
        "board": report.leaderboard(board), "primary": board.primary,
        "models": [report.model_section(m, by_model[m], board) for m in order],
        "tradeoff": report.tradeoff(board), "environment": report.environment(),
        "environment_facts": report.environment_facts(),
        "suite_text": report.suite_text(), "suite_error": report.suite_error,
        "gradcam_enabled": gradcam,
    }
    from cxrbench.probes.report import probes_context  # `cxrbench probe` writes <run>/probes.json

    context["probes"] = probes_context(store)
    return write_atomic(out / "index.html", render_html(context))
