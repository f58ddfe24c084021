"""Built-in metrics, registered through the same hook a third-party plugin uses."""

from __future__ import annotations

from cxrbench.hookspecs import hookimpl
from cxrbench.metrics import classification as m
from cxrbench.specs import MetricSpec

_SINGLE = ("binary", "multiclass")
_MULTI = ("multilabel",)


@hookimpl
def register_metrics() -> list[MetricSpec]:
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
