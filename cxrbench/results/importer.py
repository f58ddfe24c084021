"""``cxrbench results import FILE``: merge a latency file measured elsewhere (an edge device) into results/.

The file lands in ``<results>/<suite>/_latency/<device>/<created>-<sha8>.json``: importing the same
file twice leaves one copy, and files from different devices or dates sit side by side.
"""

from __future__ import annotations

from pathlib import Path

from cxrbench.errors import ResultsError
from cxrbench.results.latency import content_sha256, read_latency_file
from cxrbench.results.store import imported_latency_dir, safe_name, write_json_atomic


def import_latency_file(path: str | Path, results_root: str | Path, suite: str | None = None,
                        device_name: str | None = None) -> Path:
    """Copy a latency file into the results store; returns where it went.

    ``suite`` overrides (or supplies) the file's suite, ``device_name`` its device label.
    :class:`ResultsError` for a file that is not a latency file or names no suite.
    """
    doc = read_latency_file(path)
    suite = suite or doc.get("suite")
    if not suite:
        raise ResultsError(f"{path}: the latency file names no suite (it was profiled without --suite); "
                           "give one with --suite NAME")
    device = safe_name(device_name or doc.get("device_name") or "")
    if device == "unknown":
        raise ResultsError(f"{path}: the latency file names no device; give one with --device-name")
    doc = {**doc, "suite": suite, "device_name": device,
           "records": [{**r, "suite": suite, "device_name": device} for r in doc["records"]]}
    stamp = "".join(ch for ch in str(doc.get("created_at", "")) if ch.isalnum())[:15] or "undated"
    dest = imported_latency_dir(results_root, suite, device) / f"{stamp}-{content_sha256(doc)[:8]}.json"
    write_json_atomic(dest, doc)
    return dest
