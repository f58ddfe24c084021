"""``cxrbench report``: one run as a self-contained HTML page (plots, errors, Grad-CAM, environment)."""

from cxrbench.report.build import build_report

__all__ = ["build_report"]
