"""Built-in metrics (numpy, scikit-learn conventions) and bootstrap confidence intervals."""

from cxrbench.metrics.bootstrap import bootstrap_ci, bootstrap_values, row_weighted
from cxrbench.metrics.classification import (
    accuracy,
    classification_report,
    cohen_kappa,
    confusion_matrix,
    f1,
    f1_weighted,
    loss,
    mean_auc,
    per_label_auc,
    precision,
    precision_weighted,
    recall,
    recall_weighted,
    roc_auc,
    sensitivity,
    specificity,
    subset_accuracy,
)

__all__ = [
    "accuracy", "bootstrap_ci", "bootstrap_values", "classification_report", "cohen_kappa",
    "confusion_matrix", "f1", "f1_weighted", "loss", "mean_auc", "per_label_auc", "precision",
    "precision_weighted", "recall", "recall_weighted", "roc_auc", "row_weighted", "sensitivity",
    "specificity", "subset_accuracy",
]
