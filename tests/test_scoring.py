"""score(): the record's CIs resample patients when the rows carry patient ids, images otherwise."""

from __future__ import annotations

import numpy as np

from cxrbench.metrics.bootstrap import bootstrap_ci
from cxrbench.metrics.scoring import score
from cxrbench.plugins import get_registry
from cxrbench.specs import Predictions


def _binary(n: int, seed: int = 0) -> Predictions:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p1 = np.clip(0.35 * y + rng.uniform(0, 0.65, n), 0, 1)
    return Predictions(y, np.stack([1 - p1, p1], axis=1), (p1 > 0.5).astype(int), "binary", ("neg", "pos"))


def test_without_patient_ids_the_ci_is_todays_image_bootstrap_exactly():
    reg = get_registry()
    pred = _binary(120)
    out = score(pred, ["accuracy", "recall"], "accuracy", reg, 300, 0.95, seed=7)
    for name in ("accuracy", "recall"):
        lo, hi = bootstrap_ci(reg.metric(name).fn, pred, n_resamples=300, confidence=0.95, seed=7)
        assert out["ci"][name] == [lo, hi]
    assert out["ci_unit"] == {"unit": "image", "n_units": 120, "n_resamples": 300, "confidence": 0.95}
    missing = score(pred, ["accuracy"], "accuracy", reg, 300, 0.95, seed=7, patients=[""] * 120)
    assert missing["ci"]["accuracy"] == out["ci"]["accuracy"] and missing["ci_unit"]["unit"] == "image"


def test_duplicated_patient_rows_get_a_wider_ci_than_images():
    reg = get_registry()
    base = _binary(60, seed=3)
    idx = np.repeat(np.arange(60), 5)  # every patient imaged 5 times, identical rows
    pred = base.subset(idx)
    patients = [f"p{i}" for i in idx]
    img = score(pred, ["accuracy"], "accuracy", reg, 500, 0.95, seed=1)
    pat = score(pred, ["accuracy"], "accuracy", reg, 500, 0.95, seed=1, patients=patients)
    w_img = np.diff(img["ci"]["accuracy"])[0]
    w_pat = np.diff(pat["ci"]["accuracy"])[0]
    assert pat["ci_unit"] == {"unit": "patient", "n_units": 60, "n_resamples": 500, "confidence": 0.95}
    assert w_pat > 1.5 * w_img  # ~sqrt(5) wider: 60 independent units, not 300
    # the patient CI is the image CI of the 60 distinct rows, same draws (same seed, same unit count)
    lo, hi = bootstrap_ci(reg.metric("accuracy").fn, base, n_resamples=500, confidence=0.95, seed=1)
    assert np.allclose(pat["ci"]["accuracy"], [lo, hi])
    assert img["metrics"] == pat["metrics"]
