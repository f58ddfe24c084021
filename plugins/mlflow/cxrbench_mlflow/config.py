"""Where runs are tracked: ``$MLFLOW_TRACKING_URI`` or a sqlite file next to the results folders."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
DISABLE_ENV = "CXRBENCH_MLFLOW"
"""Set to ``0``/``off``/``false`` to keep the plugin installed but silent."""


def enabled() -> bool:
    """False when ``$CXRBENCH_MLFLOW`` is ``0``, ``off``, ``false`` or ``no``."""
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in {"0", "off", "false", "no"}


def results_root(run_dir: Path) -> Path:
    """The results root of a run folder ``<root>/<suite>/<run-id>``."""
    return Path(run_dir).resolve().parent.parent


def tracking_uri(run_dir: Path) -> str:
    """``$MLFLOW_TRACKING_URI``, else ``sqlite:///<results root>/mlflow.db`` (absolute path)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        return uri
    return f"sqlite:///{results_root(run_dir) / DB_NAME}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative paths are relative to the cwd)."""
    parsed = urlparse(uri)
    if parsed.scheme != "sqlite" or not parsed.path or parsed.path == "/:memory:":
        return None
    return Path(parsed.path[1:]).resolve()  # sqlite:///rel -> "/rel", sqlite:////abs -> "//abs"


def artifact_location(uri: str, experiment: str) -> str | None:
    """Artifacts of a sqlite store go to ``<db folder>/mlartifacts/<experiment>``.

    Without this MLflow would put them under ``./mlruns`` of whatever the working directory is.
    Other stores (servers, ``file:``) choose their own location (``None``).
    """
    db = sqlite_path(uri)
    if db is None:
        return None
    return (db.parent / ARTIFACTS_DIR / experiment).as_uri()
