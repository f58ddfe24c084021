"""``cxrbench report``: one tiny run's HTML report, checked against the run's own files and scikit-learn."""

from __future__ import annotations

import argparse
import base64
import html
import json
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from sklearn.metrics import confusion_matrix, roc_auc_score

from cxrbench.engine.runner import make_batches, run_suite
from cxrbench.errors import DatasetError
from cxrbench.leaderboard.table import RESEARCH_NOTICE
from cxrbench.report import build_report
from cxrbench.cli.report import add_report_parser
from cxrbench.results.store import RunStore

MODELS = ["lenet", "resnet18"]
SECTIONS = ["notices", "leaderboard", "paper-comparison", "tradeoff", "environment", "suite"]
PER_MODEL = ["curves", "roc", "confusion", "report", "reliability", "misclassified", "gradcam"]


@pytest.fixture
def report_index(suite_file, tmp_path_factory, monkeypatch) -> Path:
    """index.html of a lenet + resnet18 run (2 epochs, checkpoints, a paper reference), built once per session
    (test_report_browser.py uses it too)."""
    base = tmp_path_factory.getbasetemp() / "report-run"
    marker = base / "index-path.txt"
    if marker.is_file():
        return Path(marker.read_text())
    monkeypatch.setenv("CXRBENCH_MLFLOW", "0")  # an installed tracking plugin is not what this test is about
    suite = suite_file(models=MODELS, train={"epochs": 2, "save_checkpoints": True},
                       reference={"source": "A paper (2024)", "models": {"resnet18": {"accuracy": 0.9}}})
    outcome = run_suite(suite, results_root=base / "res", device="cpu")
    assert outcome.status == "complete"
    index = build_report(outcome.store.dir)
    marker.write_text(str(index))
    return index


class _Section(HTMLParser):
    """Text of every ``<td class="...cls...">`` (and the whole text) inside the element with ``id``."""

    def __init__(self, element_id: str, cell_class: str | None = None):
        super().__init__()
        self.id, self.cls = element_id, cell_class
        self.depth, self.cells, self.text, self._cell = 0, [], [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if self.depth:
            self.depth += tag not in ("img", "br", "meta", "input")
            if tag == "td" and self.cls and self.cls in (a.get("class") or "").split():
                self._cell = []
        elif a.get("id") == self.id:
            self.depth = 1

    def handle_endtag(self, tag):
        if self.depth:
            if tag == "td" and self._cell is not None:
                self.cells.append("".join(self._cell).strip())
                self._cell = None
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.text.append(data)
            if self._cell is not None:
                self._cell.append(data)


def section(page: str, element_id: str, cell_class: str | None = None) -> _Section:
    parser = _Section(element_id, cell_class)
    parser.feed(page)
    assert parser.text, f"no element with id={element_id!r}"
    return parser


def record(index: Path, model: str):
    store = RunStore(index.parent.parent)
    return next(r for r in store.records() if r.model == model)


def predictions(index: Path, model: str) -> pd.DataFrame:
    return pd.read_csv(index.parent.parent / record(index, model).predictions_path, dtype={"sample_id": str})


def test_every_section_is_present_with_its_png(report_index):
    page = report_index.read_text()
    for sid in SECTIONS + [f"{part}-{m}" for m in MODELS for part in PER_MODEL]:
        assert f'id="{sid}"' in page, sid
    for m in MODELS:
        for part in ("curves", "roc", "confusion", "misclassified", "gradcam", "reliability"):
            if part == "gradcam" and not _has_gradcam():
                continue
            png = report_index.parent / f"{part}-{m}.png"
            with Image.open(png) as img:
                img.verify()
                assert img.format == "PNG"
    with Image.open(report_index.parent / "tradeoff-macs.png") as img:
        assert img.format == "PNG" and img.size[0] > 300


def _has_gradcam() -> bool:
    try:
        import pytorch_grad_cam  # noqa: F401
    except ImportError:
        return False
    return True


def test_images_are_embedded_and_nothing_is_fetched(report_index):
    page = report_index.read_text()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    on_disk = {p.read_bytes() for p in report_index.parent.glob("*.png")}
    assert {base64.b64decode(s.split(",", 1)[1]) for s in srcs} <= on_disk  # the same bytes as the PNG files


def test_notices_leaderboard_and_paper_comparison(report_index):
    page = report_index.read_text()
    notices = " ".join(section(page, "notices").text)
    assert RESEARCH_NOTICE in notices and "Synthetic data" in notices
    board = " ".join(section(page, "leaderboard").text)
    for m in [*MODELS, "baseline_majority"]:
        assert m in board
    acc = record(report_index, "resnet18").metrics["accuracy"]
    comp = section(page, "paper-comparison")
    text = " ".join(comp.text)
    assert "A paper (2024)" in text and "0.9000" in text and f"{acc:.4f}" in text and f"{acc - 0.9:+.4f}" in text


@pytest.mark.parametrize("model", MODELS)
def test_confusion_matrix_shown_equals_sklearn_on_the_predictions(report_index, model):
    df = predictions(report_index, model)
    expected = confusion_matrix(df.y_true, df.y_pred, labels=[0, 1])
    shown = section(report_index.read_text(), f"confusion-{model}", "cm").cells
    assert np.array_equal(np.array(shown, dtype=int).reshape(2, 2), expected)
    assert np.array_equal(expected, np.asarray(record(report_index, model).confusion_matrix))


@pytest.mark.parametrize("model", MODELS)
def test_roc_auc_and_class_report(report_index, model):
    df = predictions(report_index, model)
    page = report_index.read_text()
    (auc,) = section(page, f"roc-{model}", "auc").cells
    assert float(auc) == pytest.approx(roc_auc_score(df.y_true == 1, df.prob_pneumonia), abs=5e-5)
    rep = record(report_index, model).class_report
    text = " ".join(section(page, f"report-{model}").text)
    for cls in ("normal", "pneumonia", "macro avg", "weighted avg"):
        assert cls in text and f"{rep[cls]['recall']:.4f}" in text and f"{rep[cls]['f1-score']:.4f}" in text


def sklearn_ece(truth: np.ndarray, prob: np.ndarray, n_bins: int = 15) -> float:
    """ECE of a positive-rate reliability diagram from sklearn's calibration_curve (uniform bins)."""
    from sklearn.calibration import calibration_curve

    rate, mean_prob = calibration_curve(truth, prob, n_bins=n_bins, strategy="uniform")
    ids = np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:-1], prob)  # the binning calibration_curve uses
    counts = np.bincount(ids, minlength=n_bins)
    counts = counts[counts > 0]
    return float(np.sum(counts * np.abs(rate - mean_prob)) / len(prob))


@pytest.mark.parametrize("model", MODELS)
def test_reliability_diagram_caption_gives_the_positive_class_ece(report_index, model):
    df = predictions(report_index, model)
    ece = sklearn_ece((df.y_true == 1).to_numpy(), df.prob_pneumonia.to_numpy())
    text = " ".join(section(report_index.read_text(), f"reliability-{model}").text)
    assert f"ECE {ece:.4f} (positive class pneumonia; 15 equal-width bins; {len(df)} samples)" in text, text
    with Image.open(report_index.parent / f"reliability-{model}.png") as img:
        assert img.format == "PNG" and img.size[0] > 300


@pytest.mark.parametrize("model", MODELS)
def test_misclassified_are_the_most_confident_errors(report_index, model):
    df = predictions(report_index, model)
    wrong = df[df.y_true != df.y_pred].copy()
    wrong["conf"] = wrong[["prob_normal", "prob_pneumonia"]].max(axis=1)
    expected = wrong.sort_values("conf", ascending=False, kind="stable").sample_id.head(8).tolist()
    listed = section(report_index.read_text(), f"misclassified-{model}", "sample").cells
    assert listed == expected and len(listed) == min(8, len(wrong))


def test_gradcam_reproduces_the_recorded_predictions(report_index):
    pytest.importorskip("pytorch_grad_cam")
    page = report_index.read_text()
    for m in MODELS:
        text = " ".join(section(page, f"gradcam-{m}").text)
        assert "checkpoint reproduces the run" in text, text
        with Image.open(report_index.parent / f"gradcam-{m}.png") as img:
            assert img.size[0] > 200
    # resnet18's layer4 is 1x1 at 32 px: the report says so instead of showing a silently flat map
    assert "1x1" in " ".join(section(page, "gradcam-resnet18").text)


def test_grad_cam_matches_a_hand_computed_map():
    pytest.importorskip("pytorch_grad_cam")
    import torch.nn.functional as F

    from cxrbench.models.lenet import LeNet5
    from cxrbench.models.gradcam import grad_cam

    torch.manual_seed(0)
    model = LeNet5(num_classes=3, in_chans=1, image_size=32).eval()
    x = torch.randn(2, 1, 32, 32)
    maps, shape = grad_cam(model, "conv2", x)
    acts = {}
    hook = model.conv2.register_forward_hook(lambda _m, _i, out: acts.setdefault("a", out))
    logits = model(x)
    hook.remove()
    a = acts["a"]
    score = logits[torch.arange(2), logits.argmax(1)].sum()
    weights = torch.autograd.grad(score, a)[0].mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * a).sum(1)).detach()
    cam = cam - cam.amin(dim=(1, 2), keepdim=True)
    cam = cam / (cam.amax(dim=(1, 2), keepdim=True) + 1e-7)
    up = F.interpolate(cam[:, None], size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
    up = up - up.amin(dim=(1, 2), keepdim=True)  # min-max again after the resize, as grad-cam does
    expected = (up / (up.amax(dim=(1, 2), keepdim=True) + 1e-7)).numpy()
    assert shape == (16, 12, 12)
    assert maps.shape == (2, 32, 32)
    np.testing.assert_allclose(maps, expected, atol=2e-3)


def test_run_pixels_are_the_engines_images(report_index):
    from cxrbench.data.prepare import prepare_data
    from cxrbench.plugins import get_registry
    from cxrbench.results.pixels import open_pixels
    from cxrbench.suite.schema import Suite

    store = RunStore(report_index.parent.parent)
    suite = Suite.model_validate(store.read_header()["suite"])  # normalization: dataset
    registry = get_registry()
    data = prepare_data(suite, registry)
    batches = make_batches(suite, data)
    splits = pd.read_csv(store.dir / "splits.csv", dtype={"sample_id": str})
    train = splits[(splits.fold == 0) & (splits.split == "train")].sample_id.tolist()
    pixels = open_pixels(suite, registry, train)
    ids = [data.table.ids[i] for i in data.folds[0].test[:5]]
    rows = [data.table.ids.index(i) for i in ids]
    x = pixels.uint8(ids)
    assert torch.equal(x, torch.from_numpy(data.images[rows]))
    expected = (x.float() / 255 - batches.mean) / batches.std
    torch.testing.assert_close(pixels.model_input(x), expected)


def test_environment_and_resolved_suite(report_index):
    page = report_index.read_text()
    header = RunStore(report_index.parent.parent).read_header()

    def pre(element_id: str) -> str:
        return html.unescape(re.search(rf'id="{element_id}".*?<pre>(.*?)</pre>', page, re.S).group(1))

    env = json.loads(pre("environment"))
    assert env["environment"]["torch"] == header["environment"]["torch"] and env["run_id"] == header["run_id"]
    assert f"torch {header['environment']['torch']}" in "".join(section(page, "environment").text)
    assert yaml.safe_load(pre("suite")) == header["suite"]


def _copy_run(report_index: Path, tmp_path: Path) -> Path:
    src = report_index.parent.parent
    dst = tmp_path / "res" / src.parent.name / src.name
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("report"))
    return dst


def test_missing_checkpoint_and_data_are_explained(report_index, tmp_path, monkeypatch):
    pytest.importorskip("pytorch_grad_cam")
    run = _copy_run(report_index, tmp_path)
    path = run / "records" / "lenet__fold0__seed0.json"
    rec = json.loads(path.read_text())
    path.write_text(json.dumps(rec | {"checkpoint_path": None}))

    def unavailable(*_a, **_k):
        raise DatasetError("dataset files not found under /nowhere")

    monkeypatch.setattr("cxrbench.results.pixels.open_pixels", unavailable)
    page = build_report(run).read_text()
    assert "no checkpoint saved: set train.save_checkpoints: true" in " ".join(section(page, "gradcam-lenet").text)
    assert "/nowhere" in " ".join(section(page, "gradcam-resnet18").text)
    mis = section(page, "misclassified-lenet", "sample")
    assert "images unavailable" in " ".join(mis.text) and mis.cells  # ids are still listed
    assert not (run / "report" / "misclassified-lenet.png").exists()


def test_without_grad_cam_the_section_says_how_to_install_it(monkeypatch):
    from cxrbench.models.gradcam import gradcam_missing

    monkeypatch.setitem(sys.modules, "pytorch_grad_cam", None)
    assert "pip install" in gradcam_missing() and "grad-cam" in gradcam_missing()


def test_cli_out_dir_no_gradcam_and_latency_pareto(report_index, tmp_path):
    from cxrbench.results.latency import write_latency_file

    run = _copy_run(report_index, tmp_path)
    write_latency_file(run.parent / "_latency" / "rpi5" / "lat.json",
                       [{"model": m, "runtime": "torch", "threads": 1, "batch_size": 1, "status": "ok",
                         "median_ms": ms * 0.9, "p90_ms": ms} for m, ms in (("lenet", 0.4), ("resnet18", 9.0))],
                       run.parent.name, "rpi5")
    parser = argparse.ArgumentParser()
    add_report_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "elsewhere"
    args = parser.parse_args(["report", str(run), "--out", str(out), "--no-gradcam"])
    assert args.func(args) == 0
    page = (out / "index.html").read_text()
    assert "skipped (--no-gradcam)" in " ".join(section(page, "gradcam-lenet").text)
    trade = " ".join(section(page, "tradeoff").text)
    assert "rpi5" in trade and "9.00" in trade and "not profiled" not in trade
    with Image.open(out / "tradeoff-latency.png") as img:
        assert img.format == "PNG"
    assert not (run / "report").exists()


def test_multilabel_report_per_label_confusion_roc_and_errors(suite_file, tmp_path, monkeypatch):
    from sklearn.metrics import multilabel_confusion_matrix

    monkeypatch.setenv("CXRBENCH_MLFLOW", "0")
    labels = ["Effusion", "Mass", "Nodule"]
    suite = suite_file(name="tiny_ml", task={"type": "multilabel", "classes": labels},
                       train={"epochs": 1, "save_checkpoints": True},
                       metrics={"primary": "mean_auc", "report": ["mean_auc", "accuracy"]})
    outcome = run_suite(suite, results_root=tmp_path / "res", device="cpu")
    page = build_report(outcome.store.dir, cams_per_class=1).read_text()
    df = pd.read_csv(outcome.store.predictions_path("lenet__fold0__seed0"), dtype={"sample_id": str})
    truth, pred = df[[f"true_{c}" for c in labels]].to_numpy(), df[[f"pred_{c}" for c in labels]].to_numpy()
    shown = np.array(section(page, "confusion-lenet", "cm").cells, dtype=int).reshape(3, 4)
    assert np.array_equal(shown, multilabel_confusion_matrix(truth, pred).reshape(3, 4))  # TN FP FN TP per label
    aucs = section(page, "roc-lenet", "auc").cells
    defined = [j for j in range(3) if 0 < truth[:, j].sum() < len(truth)]
    assert [float(a) for a in aucs] == pytest.approx(
        [roc_auc_score(truth[:, j], df[f"prob_{labels[j]}"]) for j in defined], abs=5e-5)
    wrong = [(i, j, df[f"prob_{labels[j]}"][i] if pred[i, j] else 1 - df[f"prob_{labels[j]}"][i])
             for i, j in zip(*np.nonzero(truth != pred))]
    expected = [df.sample_id[i] for i, _, _ in sorted(wrong, key=lambda w: -w[2])[:8]]
    assert section(page, "misclassified-lenet", "sample").cells == expected
    probs = df[[f"prob_{c}" for c in labels]].to_numpy()
    ece = sklearn_ece(truth.ravel(), probs.ravel())  # every (image, label) cell pooled
    assert f"ECE {ece:.4f} (all labels pooled" in " ".join(section(page, "reliability-lenet").text)
    if _has_gradcam():
        assert "checkpoint reproduces the run" in " ".join(section(page, "gradcam-lenet").text)


def test_reliability_data_hand_computed():
    from cxrbench.report.calibration import reliability_data
    from cxrbench.specs import Predictions

    # binary, both rows in the bin straddling 0.5 (7/15, 8/15]: positive-class view mean 0.5 vs rate 1;
    # top-label view confidence 0.52 for both, one right -> the two ECEs differ and both are quoted
    prob = np.array([[0.52, 0.48], [0.48, 0.52]])
    data = reliability_data(Predictions(np.array([1, 1]), prob, prob.argmax(1), "binary", ("a", "b")))
    assert data["caption"] == ("ECE 0.5000 (positive class b; 15 equal-width bins; 2 samples); "
                               "top-label ECE (the ece metric) 0.0200")
    assert data["xlabel"] == "predicted probability of b" and int(data["curve"]["count"][7]) == 2
    # multiclass, top-label: |1 - 0.7| + |0 - 0.8| + |1 - 0.45| over 3 rows, each alone in its bin
    prob = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.25, 0.45]])
    data = reliability_data(Predictions(np.array([0, 2, 2]), prob, prob.argmax(1), "multiclass", ("a", "b", "c")))
    assert data["ece"] == pytest.approx(0.55) and data["caption"].startswith("ECE 0.5500 (top-label confidence;")


def test_report_latency_is_its_own_runs_not_the_suites_newest(tmp_path):
    """Two runs of one suite, each profiled: the older run's report shows the older run's latency
    (the leaderboard's selection: filter to the board's runs, then take the newest)."""
    from cxrbench.results.latency import write_latency_file
    from cxrbench.results.records import JobRecord

    cfg = {"task": {"type": "binary", "classes": ["normal", "pneumonia"]}, "dataset": {"name": "d"},
           "metrics": {"primary": "accuracy", "report": ["accuracy"]}, "reference": None}
    runs = {}
    for run_id, p90, measured in (("20240101-000000-aa", 1.5, "2024-01-01T00:00:00"),
                                  ("20240202-000000-aa", 7.0, "2024-02-02T00:00:00")):
        store = RunStore.create(tmp_path / "res", "s", run_id)
        store.write_header({"run_id": run_id, "suite_name": "s", "protocol_sha256": "p", "suite": cfg,
                            "dataset": {"name": "d"}})
        store.write_record(JobRecord(job_id="m__fold0__seed0", model="m", model_name="lenet", fold=0, seed=0,
                                     metrics={"accuracy": 0.8}, cost={"params": 10, "macs": 100},
                                     model_config_sha256="c"))
        write_latency_file(store.latency_path("m__fold0__seed0"),
                           [{"model": "m", "runtime": "torch", "threads": 1, "batch_size": 1, "status": "ok",
                             "median_ms": p90 - 0.5, "p90_ms": p90, "measured_at": measured, "run": run_id}],
                           "s", "box")
        runs[run_id] = store
    older, newer = runs.values()
    trade = " ".join(section(build_report(older.dir, gradcam=False).read_text(), "tradeoff").text)
    assert "1.50" in trade and "7.00" not in trade
    trade = " ".join(section(build_report(newer.dir, gradcam=False).read_text(), "tradeoff").text)
    assert "7.00" in trade and "1.50" not in trade
