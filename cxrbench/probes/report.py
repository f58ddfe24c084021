"""The report's "Shortcut probes" section, read from ``<run>/probes.json`` (written by ``cxrbench probe``)."""

from __future__ import annotations

import json
from typing import Any

from cxrbench.results.store import PROBES_FILE, RunStore


def _f(v: Any) -> str:
    return "n/a" if v is None or v != v else f"{v:.4f}"


def probes_context(store: RunStore) -> dict[str, Any]:
    """What the template shows: the masking rows and the source verdict, or how to make probes.json."""
    path, run_id = store.probes_path, store.run_id
    hint = f"No shortcut probes for this run yet. Make them with: cxrbench probe {run_id} (then rebuild the report)."
    if not path.is_file():
        return {"exists": False, "hint": hint}
    try:
        data = json.loads(path.read_text())
        masking, source = data["masking"], data.get("source", {})
    except (OSError, ValueError, KeyError) as exc:
        return {"exists": False, "hint": f"{PROBES_FILE} could not be read ({exc}); run cxrbench probe {run_id} again."}
    rows = []
    for m in masking.get("models", []):
        if m.get("status") != "ok":
            rows.append({"model": m["model"], "skipped": m.get("reason", "skipped")})
            continue
        s = m["scores"]
        rows.append({"model": m["model"], "job": m["job"], "original": _f(s.get("original")),
                     "lungs_masked": _f(s.get("lungs_masked")), "center_only": _f(s.get("center_only")),
                     "majority": _f(m.get("majority")),
                     "kept": "" if m.get("retained") is None else f"{100 * m['retained']:.0f}%",
                     "flagged": bool(m.get("flagged")), "verdict": m.get("verdict", "")})
    src = {"status": source.get("status", "skipped"), "message": source.get("message", ""),
           "warning": bool(source.get("warning")), "origin": source.get("origin", ""),
           "auc": _f(source.get("auc")) if source.get("auc") is not None else None,
           "counts": source.get("by_class") or {}}
    return {"exists": True, "created_at": data.get("created_at"), "primary": masking.get("primary"),
            "rule": masking.get("rule", ""), "geometry": masking.get("geometry", {}), "rows": rows, "source": src,
            "any_flagged": any(r.get("flagged") for r in rows)}
