"""Errors cxrbench reports to the user: each message says what was wrong and where."""

from __future__ import annotations


class CxrbenchError(Exception):
    """Base class: the CLI prints the message (no traceback) and exits non-zero."""

    exit_code = 2


class SuiteError(CxrbenchError):
    """A suite file that cannot be read or does not match the schema."""


class PluginError(CxrbenchError):
    """A plugin that cannot be loaded or registers something inconsistent."""


class UnknownNameError(CxrbenchError):
    """A model, dataset or metric name nobody registered."""


class DatasetError(CxrbenchError):
    """Missing or malformed data: names the file, row or folder at fault."""


class WeightsError(CxrbenchError):
    """Requested weights that cannot be loaded."""


class ResultsError(CxrbenchError):
    """Results that cannot be read, resumed or merged."""
