"""The registry listings: ``cxrbench models``, ``datasets`` (and ``datasets describe``), ``metrics``,
``plugins``. Each loads the plugins when it runs; ``models`` builds no model unless ``--params``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cxrbench.cli import datasets as datasets_cmd
from cxrbench.cli.console import print_table


def _registry() -> Any:
    from cxrbench.plugins import get_registry

    return get_registry()


def add_parsers(sub: Any) -> None:
    """``models``, ``datasets`` (with ``describe``), ``metrics``, ``plugins``."""
    p = sub.add_parser("models", help="list registered models")
    p.add_argument("--json", action="store_true")
    p.add_argument("--params", action="store_true", help="also count parameters (slower)")
    p.add_argument("--filter", metavar="GLOB", help="shell-style pattern on the name, e.g. 'convnext*'")
    p.add_argument("--namespace", metavar="NS",
                   help="list a namespace's models (timm, torchvision, hf-hub) instead of the registered ones")
    p.add_argument("--pretrained", action="store_true", help="only models with upstream pretrained weights")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("datasets", help="list registered datasets")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_datasets)
    datasets_cmd.add_describe_parser(p)  # `cxrbench datasets describe NAME --root PATH`; plain `datasets` lists

    p = sub.add_parser("metrics", help="list registered metrics")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_metrics)

    p = sub.add_parser("plugins", help="list plugins, their hooks and load errors")
    p.add_argument("--json", action="store_true")
    p.add_argument("--check", action="store_true", help="exit 1 if any plugin failed to load")
    p.set_defaults(func=cmd_plugins)


def _listing(args: argparse.Namespace, title: str, rows: list[dict[str, Any]], columns: list[str]) -> int:
    """``rows`` as JSON (``--json``) or as a table of ``columns`` (list values joined)."""
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        shown = [{k: ", ".join(v) if isinstance(v, list) else v for k, v in r.items()} for r in rows]
        print_table(f"{len(rows)} {title}", shown, columns)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """Registered models (or, with ``--namespace``, a namespace's index); builds nothing unless ``--params``."""
    from cxrbench.models.info import model_info
    from cxrbench.models.zoo_index import matches

    registry = _registry()
    pattern = getattr(args, "filter", None)
    namespace = getattr(args, "namespace", None)
    if namespace:
        if namespace not in registry.model_namespaces:
            from cxrbench.errors import UnknownNameError

            raise UnknownNameError(f"unknown model namespace {namespace!r} (known: {', '.join(registry.model_namespaces)})")
        rows = [{"name": f"{namespace}:{r['name']}", "pretrained": r.get("pretrained") or [],
                 "input_size": r.get("input_size"), "fixed_input_size": r.get("fixed_input_size")}
                for r in registry.model_namespaces[namespace].names()]
        rows = [r for r in rows if matches(pattern, r["name"]) and (r["pretrained"] or not args.pretrained)]
        if not args.json:
            rows = [r | {"pretrained": _short_tags(r["pretrained"])} for r in rows]
        return _listing(args, f"{namespace} models", rows, ["name", "pretrained", "input_size", "fixed_input_size"])
    specs = [s for s in registry.models.values()
             if matches(pattern, s.name) and (s.supports_pretrained or not args.pretrained)]
    rows = [model_info(spec, with_params=args.params) for spec in specs]
    cols = ["name", "alias_of", "family", "plugin", "default_input_size", "supports_pretrained", "paper"]
    if args.params:
        cols.insert(4, "params")
    title = "models" + ("" if pattern or args.pretrained else
                        f" (and the namespaces {', '.join(n + ':' for n in registry.model_namespaces)}: "
                        "cxrbench models --namespace NS)")
    return _listing(args, title, rows, cols)


def _short_tags(tags: list[str]) -> str:
    return ", ".join(tags[:3]) + (f" (+{len(tags) - 3})" if len(tags) > 3 else "")


def cmd_datasets(args: argparse.Namespace) -> int:
    rows = [{"name": s.name, "tasks": list(s.tasks), "synthetic": s.synthetic, "plugin": s.plugin,
             "description": s.description, "source": s.source, "layout": s.layout}
            for s in _registry().datasets.values()]
    return _listing(args, "datasets", rows, ["name", "tasks", "synthetic", "plugin", "description"])


def cmd_metrics(args: argparse.Namespace) -> int:
    rows = [{"name": s.name, "tasks": list(s.tasks), "higher_is_better": s.higher_is_better, "plugin": s.plugin,
             "description": s.description} for s in _registry().metrics.values()]
    return _listing(args, "metrics", rows, ["name", "tasks", "higher_is_better", "plugin", "description"])


def cmd_plugins(args: argparse.Namespace) -> int:
    """Every plugin with its hooks and load error; with ``--check`` 1 when any failed."""
    registry = _registry()
    rows = [p.as_dict() for p in registry.plugins]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table("plugins", [r | {"hooks": ", ".join(r["hooks"]), "error": r["error"] or ""} for r in rows],
                    ["name", "distribution", "version", "builtin", "hooks", "error"])
    return 1 if any(p.error for p in registry.plugins) and args.check else 0
