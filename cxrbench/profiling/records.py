"""Re-export: the latency file format lives in :mod:`cxrbench.results.latency`."""

from cxrbench.results.latency import (FILE_SCHEMA, RECORD_SCHEMA, LatencyRecord, content_sha256, latency_file,
                                      latest_records, load_latency_records, read_latency_file, write_latency_file)
from cxrbench.results.store import LATENCY_DIR, RUN_LATENCY_DIR

__all__ = ["FILE_SCHEMA", "LATENCY_DIR", "RECORD_SCHEMA", "RUN_LATENCY_DIR", "LatencyRecord", "content_sha256",
           "latency_file", "latest_records", "load_latency_records", "read_latency_file", "write_latency_file"]
