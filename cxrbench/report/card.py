"""``cxrbench card RUN MODEL``: a markdown model card with Hugging Face ``model-index`` metadata.

Everything comes from the run folder through the results layer (:class:`~cxrbench.results.view.RunView`:
``run.json``, the job records, the latency files), the figures the leaderboard reads; nothing is
recomputed. A model run over several folds/seeds reports the mean of its jobs' figures (as the
leaderboard's mean column) in the metadata and every job's value and CI in the card body.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cxrbench.errors import ResultsError
from cxrbench.results.latency import latest_records, load_latency_records
from cxrbench.results.records import JobRecord
from cxrbench.results.view import RunView


def model_records(view: RunView, model: str) -> list[JobRecord]:
    """The ok records of model label ``model``; :class:`ResultsError` naming the labels otherwise."""
    recs = [r for r in view.records if r.model == model and r.kind != "baseline"]
    if not recs:
        labels = sorted({r.model for r in view.records if r.kind != "baseline"})
        raise ResultsError(f"run {view.run_id} has no model {model!r} (models: {', '.join(labels) or 'none'})")
    ok = [r for r in recs if r.status == "ok"]
    if not ok:
        raise ResultsError(f"run {view.run_id}: every job of {model!r} failed ({recs[0].error})")
    return sorted(ok, key=lambda r: (r.fold, r.seed))


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values))


def latency_rows(view: RunView, model: str) -> list[dict[str, Any]]:
    """The newest ok latency record per device/runtime/threads/batch of ``model``: this run's and imported ones."""
    root = view.dir.parent.parent
    recs = [r for r in load_latency_records(root, view.dir.parent.name)
            if r["model"] == model and r.get("run") in (None, view.run_id)]
    return sorted(latest_records(recs), key=lambda r: (r["device_name"], r["runtime"], r["threads"], r["batch_size"]))


def card_data(view: RunView, model: str, registry: Any = None) -> dict[str, Any]:
    """Every figure of the card, as plain data (what :func:`render_card` writes)."""
    recs = model_records(view, model)
    header, config = view.header, view.config
    first = recs[0]
    metric_names = list(dict.fromkeys([config["metrics"]["primary"], *config["metrics"].get("report", [])]))
    metrics = []
    for name in metric_names:
        values = [r.metrics[name] for r in recs if name in r.metrics]
        if not values:
            continue
        cis = [r.ci.get(name) for r in recs]
        metrics.append({"name": name, "value": _mean(values), "jobs": [
            {"job": r.job_id, "value": r.metrics[name], "ci": r.ci.get(name)} for r in recs if name in r.metrics],
            "ci": cis[0] if len(recs) == 1 else None})
    spec = None
    if registry is not None:
        try:
            spec = registry.model(first.model_name)
        except Exception:  # noqa: BLE001 - the plugin may be gone; the card still has the run's figures
            spec = None
    entry = {k: v for k, v in first.model_config.items() if k != "train"}
    init = ("local weights file " + str(entry["weights"])) if entry.get("weights") else \
        "upstream pretrained weights" if entry.get("pretrained") else "random initialisation"
    return {
        "model": model, "model_name": first.model_name, "plugin": first.plugin, "run_id": view.run_id,
        "suite": header.get("suite_name"), "protocol_sha256": header.get("protocol_sha256"),
        "suite_sha256": header.get("suite_sha256"), "cxrbench_version": header.get("cxrbench_version"),
        "git": header.get("git"), "synthetic": bool(header.get("synthetic") or first.synthetic),
        "task": config["task"], "dataset": config["dataset"], "split": config.get("split", {}),
        "metrics": metrics, "confidence": config["metrics"].get("confidence", 0.95),
        "ci_unit": first.ci_unit, "n_jobs": len(recs), "n_test": [r.n_test for r in recs],
        "n_train": first.n_train, "epochs_run": [r.epochs_run for r in recs],
        "cost": first.cost, "input": first.input, "init": init, "config": entry,
        "weights_license": spec.weights_license if spec is not None else "unknown (model no longer registered)",
        "latency": latency_rows(view, model),
        "checkpoint": first.checkpoint_path,
    }


def model_index(data: dict[str, Any]) -> dict[str, Any]:
    """The Hugging Face ``model-index`` front matter (hub-docs modelcard.md) of :func:`card_data`."""
    pct = round(100 * data["confidence"])
    ds = data["dataset"]
    metrics = []
    for m in data["metrics"]:
        label = m["name"]
        if m["ci"]:
            label += f" ({pct}% CI {m['ci'][0]:.4f}-{m['ci'][1]:.4f})"
        elif data["n_jobs"] > 1:
            label += f" (mean of {data['n_jobs']} jobs)"
        metrics.append({"type": m["name"], "value": round(float(m["value"]), 6), "name": label})
    dataset = {"name": ds["name"] + (" (synthetic)" if data["synthetic"] else ""), "type": ds["name"],
               "split": "test"}
    if ds.get("variant"):
        dataset["config"] = ds["variant"]
    return {"model-index": [{"name": data["model"], "results": [{
        "task": {"type": "image-classification", "name": f"{data['task']['type']} chest X-ray classification"},
        "dataset": dataset, "metrics": metrics,
        "source": {"name": f"cxrbench run {data['run_id']} (protocol {str(data['protocol_sha256'])[:12]})"}}]}],
        "tags": ["cxrbench", "chest-x-ray", "image-classification"] + (["synthetic-data"] if data["synthetic"] else []),
        "library_name": "pytorch"}


def _fmt(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:.4f}" if isinstance(value, float) else str(value)


def render_card(data: dict[str, Any]) -> str:
    """The card: YAML front matter (``model-index``) then markdown."""
    front = yaml.safe_dump(model_index(data), sort_keys=False, allow_unicode=True)
    pct = round(100 * data["confidence"])
    lines = [f"---\n{front}---", f"# {data['model']}", ""]
    if data["synthetic"]:
        lines += ["> Trained and tested on synthetic images: these figures test the harness, not the model.", ""]
    lines += [f"`{data['model_name']}` ({data['plugin'] or 'cxrbench'}) under the cxrbench suite "
              f"`{data['suite']}`, run `{data['run_id']}`. Not a clinical validation.", "",
              "## Protocol", "",
              f"- protocol sha256: `{data['protocol_sha256']}`; suite sha256: `{data['suite_sha256']}`",
              f"- cxrbench {data['cxrbench_version']}, git {data['git'] or 'unknown'}",
              f"- task: {data['task']['type']}, classes {data['task']['classes']}",
              f"- dataset: `{data['dataset']['name']}`, split {data['split'].get('strategy', '?')}; "
              f"{data['n_jobs']} job(s) (folds x seeds), test images per job {data['n_test']}",
              f"- input: {data['input'] or '(not recorded)'}",
              f"- initialisation: {data['init']}; epochs run {data['epochs_run']}",
              f"- licence of the initial weights: {data['weights_license']}",
              f"- checkpoint: `{data['checkpoint'] or 'none saved'}`", "",
              "## Metrics (test split)", "",
              f"| metric | value | {pct}% CI | per job |", "|---|---|---|---|"]
    unit = data["ci_unit"].get("unit") if data["ci_unit"] else None
    for m in data["metrics"]:
        ci = f"{m['ci'][0]:.4f} - {m['ci'][1]:.4f}" if m["ci"] else "-"
        jobs = "; ".join(f"{j['value']:.4f}" + (f" [{j['ci'][0]:.4f}, {j['ci'][1]:.4f}]" if j["ci"] else "")
                         for j in m["jobs"])
        lines.append(f"| {m['name']} | {m['value']:.4f} | {ci} | {jobs} |")
    lines += ["", f"CIs: percentile bootstrap over {unit or 'test images'}." if unit or data["metrics"] else "", ""]
    cost = data["cost"]
    lines += ["## Cost", "", f"- parameters: {_fmt(cost.get('params', 'not counted'))}",
              f"- MACs per image: {_fmt(cost.get('macs', cost.get('macs_error', 'not counted')))} "
              f"at input {cost.get('input', '?')}", ""]
    lines += ["## Latency", ""]
    if data["latency"]:
        lines += ["| device | runtime | threads | batch | median ms | p90 ms |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['device_name']} | {r['runtime']} | {r['threads']} | {r['batch_size']} | "
                  f"{r['median_ms']:.2f} | {r['p90_ms']:.2f} |" for r in data["latency"]]
    else:
        lines.append("Not profiled (suite `profile.latency`, or `cxrbench profile --suite` then `results import`).")
    return "\n".join(lines).rstrip() + "\n"


def write_card(run: str | Path, model: str, out: Path | None = None, results_root: Path | None = None,
               registry: Any = None) -> Path:
    """Write ``RUN/cards/<model>.md`` (or ``out``); returns the path."""
    view = RunView.open(run, results_root, registry=registry)
    text = render_card(card_data(view, model, view.registry))
    path = out or view.dir / "cards" / f"{model}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
