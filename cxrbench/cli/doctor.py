"""``cxrbench doctor``: what a user runs, and pastes into a bug report, when something is off.

Versions (python, torch, torchvision, timm, onnxruntime, ray, mlflow, pydicom and its pixel-data
plugins), the accelerators torch sees (CUDA with its GPUs, MPS), a Chromium for the report's
browser test, every plugin's status from the registry, the image cache folder and its size, and
the data folders under ``$CXRBENCH_DATA`` with the datasets whose default folder is there.
:func:`collect` returns it all as a JSON-able dict; the command prints it as tables or JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

PACKAGES = ("torch", "torchvision", "timm", "numpy", "pandas", "onnxruntime", "ray", "mlflow", "pydicom",
            "pylibjpeg", "pillow")
"""Reported by import name; the version is that of the distribution that provides the module
(e.g. mlflow from ``mlflow-skinny``), read from its metadata without importing it."""
DICOM_SYNTAXES = ("RLELossless", "JPEGBaseline8Bit", "JPEGExtended12Bit", "JPEGLosslessSV1", "JPEGLSLossless",
                  "JPEG2000Lossless", "JPEG2000")
"""Compressed transfer syntaxes (``pydicom.uid`` names) whose pixel-data plugins are listed."""
CHROMIUM_NAMES = ("chromium", "chromium-browser")
"""Executables the report's browser test (tests/test_report_browser.py) looks for on PATH."""


def add_parsers(sub: Any) -> None:
    """``doctor``."""
    p = sub.add_parser("doctor", help="versions, accelerators, plugins, cache and data folders (for bug reports)")
    p.add_argument("--json", action="store_true", help="JSON instead of tables")
    p.set_defaults(func=cmd_doctor)


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Import name -> installed version (None when not installed)."""
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    dists = packages_distributions()
    out: dict[str, str | None] = {}
    for name in names:
        out[name] = None
        for dist in [*dists.get(name, []), name]:
            try:
                out[name] = version(dist)
                break
            except PackageNotFoundError:
                continue
    return out


def accelerators() -> dict[str, Any]:
    """CUDA (torch's build, availability, the GPUs seen) and MPS, as torch reports them."""
    try:
        import torch
    except ImportError as exc:
        return {"error": f"torch is not importable: {exc}"}
    cuda_ok = torch.cuda.is_available()
    gpus = []
    for i in range(torch.cuda.device_count() if cuda_ok else 0):
        props = torch.cuda.get_device_properties(i)
        gpus.append({"index": i, "name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                     "capability": f"{props.major}.{props.minor}"})
    mps = getattr(torch.backends, "mps", None)
    return {"cuda": {"built": torch.version.cuda, "available": cuda_ok, "devices": gpus},
            "mps": {"built": bool(mps and mps.is_built()), "available": bool(mps and mps.is_available())},
            "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}


def dicom_handlers() -> dict[str, Any]:
    """pydicom's version and, per compressed transfer syntax, the installed plugins that decode it."""
    try:
        import pydicom
        from pydicom import uid
        from pydicom.pixels import get_decoder
    except ImportError as exc:
        return {"version": None, "error": f"{type(exc).__name__}: {exc}", "pixel_handlers": {}}
    handlers: dict[str, list[str]] = {}
    for name in DICOM_SYNTAXES:
        syntax = getattr(uid, name, None)
        if syntax is None:
            continue
        try:
            handlers[name] = sorted(get_decoder(syntax).available_plugins)
        except Exception:  # noqa: BLE001 - a syntax this pydicom cannot decode at all
            handlers[name] = []
    return {"version": pydicom.__version__, "error": None, "pixel_handlers": handlers}


def chromium(names: Iterable[str] = CHROMIUM_NAMES) -> str | None:
    """Path of the first Chromium on PATH, or None."""
    return next((p for p in (shutil.which(n) for n in names) if p), None)


def plugin_status(registry: Any = None) -> dict[str, Any]:
    """Every plugin (name, distribution, version, builtin, hooks, error) and, when the registry
    itself cannot be built (e.g. two plugins register one name), that error."""
    if registry is None:
        from cxrbench.errors import CxrbenchError
        from cxrbench.plugins import get_registry

        try:
            registry = get_registry()
        except CxrbenchError as exc:
            return {"plugins": [], "error": str(exc), "counts": {}}
    from cxrbench.plugins import KINDS

    return {"plugins": [p.as_dict() for p in registry.plugins], "error": None,
            "counts": {kind: len(getattr(registry, kind)) for kind in KINDS}}


def folder_size(path: Path) -> tuple[int, int]:
    """(number of files, total bytes) under ``path`` (symlinks not followed)."""
    files = size = 0
    for dirpath, _, filenames in os.walk(path):
        for f in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, f))
            except OSError:
                continue
            files += 1
            size += st.st_size
    return files, size


def cache_status() -> dict[str, Any]:
    """The decoded-image cache folder, whether it exists, its file count and size."""
    from cxrbench.data.cache import CACHE_ENV, default_cache_dir

    path = default_cache_dir()
    files, size = folder_size(path) if path.is_dir() else (0, 0)
    return {"env": CACHE_ENV, "env_value": os.environ.get(CACHE_ENV), "path": str(path), "exists": path.is_dir(),
            "files": files, "bytes": size}


def data_status(datasets: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The folders directly under ``$CXRBENCH_DATA`` and, per dataset with a default folder, whether
    that folder is there (``datasets``: name -> spec with ``default_folder``)."""
    from cxrbench.data.loading import DATA_ENV

    environ = os.environ if environ is None else environ
    value = environ.get(DATA_ENV)
    root = Path(os.path.expanduser(value)) if value else None
    exists = root is not None and root.is_dir()
    folders = sorted(p.name for p in root.iterdir() if p.is_dir()) if exists else []
    per_dataset = []
    for name, spec in (datasets or {}).items():
        folder = spec.default_folder
        if folder:
            per_dataset.append({"dataset": name, "folder": folder,
                                "exists": bool(exists and (root / folder).is_dir())})
    return {"env": DATA_ENV, "path": str(root) if root else None, "exists": exists, "folders": folders,
            "datasets": per_dataset}


def collect(registry: Any = None) -> dict[str, Any]:
    """Everything ``cxrbench doctor`` reports (``registry``: default the process-wide one)."""
    import cxrbench

    plugins = plugin_status(registry)
    if registry is None and plugins["error"] is None:
        from cxrbench.plugins import get_registry

        registry = get_registry()
    return {
        "cxrbench": cxrbench.__version__,
        "python": {"version": platform.python_version(), "executable": sys.executable,
                   "platform": platform.platform()},
        "packages": package_versions(),
        "accelerators": accelerators(),
        "dicom": dicom_handlers(),
        "chromium": chromium(),
        "plugins": plugins,
        "cache": cache_status(),
        "data": data_status(registry.datasets if registry is not None else None),
    }


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def render(report: dict[str, Any]) -> None:
    """The report as rich tables."""
    from rich.markup import escape
    from rich.table import Table

    from cxrbench.cli.console import console

    out = console()
    py = report["python"]
    t = Table(title=f"cxrbench {report['cxrbench']} on python {py['version']} ({escape(py['platform'])})",
              title_justify="left")
    t.add_column("package")
    t.add_column("version")
    for name, v in report["packages"].items():
        t.add_row(name, v or "[dim]not installed[/dim]")
    dicom = report["dicom"]
    for syntax, plugins in dicom["pixel_handlers"].items():
        t.add_row(f"  pydicom: {syntax}", ", ".join(plugins) or "[yellow]no decoder[/yellow]")
    t.add_row("chromium", report["chromium"] or "[dim]not on PATH (report browser test skipped)[/dim]")
    out.print(t)

    acc = report["accelerators"]
    if "error" in acc:
        out.print(f"[red]accelerators:[/red] {escape(acc['error'])}")
    else:
        cuda = acc["cuda"]
        gpus = "; ".join(f"{g['index']}: {g['name']} ({g['memory_gib']} GiB, sm {g['capability']})"
                         for g in cuda["devices"])
        out.print(f"CUDA: {'[green]available[/green]' if cuda['available'] else 'not available'}"
                  f" (torch built with CUDA {cuda['built'] or 'none'})" + (f", GPUs {escape(gpus)}" if gpus else ""))
        mps = acc["mps"]
        out.print(f"MPS: {'[green]available[/green]' if mps['available'] else 'not available'}; "
                  f"{acc['cpu_count']} CPUs, torch uses {acc['torch_threads']} threads")

    plugins = report["plugins"]
    if plugins["error"]:
        out.print(f"[bold red]registry failed:[/bold red] {escape(plugins['error'])}")
    t = Table(title="plugins (" + ", ".join(f"{n} {k}" for k, n in plugins["counts"].items()) + ")",
              title_justify="left")
    for c in ("name", "version", "builtin", "hooks", "status"):
        t.add_column(c)
    for p in plugins["plugins"]:
        status = f"[red]{escape(p['error'])}[/red]" if p["error"] else "[green]ok[/green]"
        t.add_row(p["name"], p["version"], "yes" if p["builtin"] else "", ", ".join(p["hooks"]), status)
    out.print(t)

    cache = report["cache"]
    where = f"${cache['env']}" if cache["env_value"] else "default"
    out.print(f"cache ({where}): {escape(cache['path'])}: " + (f"{cache['files']} files, {_human(cache['bytes'])}"
                                                                if cache["exists"] else "not created yet"))
    data = report["data"]
    if data["path"] is None:
        out.print(f"data: ${data['env']} is not set (suites need dataset.root, or set it)")
    elif not data["exists"]:
        out.print(f"data: ${data['env']} = {escape(data['path'])} [red]does not exist[/red]")
    else:
        out.print(f"data: ${data['env']} = {escape(data['path'])}: folders "
                  + (", ".join(escape(f) for f in data["folders"]) or "none"))
    if data["datasets"]:
        found = [f"{d['dataset']} ({d['folder']})" for d in data["datasets"] if d["exists"]]
        missing = [f"{d['dataset']} ({d['folder']})" for d in data["datasets"] if not d["exists"]]
        out.print("  default folders found: " + (escape(", ".join(found)) or "none")
                  + ("; missing: " + escape(", ".join(missing)) if missing else ""))


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print the report; 0 (it describes, it does not judge: see ``cxrbench plugins --check``)."""
    report = collect()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        render(report)
    return 0
