"""cxrbench MLflow tracking plugin: one MLflow run per job, nested under one run per suite run."""

__version__ = "0.1.0"
