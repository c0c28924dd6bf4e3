"""Many rows into one table as one DB-API ``executemany``, each row's values bound once.

SQLAlchemy's executemany of a compiled INSERT builds every row's parameters through its own
machinery (about 15 us a row here), and the group commit inserts thousands of rows a second on
the accept path. ``RowInserts`` compiles one INSERT per table and set of columns given, and
hands the driver plain tuples, each value passed through its column type's own bind processor,
so what is stored is what SQLAlchemy would have stored; errors are SQLAlchemy's own too. It
takes this way only on SQLite, and only when the compiled INSERT binds exactly the columns
given (a column left out with a Python-side default would need SQLAlchemy to fill it in);
anything else goes through ``Connection.execute`` as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Dialect, Table, insert

Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class _Plan:
    """One compiled INSERT: its SQL, how to pick a row's values, what to bind them through."""

    sql: str
    pick: Callable[[Mapping[str, Any]], Any]
    single: bool
    processors: tuple[tuple[int, Processor], ...]

    def values(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        picked = self.pick(row)
        values = [picked] if self.single else list(picked)
        for index, process in self.processors:
            values[index] = process(values[index])
        return tuple(values)


def _plan(table: Table, keys: tuple[str, ...], dialect: Dialect) -> _Plan | None:
    if dialect.name != "sqlite" or not dialect.positional or not keys:
        return None
    if any(key not in table.c for key in keys):
        return None  # SQLAlchemy words that error
    compiled = insert(table).compile(dialect=dialect, column_keys=list(keys))
    order = tuple(compiled.positiontup or ())
    if sorted(order) != sorted(keys):
        return None  # a column it fills in itself (a Python-side default): leave it to it
    processors = []
    for index, key in enumerate(order):
        column_type = table.c[key].type
        process = column_type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors.append((index, process))
    return _Plan(
        sql=str(compiled),
        pick=itemgetter(*order),
        single=len(order) == 1,
        processors=tuple(processors),
    )


class RowInserts:
    """INSERTs of many rows at a time, by the short way where it is safe (see the module)."""

    def __init__(self) -> None:
        self._plans: dict[tuple[Table, tuple[str, ...]], _Plan | None] = {}

    def insert(self, conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` (at least one) into ``table`` in ``conn``'s transaction."""
        keys = tuple(rows[0])
        try:
            plan = self._plans[table, keys]
        except KeyError:
            plan = self._plans[table, keys] = _plan(table, keys, conn.dialect)
        if plan is not None:
            try:
                params = [plan.values(row) for row in rows]
            except KeyError:
                pass  # a row without a column the first one had: SQLAlchemy says which
            else:
                conn.exec_driver_sql(plan.sql, params)
                return
        conn.execute(insert(table), list(rows))
