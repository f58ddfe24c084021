"""Built-in metrics, registered through the same hook a third-party plugin uses.

Two implementations of ``register_metrics``: the core classification metrics, and the further
agreement, ranking, calibration and operating-point metrics (``specname`` lets one module implement
a hook twice; the registry collects both).
"""

from __future__ import annotations

from cxrbench.hookspecs import hookimpl
from cxrbench.metrics import calibration, operating_point as op
from cxrbench.metrics import classification as m
from cxrbench.specs import MetricSpec

_SINGLE = ("binary", "multiclass")
_MULTI = ("multilabel",)
_BINARY = ("binary",)


@hookimpl
def register_metrics() -> list[MetricSpec]:
    return core_metrics() + extra_metrics()


def core_metrics() -> list[MetricSpec]:
    """Accuracy, precision/recall/F1 (macro and weighted), specificity, kappa, AUC, loss."""
    return [
        MetricSpec("accuracy", m.accuracy,
                   description="fraction correct (multilabel: label-wise, over all N*K cells)"),
        MetricSpec("subset_accuracy", m.subset_accuracy, tasks=_MULTI,
                   description="fraction of images with every label right"),
        MetricSpec("precision", m.precision,
                   description="TP/(TP+FP): positive class (binary), else macro over classes/labels"),
        MetricSpec("recall", m.recall,
                   description="TP/(TP+FN): positive class (binary), else macro over classes/labels"),
        MetricSpec("sensitivity", m.sensitivity, description="alias of recall"),
        MetricSpec("specificity", m.specificity,
                   description="TN/(TN+FP): positive class (binary), else macro one-vs-rest"),
        MetricSpec("f1", m.f1, description="F1: positive class (binary), else macro over classes/labels"),
        MetricSpec("precision_weighted", m.precision_weighted,
                   description="per-class precision averaged by support"),
        MetricSpec("recall_weighted", m.recall_weighted, description="per-class recall averaged by support"),
        MetricSpec("f1_weighted", m.f1_weighted, description="per-class F1 averaged by support"),
        MetricSpec("kappa", m.cohen_kappa, tasks=_SINGLE,
                   description="Cohen's kappa: agreement with the truth beyond chance"),
        MetricSpec("roc_auc", m.roc_auc,
                   description="ROC AUC: positive class, one-vs-rest macro, or mean over labels"),
        MetricSpec("mean_auc", m.mean_auc, tasks=_MULTI,
                   description="mean per-label ROC AUC over labels with both classes present"),
        MetricSpec("loss", m.loss, higher_is_better=False, bootstrappable=False,
                   description="average training-criterion loss on the split"),
    ]


def extra_metrics() -> list[MetricSpec]:
    """MCC, PPV/NPV, average precision, calibration and parametric operating-point metrics."""
    sens_at_spec, spec_at_sens = "sensitivity_at_specificity", "specificity_at_sensitivity"
    return [
        MetricSpec("mcc", m.mcc,
                   description="Matthews correlation (0 when undefined); multilabel: macro over labels"),
        MetricSpec("ppv", m.ppv, tasks=_BINARY, description="positive predictive value: alias of precision"),
        MetricSpec("npv", m.npv, tasks=("binary", "multilabel"),
                   description="negative predictive value TN/(TN+FN): binary, or macro over labels"),
        MetricSpec("auprc", m.auprc,
                   description="average precision (area under the PR curve): positive class, "
                               "one-vs-rest macro, or mean over labels with both classes present"),
        MetricSpec("brier", calibration.brier, higher_is_better=False,
                   description="Brier score: binary on the positive class; multiclass sum over classes "
                               "(0-2); multilabel mean over labels"),
        MetricSpec("ece", calibration.ece, higher_is_better=False,
                   description="expected calibration error, 15 equal-width bins of the top-class "
                               "probability (multilabel: of every label probability)"),
        MetricSpec(sens_at_spec, op.needs_level(sens_at_spec), tasks=_BINARY,
                   with_param=op.sensitivity_at_specificity,
                   description="best ROC sensitivity with specificity >= LEVEL; name it "
                               "sensitivity_at_specificity@LEVEL, 0 < LEVEL < 1"),
        MetricSpec(spec_at_sens, op.needs_level(spec_at_sens), tasks=_BINARY,
                   with_param=op.specificity_at_sensitivity,
                   description="best ROC specificity with sensitivity >= LEVEL; name it "
                               "specificity_at_sensitivity@LEVEL, 0 < LEVEL < 1"),
    ]
