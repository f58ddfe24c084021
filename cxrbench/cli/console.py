"""Where the commands print: the rich consoles (made on first use, so building the parser imports
no rich) and the plain listing table of ``cxrbench models`` / ``datasets`` / ``metrics`` / ``plugins``."""

from __future__ import annotations

import sys
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console


@lru_cache(maxsize=None)
def console() -> Console:
    """Standard output; wide enough for a leaderboard when piped to a file or CI log (rich assumes 80)."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 200)


@lru_cache(maxsize=None)
def err_console() -> Console:
    """Standard error: progress, notes and error messages."""
    from rich.console import Console

    return Console(stderr=True)


def print_error(message: str, label: str = "[bold red]error:[/bold red]") -> None:
    """``error: message`` on standard error, the message printed literally (no rich markup)."""
    from rich.markup import escape

    err_console().print(label, escape(message), highlight=False)


def print_table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """``rows`` as a table of ``columns`` (missing and ``None`` values print empty)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*[str(r.get(c, "")) if r.get(c) is not None else "" for c in columns])
    console().print(table)
