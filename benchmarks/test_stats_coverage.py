"""Self-validation of cxrbench's statistics on simulated test sets whose population values are known.

Every number below comes from cxrbench's own functions (``cluster_bootstrap``, ``aggregate``,
``compare_models``, ``paired_bootstrap``, ``quantile_ci``) applied to 1,000 simulated test sets per
setting; the population value of each metric is the metric of 10^6 rows drawn from the same
generator (AUC checked against scikit-learn).

* **Binary, clustered like ChestX-ray2017**: 248 patients with 1-6 images each (P = .35 .25 .15 .10
  .08 .07, ~624 images), the label a patient's (62% pneumonia), score = 1.4 y + u_patient + e_image
  (sd 0.9 and 0.7: within-patient correlation 0.62), probability = sigmoid(score - 0.7), predicted
  class = probability > 0.5. Accuracy, F1 and ROC AUC.
* **Multilabel like ChestX-ray14**: 250 patients (~630 images), 14 labels at ChestX-ray14's
  prevalences (floored at 3%, so that every label has positives in a test set), each label correlated within a patient (a patient latent with
  weight 0.8) and its score too (patient effect sd 0.7); mean AUC over the 14 labels.
* **Pooled 5-fold**: the same rows split by patient into 5 folds whose models differ (fold ``f``
  shifts every score by ``0.15 (f - 2)``); the population value is that of the pooled predictor
  (10^6 rows with random folds). CI from :func:`cxrbench.metrics.aggregate.aggregate`.
* **Planted null**: 10 models with equal population accuracy and AUC (shared patient effect, own
  patient and image noise), all 45 pairs by ``compare_models`` on accuracy (paired cluster
  bootstrap, Holm); family-wise rate of any "different" flag, and the raw per-pair rate. Accuracy,
  because 10 models x 2,000 resamples of AUC per replicate would take ~20 minutes; the AUC
  p-value's size is checked in the power setting (two equal models).
* **Power**: two models whose population AUCs differ by 0.03, 624 images, paired cluster bootstrap
  at alpha 0.05 (DeLong beside it, which ignores the clustering).
* **Latency**: lognormal(log 20 ms, 0.35) samples; order-statistic CIs of the median (n = 30, 300)
  and p90 (n = 300) against the quantiles of 10^6 samples.

Targets (asserted): cluster bootstrap coverage within [0.93, 0.97], up to its Monte-Carlo error
(2 MC SE, 0.014 at 1,000 replicates: a figure is flagged when it is measurably outside); image-level coverage below the
cluster bootstrap's on the binary set (the images of a patient are correlated); Holm family-wise
rate <= 0.05; latency coverage >= its exact (binomial) coverage - 3 Monte-Carlo SE, and >= 0.95 - 3 SE.
Bootstrap resamples: 300 (coverage), 500 (power), 2000 (planted null:
Holm's smallest threshold 0.05 / 45 = 0.0011 needs the p-value floor 2 / (B + 1) below it). ``make bench`` runs it;
``CXRBENCH_COVERAGE_REPS=50`` gives a quick, noisy look (the targets are sized for 1,000).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from cxrbench.metrics.aggregate import FoldPredictions, aggregate
from cxrbench.metrics.bootstrap import (
    bootstrap_p_value,
    bootstrap_values,
    cluster_bootstrap,
    cluster_codes,
    metric_on_weights,
    paired_bootstrap,
    unit_count_blocks,
)
from cxrbench.metrics.classification import accuracy, f1, mean_auc, roc_auc
from cxrbench.metrics.compare import compare_models
from cxrbench.metrics.delong import delong_predictions
from cxrbench.metrics.multiple import adjust_pvalues
from cxrbench.metrics.quantiles import quantile_ci
from cxrbench.specs import Predictions

REPS = int(os.environ.get("CXRBENCH_COVERAGE_REPS", "1000"))
"""Replicates per setting (the environment variable is for a quick look; the targets assume 1000)."""
POP_ROWS = 1_000_000
IMAGES_PER_PATIENT = np.array([0.35, 0.25, 0.15, 0.10, 0.08, 0.07])  # 1..6 images, mean 2.52
BIN_PATIENTS, ML_PATIENTS = 248, 250
FOLD_SHIFT = 0.15
CXR14_PREVALENCE = np.maximum(0.03, [0.103, 0.025, 0.119, 0.177, 0.052, 0.056, 0.013, 0.047, 0.042, 0.021,
                                     0.022, 0.015, 0.030, 0.002])
LOW, HIGH = 0.93, 0.97
MC_SE = math.sqrt(0.95 * 0.05 / REPS)
"""Monte-Carlo standard error of a coverage estimate at 95% (0.007 at 1,000 replicates): a coverage is
flagged only when it lies more than 2 MC SE outside the target band, i.e. measurably outside it."""


def _patients(n: int, rng: np.random.Generator) -> np.ndarray:
    """Patient index of each image (1-6 images per patient)."""
    return np.repeat(np.arange(n), rng.choice(np.arange(1, 7), n, p=IMAGES_PER_PATIENT))


def _binary(n_patients: int, rng: np.random.Generator, mus: tuple[float, ...] = (1.4,), own_sd: float = 0.0,
            folds: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(y (N,), scores (M, N), patient (N,), fold (N,))``: M models sharing the patient effect."""
    pid = _patients(n_patients, rng)
    y = (rng.random(n_patients) < 0.62)[pid].astype(np.int64)
    u = rng.normal(0, 0.9, n_patients)[pid]
    fold = rng.integers(0, 5, n_patients)[pid]
    shift = FOLD_SHIFT * (fold - 2) if folds else 0.0
    scores = np.stack([mu * y + u + own_sd * rng.normal(0, 1, n_patients)[pid] + rng.normal(0, 0.7, len(pid))
                       - 0.7 + shift for mu in mus])
    return y, scores, pid, fold


def _binary_pred(y: np.ndarray, score: np.ndarray) -> Predictions:
    p1 = 1.0 / (1.0 + np.exp(-score))
    return Predictions(y, np.stack([1 - p1, p1], axis=1), (p1 > 0.5).astype(np.int64), "binary", ("normal", "pneumonia"))


def _multilabel(n_patients: int, rng: np.random.Generator, folds: bool = False) -> tuple[Predictions, np.ndarray, np.ndarray]:
    pid = _patients(n_patients, rng)
    k = len(CXR14_PREVALENCE)
    latent = rng.normal(0, 1, (n_patients, k))[pid]
    y = (norm.ppf(CXR14_PREVALENCE) + 0.8 * latent + 0.6 * rng.normal(0, 1, (len(pid), k)) > 0).astype(np.int64)
    fold = rng.integers(0, 5, n_patients)[pid]
    mu = np.linspace(1.0, 2.2, k)
    s = mu * y + rng.normal(0, 0.7, (n_patients, k))[pid] + rng.normal(0, 0.6, (len(pid), k)) - 1.5
    if folds:
        s = s + FOLD_SHIFT * (fold - 2)[:, None]
    prob = 1.0 / (1.0 + np.exp(-s))
    pred = Predictions(y, prob, (prob > 0.5).astype(np.int64), "multilabel", tuple(f"l{j}" for j in range(k)))
    return pred, pid, fold


def _population_patients(rows: int) -> int:
    return int(rows / float(IMAGES_PER_PATIENT @ np.arange(1, 7)))


def _folds(pred: Predictions, pid: np.ndarray, fold: np.ndarray, patients: bool) -> list[FoldPredictions]:
    out = []
    for f in range(5):
        idx = np.flatnonzero(fold == f)
        out.append(FoldPredictions(pred.subset(idx), [str(i) for i in idx],
                                   [str(p) for p in pid[idx]] if patients else None, fold=f))
    return out


METHODS = ("cluster, single split", "cluster, pooled 5-fold", "image, single split", "image, pooled 5-fold")


def _coverage(make, metrics: dict, truth: dict, n_boot: int, seed: int, methods=METHODS) -> dict:
    """Per metric and method: [hits, width sum, valid]; ``make(rng, folds)`` -> (pred, pid, fold)."""
    rng = np.random.default_rng(seed)
    out = {(m, k): [0, 0.0, 0] for m in metrics for k in methods}
    for r in range(REPS):
        single, spid, _ = make(rng, False)
        pooled, ppid, pfold = make(rng, True)
        for name, fn in metrics.items():
            cis = {METHODS[0]: lambda: cluster_bootstrap(fn, single, spid, n_boot, seed=r),
                   METHODS[2]: lambda: cluster_bootstrap(fn, single, None, n_boot, seed=r),
                   METHODS[1]: lambda: aggregate(_folds(pooled, ppid, pfold, True), fn, n_boot, seed=r),
                   METHODS[3]: lambda: aggregate(_folds(pooled, ppid, pfold, False), fn, n_boot, seed=r)}
            for method in methods:
                ci = cis[method]()
                t = truth[name][method.endswith("5-fold")]
                cell = out[(name, method)]
                if math.isfinite(ci.low) and math.isfinite(ci.high):
                    cell[0] += ci.low <= t <= ci.high
                    cell[1] += ci.high - ci.low
                    cell[2] += 1
    return out


def _print_coverage(title: str, res: dict, truth: dict, methods=METHODS) -> None:
    print(f"\n{title} ({REPS} replicates, nominal 95%; target [{LOW}, {HIGH}] for the cluster bootstrap; "
          f"Monte-Carlo SE of each coverage {MC_SE:.3f})")
    print("coverage (mean CI width) per method; population value: single split / pooled 5-fold")
    print(f"{'metric':<10} {'population':>17} " + " ".join(f"{m:>24}" for m in methods))
    for name in truth:
        cells = [res[(name, m)] for m in methods]
        print(f"{name:<10} {truth[name][0]:>8.4f}/{truth[name][1]:.4f} "
              + " ".join(f"{h / max(v, 1):>13.3f} (w {w / max(v, 1):.3f})" for h, w, v in cells))


def _check_coverage(res: dict, names, image_lower: bool) -> list[str]:
    fails = []
    for name in names:
        for method in METHODS[:2]:
            h, _, v = res[(name, method)]
            if not LOW - 2 * MC_SE <= h / v <= HIGH + 2 * MC_SE or v < REPS:
                fails.append(f"{name} {method}: coverage {h / v:.3f} ({v} valid)")
        if image_lower:
            img, clu = res[(name, METHODS[2])], res[(name, METHODS[0])]
            if not img[0] / img[2] < clu[0] / clu[2]:
                fails.append(f"{name}: image-level coverage {img[0] / img[2]:.3f} not below the cluster bootstrap's")
    return fails


def test_coverage_binary_clustered(benchmark):
    rng = np.random.default_rng(12345)
    metrics = {"accuracy": accuracy, "f1": f1, "roc_auc": roc_auc}
    n_pop = _population_patients(POP_ROWS)
    truth = {}
    pops = []
    for folds in (False, True):
        y, s, _, _ = _binary(n_pop, rng, folds=folds)
        pops.append(_binary_pred(y, s[0]))
        assert roc_auc(pops[-1]) == pytest.approx(roc_auc_score(y, s[0]), abs=1e-9)
    truth = {n: (fn(pops[0]), fn(pops[1])) for n, fn in metrics.items()}

    def make(r, folds):
        y, s, pid, fold = _binary(BIN_PATIENTS, r, folds=folds)
        return _binary_pred(y, s[0]), pid, fold

    res = benchmark.pedantic(_coverage, args=(make, metrics, truth, 300, 1), rounds=1, iterations=1)
    _print_coverage(f"binary, clustered like ChestX-ray2017 ({BIN_PATIENTS} patients, ~624 images)", res, truth)
    benchmark.extra_info.update({f"{n}|{m}": h / v for (n, m), (h, _, v) in res.items()})
    fails = _check_coverage(res, metrics, image_lower=True)
    assert not fails, fails


def test_coverage_multilabel_clustered(benchmark):
    rng = np.random.default_rng(23456)
    n_pop = _population_patients(POP_ROWS)
    pops = [_multilabel(n_pop, rng, folds)[0] for folds in (False, True)]
    ref = np.mean([roc_auc_score(pops[0].y_true[:, j], pops[0].y_prob[:, j]) for j in range(len(CXR14_PREVALENCE))])
    assert mean_auc(pops[0]) == pytest.approx(ref, abs=1e-9)
    truth = {"mean_auc": (mean_auc(pops[0]), mean_auc(pops[1]))}

    def make(r, folds):
        return _multilabel(ML_PATIENTS, r, folds)

    methods = METHODS[:3]  # the image-level pooled column is left out here: 14 AUCs per resample are the slow part
    res = benchmark.pedantic(_coverage, args=(make, {"mean_auc": mean_auc}, truth, 300, 2, methods), rounds=1,
                             iterations=1)
    _print_coverage(f"multilabel like ChestX-ray14 (14 labels, {ML_PATIENTS} patients, ~630 images)", res, truth,
                    methods)
    benchmark.extra_info.update({f"{n}|{m}": h / v for (n, m), (h, _, v) in res.items()})
    fails = _check_coverage(res, truth, image_lower=False)
    assert not fails, fails


NULL_MODELS, NULL_BOOT = 10, 2000


def _null_fwer(seed: int) -> tuple[float, float, float]:
    """Family-wise rate of any Holm 'different' flag, raw per-pair rate, and unadjusted family-wise rate.

    All models share all rows, so ``compare_models`` reduces to ``bootstrap_values`` per model (same
    seed: the same patients drawn for all), ``bootstrap_p_value`` per pair and ``adjust_pvalues``
    over the 45. That is computed directly, drawing the patients once for all 10 models (10x fewer
    draws than ``compare_models``), and checked equal to ``compare_models`` on the first replicate.
    """
    rng = np.random.default_rng(seed)
    any_holm = any_raw = 0
    pair_hits = pairs = 0
    for r in range(REPS):
        y, s, pid, _ = _binary(BIN_PATIENTS, rng, mus=(1.4,) * NULL_MODELS, own_sd=0.4)
        preds = [_binary_pred(y, s[j]) for j in range(NULL_MODELS)]
        codes, n_units, _ = cluster_codes(pid, len(y))  # bootstrap_values' draws, shared by the 10 models
        blocks = [c[:, codes] for c in unit_count_blocks(n_units, NULL_BOOT, np.random.default_rng(r), len(y))]
        vals = [np.concatenate([metric_on_weights(accuracy, p, w) for w in blocks]) for p in preds]
        if r == 0:
            assert np.array_equal(vals[1], bootstrap_values(accuracy, preds[1], NULL_BOOT, r, pid))
        raw = np.array([bootstrap_p_value(vals[i] - vals[j])
                        for i in range(NULL_MODELS) for j in range(i + 1, NULL_MODELS)])
        holm = adjust_pvalues(raw, "holm")
        if r == 0:
            rows, patients = [str(i) for i in range(len(y))], [str(p) for p in pid]
            cmp = compare_models({f"m{j}": [FoldPredictions(p, rows, patients)] for j, p in enumerate(preds)},
                                 accuracy, n_resamples=NULL_BOOT, seed=r)
            assert sorted(p.p_value for p in cmp.pairs) == pytest.approx(sorted(raw))
            assert sum(p.different for p in cmp.pairs) == int((holm < 0.05).sum())
        any_holm += bool((holm < 0.05).any())
        any_raw += bool((raw < 0.05).any())
        pair_hits += int((raw < 0.05).sum())
        pairs += raw.size
    return any_holm / REPS, pair_hits / pairs, any_raw / REPS


def test_planted_null_holm(benchmark):
    fwer, per_pair, fwer_raw = benchmark.pedantic(_null_fwer, args=(3,), rounds=1, iterations=1)
    print(f"\nplanted null: {NULL_MODELS} equal models (accuracy), all 45 pairs, paired patient bootstrap "
          f"({NULL_BOOT} resamples), {REPS} replicates")
    print(f"  family-wise rate of any 'different' flag, Holm: {fwer:.3f} (target <= 0.05)")
    print(f"  unadjusted: per-pair rate p < 0.05 {per_pair:.3f} (nominal 0.05), family-wise {fwer_raw:.3f}")
    benchmark.extra_info.update({"fwer_holm": fwer, "per_pair_raw": per_pair, "fwer_raw": fwer_raw})
    assert fwer <= 0.05
    assert 0.02 <= per_pair <= 0.08, "raw bootstrap p-values are not calibrated under the null"


def _mu_for_auc(target: float, n_patients: int, seed: int) -> float:
    """The score separation whose population AUC (own_sd 0.4, as in the power setting) is ``target``."""
    lo, hi = 0.5, 3.0
    for _ in range(30):
        mid = (lo + hi) / 2
        y, s, _, _ = _binary(n_patients, np.random.default_rng(seed), mus=(mid,), own_sd=0.4)
        lo, hi = (mid, hi) if roc_auc_score(y, s[0]) < target else (lo, mid)
    return (lo + hi) / 2


def _power(mus: tuple[float, float], seed: int) -> tuple[float, float, float, float, float]:
    """Rejection rates at 0.05 (bootstrap, DeLong) for models ``mus`` and for two equal models (size)."""
    rng = np.random.default_rng(seed)
    counts = np.zeros(4)
    images = 0
    for r in range(REPS):
        for j, pair in enumerate((mus, (mus[0], mus[0]))):
            y, s, pid, _ = _binary(BIN_PATIENTS, rng, mus=pair, own_sd=0.4)
            a, b = _binary_pred(y, s[0]), _binary_pred(y, s[1])
            counts[2 * j] += paired_bootstrap(roc_auc, a, b, pid, n_resamples=500, seed=r).p_value < 0.05
            counts[2 * j + 1] += delong_predictions(a, b).p_value < 0.05
            images += len(y) * (j == 0)
    power, power_delong, size, size_delong = counts / REPS
    return power, power_delong, size, size_delong, images / REPS


def test_power_auc_difference(benchmark):
    n_pop = _population_patients(POP_ROWS)
    mu_a = 1.4
    y, s, _, _ = _binary(n_pop, np.random.default_rng(7), mus=(mu_a,), own_sd=0.4)
    auc_a = roc_auc_score(y, s[0])
    mu_b = _mu_for_auc(auc_a - 0.03, n_pop, 7)
    y, s, _, _ = _binary(n_pop, np.random.default_rng(8), mus=(mu_a, mu_b), own_sd=0.4)
    diff = roc_auc(_binary_pred(y, s[0])) - roc_auc(_binary_pred(y, s[1]))
    power, power_delong, size, size_delong, images = benchmark.pedantic(_power, args=((mu_a, mu_b), 4), rounds=1,
                                                                         iterations=1)
    print(f"\npower to detect a population AUC difference of {diff:.4f} ({auc_a:.3f} vs {auc_a - diff:.3f}) at "
          f"{images:.0f} test images ({BIN_PATIENTS} patients), alpha 0.05, {REPS} replicates:")
    print(f"  paired patient bootstrap (500 resamples): {power:.3f};  DeLong (images as independent): {power_delong:.3f}")
    print(f"  size (two equal models, nominal 0.05): bootstrap {size:.3f};  DeLong {size_delong:.3f}")
    benchmark.extra_info.update({"power_bootstrap": power, "power_delong": power_delong, "auc_diff": diff,
                                 "size_bootstrap": size, "size_delong": size_delong})
    assert diff == pytest.approx(0.03, abs=0.002)
    assert size <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / REPS), f"bootstrap AUC test rejects {size:.3f} under the null"
    assert power > 0.05, "the paired bootstrap cannot tell a 0.03 AUC difference from none"


LAT_MU, LAT_SIGMA = math.log(20.0), 0.35


def test_latency_quantile_coverage(benchmark):
    rng = np.random.default_rng(5)
    population = rng.lognormal(LAT_MU, LAT_SIGMA, POP_ROWS)
    rows = []

    def run():
        out = []
        for q, n in ((0.5, 30), (0.5, 300), (0.9, 300), (0.9, 1000)):
            truth = float(np.quantile(population, q))
            assert truth == pytest.approx(math.exp(LAT_MU + LAT_SIGMA * norm.ppf(q)), rel=0.01)
            samples = rng.lognormal(LAT_MU, LAT_SIGMA, (REPS, n))
            cis = [quantile_ci(x, q) for x in samples]
            hit = np.mean([c.low <= truth <= c.high for c in cis])
            out.append((q, n, truth, hit, cis[0].coverage, np.mean([c.high - c.low for c in cis])))
        return out

    rows = benchmark.pedantic(run, rounds=1, iterations=1)
    print(f"\nlatency: order-statistic 95% CIs, lognormal(log 20 ms, {LAT_SIGMA}) samples, {REPS} replicates")
    print(f"{'quantile':>8} {'n':>5} {'population ms':>14} {'coverage':>9} {'exact':>7} {'mean width ms':>14}")
    for q, n, truth, hit, exact, width in rows:
        print(f"{'p' + str(int(100 * q)):>8} {n:>5} {truth:>14.3f} {hit:>9.3f} {exact:>7.4f} {width:>14.3f}")
    se = math.sqrt(0.95 * 0.05 / REPS)
    for q, n, _, hit, exact, _ in rows:
        assert exact >= 0.95 and hit >= exact - 3 * se and hit >= 0.95 - 3 * se, (q, n, hit, exact)
