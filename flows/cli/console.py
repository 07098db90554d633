"""How every command prints a table (rich, imported only when one is printed)."""

from __future__ import annotations


def print_table(title: str, rows: list[dict[str, object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in rows[0] if rows else ["(empty)"]:
        table.add_column(str(column), overflow="fold")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console(width=160).print(table)
