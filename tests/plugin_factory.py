"""Make a real installed-looking plugin (module + dist-info with an entry point) in a temp folder."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path


def make_plugin(root: Path, name: str, code: str, dist: str | None = None) -> Path:
    """Write ``<name>.py`` and a ``.dist-info`` declaring it in the ``cxrbench`` entry-point group,
    and put ``root`` on ``sys.path`` (importlib.metadata then finds it like a pip-installed package)."""
    dist = dist or f"cxrbench-{name.replace('_', '-')}"
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.py").write_text(textwrap.dedent(code))
    info = root / f"{dist.replace('-', '_')}-0.0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text(f"[cxrbench]\n{name} = {name}\n")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return root


def remove_plugin_path(root: Path, *modules: str) -> None:
    """Undo :func:`make_plugin` for the current process."""
    if str(root) in sys.path:
        sys.path.remove(str(root))
    for m in modules:
        sys.modules.pop(m, None)
