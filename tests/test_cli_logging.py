"""Third-party libraries' log lines (MLflow, Ray, timm, urllib3 ...) stay quiet unless ``-v``."""

from __future__ import annotations

import logging
import sys

import pytest

from cxrbench.cli import main


def _chatty_command(args) -> int:
    """Logs like MLflow does: its own handler on stderr, its own level, no propagation."""
    lib = logging.getLogger("mlflow.store.db.utils")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    lib.addHandler(handler)
    lib.setLevel(logging.INFO)
    lib.propagate = False
    try:
        lib.info("Creating initial MLflow database tables...")
        lib.warning("a real problem")
        logging.getLogger("urllib3.connectionpool").info("Starting new HTTPS connection")
        logging.getLogger("cxrbench.models").debug("building lenet")
    finally:
        lib.removeHandler(handler)
        lib.propagate = True
        lib.setLevel(logging.NOTSET)
    return 0


@pytest.fixture
def chatty(monkeypatch):
    monkeypatch.setattr("cxrbench.cli.registry.cmd_metrics", _chatty_command)


def test_third_party_info_hidden_by_default_warnings_kept(chatty, capsys, caplog):
    assert main(["metrics"]) == 0
    err = capsys.readouterr().err
    assert "Creating initial MLflow database tables" not in err  # its own handler: the root level cannot stop it
    assert err.count("a real problem") == 1
    assert [r.name for r in caplog.records] == []  # what propagates to the root: nothing below WARNING


def test_verbose_shows_third_party_info_and_debug(chatty, capsys, caplog):
    assert main(["-v", "metrics"]) == 0
    err = capsys.readouterr().err
    assert "INFO mlflow.store.db.utils: Creating initial MLflow database tables..." in err
    assert [(r.name, r.levelname) for r in caplog.records] == [
        ("urllib3.connectionpool", "INFO"), ("cxrbench.models", "DEBUG")]


def test_main_restores_the_callers_logging(chatty):
    before = logging.root.manager.disable, logging.getLogger().level
    main(["metrics"])
    main(["-v", "metrics"])
    assert (logging.root.manager.disable, logging.getLogger().level) == before
