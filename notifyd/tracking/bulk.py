"""Many rows through one statement as one DB-API ``executemany``, each row's values bound once.

SQLAlchemy's executemany of a compiled statement builds every row's parameters through its own
machinery, and the hot paths write thousands of rows a second: the group commit's inserts, the
dispatcher's claims and outcomes. ``insert_rows`` and ``execute_many`` compile each statement
once and hand the driver plain tuples, each value passed through its bind's own type
processor, so what is stored is what SQLAlchemy would have stored (tests/tracking/test_bulk.py
runs a whole accept-claim-finish cycle both ways and compares every stored byte); errors are
SQLAlchemy's own too. They take this way only on SQLite, and only where it is plain (every
parameter given by the rows or fixed in the statement, no column SQLAlchemy would fill in
itself); anything else goes through ``Connection.execute`` as before. Inside a transaction,
with nothing listening to the connection's statements, the tuples go to the driver's own
``executemany`` without SQLAlchemy's execution context around it (~15 us a statement); its
errors are then raised through SQLAlchemy's own handling.

Whether it still pays: ``python -m bench.bulk`` runs that cycle both ways in one run. On
2026-12-06 it took 62 us of process time per run this way against 76-79 us SQLAlchemy's way
(1.2-1.3x, ~15 us saved per accepted and delivered notification, a few percent of the accept
path's CPU).

On PostgreSQL the inserts take another form (``insert_tables``): each table's rows as one
``INSERT ... SELECT FROM json_to_recordset(...)`` of one JSON document, every table of a batch in
one statement, each value through its bind's processor as above (tests/tracking/test_bulk_postgres.py
compares the stored rows with SQLAlchemy's own). An executemany there is one statement per row
for the server to run and, in psycopg, a pipeline of per-row messages; this is one of each per
group commit, whatever its size (so the server prepares it once).

Reads take the same short way (``select_rows``): the dispatcher's claim reads its due runs, and
a worker the notifications it delivers, thousands of rows a second. The SELECT is compiled once,
run on the driver's own cursor, and each value passes through its column's result processor
(tests/tracking/test_bulk_reads.py compares the rows with SQLAlchemy's own). On PostgreSQL too,
with its named parameters, each through its bind's processor.
"""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

from sqlalchemy import JSON, Connection, Dialect, Select, Table, insert
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.sql.dml import UpdateBase

from notifyd.tracking.engine import observed, records_json

Processor = Callable[[Any], Any]
Row = Mapping[str, Any]


@dataclass(frozen=True)
class _Plan:
    """One compiled statement: its SQL and how to make one row's parameters."""

    sql: str
    values: Callable[[Row], tuple[Any, ...]]
    source: str  # the source ``values`` was compiled from (see ``_row_function``)


def _processor(bind_type: Any, dialect: Dialect) -> Processor | None:
    processor: Processor | None = bind_type.dialect_impl(dialect).bind_processor(dialect)
    return processor


def _row_function(
    parts: list[tuple[str, Any, Processor | None]],
) -> tuple[Callable[[Row], Any], str]:
    """``row -> tuple`` for ``parts`` of ("row", key, processor) or ("fixed", value, None).

    THE GENERATED CODE. The function is compiled from source, as ``collections.namedtuple``
    builds its methods: a Python loop over the parameters cost more than the statement. For the
    claim's UPDATE (``admin.worker._CLAIM_RUN``), whose binds are status (fixed in the
    statement), b_attempt, b_now, b_lease, b_worker, b_now, b_now and b_id, the source is::

        lambda row: (f0, row[k1], p2(row[k2]), p3(row[k3]), row[k4], p5(row[k5]), p6(row[k6]), row[k7],)

    with, in its globals, ``f0 = "running"`` (the fixed value, already passed through its
    type), ``k1 = "b_attempt"`` and so on (the rows' keys), and ``p2`` ... (the binds' type
    processors: a DateTime's to text, a JSON column's serializer; none for plain integers and
    strings). The plan keeps the source (``_Plan.source``), and a test holds it to this one.

    Only the names ``k<i>``, ``p<i>`` and ``f<i>`` are ever written into the source; keys and
    values, which may come from anywhere (a column named like code), are bound as its globals
    and never become code (tests/tracking/test_bulk.py checks a hostile column name).
    """
    scope: dict[str, Any] = {}
    items = []
    for index, (kind, value, process) in enumerate(parts):
        if kind == "fixed":
            scope[f"f{index}"] = value
            items.append(f"f{index}")
            continue
        scope[f"k{index}"] = value
        item = f"row[k{index}]"
        if process is not None:
            scope[f"p{index}"] = process
            item = f"p{index}({item})"
        items.append(item)
    source = f"lambda row: ({', '.join(items)},)"
    function: Callable[[Row], Any] = eval(source, scope)
    return function, source


def _compile_plan(compiled: Compiled, keys: tuple[str, ...], dialect: Dialect) -> _Plan | None:
    order = tuple(getattr(compiled, "positiontup", None) or ())
    binds = getattr(compiled, "binds", {})
    if not order:
        return None
    # (Its postfetch list, columns set by the database or an SQL expression, concerns only
    # what SQLAlchemy reads back afterwards, which these callers never ask for.)
    for filled_in in ("insert_prefetch", "update_prefetch"):
        if getattr(compiled, filled_in, None):
            return None  # a default or onupdate SQLAlchemy computes per execution: let it
    parts: list[tuple[str, Any, Processor | None]] = []
    for name in order:
        bind = binds[name]
        if bind.expanding or bind.literal_execute:
            return None
        process = _processor(bind.type, dialect)
        if name in keys:
            parts.append(("row", name, process))
        elif bind.callable is None and not bind.required:
            value = bind.effective_value
            parts.append(("fixed", value if process is None else process(value), None))
        else:
            return None  # a value SQLAlchemy computes or asks for: let it
    if all(kind == "fixed" for kind, _, _ in parts):
        return None
    values, source = _row_function(parts)
    return _Plan(sql=str(compiled), values=values, source=source)


def _short_way(dialect: Dialect) -> bool:
    return dialect.name == "sqlite" and bool(dialect.positional)


# Per dialect (its type processors carry its engine's settings, its JSON serializer say): the
# plans of the statements it has run. Statements are meant to be built once (module level);
# should a caller build them anew each time, the cache is emptied when it grows past PLANS_KEPT.
_PLANS: WeakKeyDictionary[Dialect, dict[tuple[Any, tuple[str, ...]], _Plan | None]] = (
    WeakKeyDictionary()
)
PLANS_KEPT = 256


def _plans(dialect: Dialect) -> dict[tuple[Any, tuple[str, ...]], _Plan | None]:
    plans = _PLANS.get(dialect)
    if plans is None or len(plans) > PLANS_KEPT:
        plans = _PLANS[dialect] = {}
    return plans


def _run(conn: Connection, plan: _Plan, rows: Sequence[Row]) -> int | None:
    """Execute ``plan`` for ``rows``; None when a row does not fit it (a parameter missing, a
    value its type refuses): SQLAlchemy's own way then says what is wrong, in its words."""
    try:
        params = [plan.values(row) for row in rows]
    except Exception:
        return None
    if conn.in_transaction() and not observed(conn):
        # The driver's own executemany: SQLAlchemy's execution context around it cost ~15 us
        # a statement, most of a small group commit's Python time. An error is handled as
        # SQLAlchemy handles its own (its exception classes, a lost connection invalidated).
        driver = conn.connection.driver_connection
        if driver is not None:
            try:
                return int(driver.executemany(plan.sql, params).rowcount)
            except Exception as exc:
                conn._handle_dbapi_exception(exc, plan.sql, params, None, None)
    return int(conn.exec_driver_sql(plan.sql, params).rowcount)


@dataclass(frozen=True)
class _RecordsPlan:
    """PostgreSQL: one INSERT of every row, the rows sent as one JSON document."""

    sql: str
    keys: tuple[str, ...]
    processors: tuple[Processor | None, ...]


def _records_plan(table: Table, keys: tuple[str, ...], dialect: Dialect) -> _RecordsPlan | None:
    """``INSERT INTO t (a, b) SELECT c0, c1::json FROM json_to_recordset(%(rows)s::json) AS
    v(c0 varchar, c1 text)``: one statement whatever the number of rows (so it is prepared
    once), one round trip, one parameter. The rows' values travel as one JSON text, which the
    driver sends as it is; per-column arrays made psycopg dump every value of every column one
    by one, two thirds of a group commit's time in the server's process."""
    if not all(key in table.c for key in keys):
        return None
    compiled = insert(table).compile(dialect=dialect, column_keys=list(keys))
    if getattr(compiled, "insert_prefetch", None) or set(compiled.binds) != set(keys):
        return None  # a default SQLAlchemy computes, or a column it fills in: let it
    columns = [table.c[key] for key in keys]
    declared, selected = [], []
    for index, column in enumerate(columns):
        type_name = column.type.compile(dialect=dialect)
        is_json = column.type._type_affinity is JSON  # sent as its text, cast back
        declared.append(f"c{index} {'text' if is_json else type_name}")
        selected.append(f"c{index}::{type_name}" if is_json else f"c{index}")
    preparer = dialect.identifier_preparer
    sql = (
        f"INSERT INTO {preparer.format_table(table)} "
        f"({', '.join(preparer.format_column(column) for column in columns)}) "
        f"SELECT {', '.join(selected)} FROM json_to_recordset(%(@)s::json) "
        f"AS v({', '.join(declared)})"
    )
    processors = tuple(
        _json_text(column.type, dialect)
        if column.type._type_affinity is JSON
        else _processor(column.type, dialect)
        for column in columns
    )
    return _RecordsPlan(sql=sql, keys=keys, processors=processors)


def _json_text(json_type: Any, dialect: Dialect) -> Processor:
    """A JSON column's value as the text SQLAlchemy would bind (psycopg's dialect binds a
    wrapper its driver dumps instead; here the text itself goes in the document)."""
    serialize: Callable[[Any], str] = getattr(dialect, "_json_serializer", None) or json.dumps
    none_as_null = bool(getattr(json_type, "none_as_null", False))

    def text_of(value: Any) -> str | None:
        if value is JSON.NULL:
            return "null"
        if value is None:
            return None if none_as_null else "null"
        return serialize(value)

    return text_of


def _records(plan: _RecordsPlan, rows: Sequence[Row]) -> str:
    """The rows as the plan's JSON document (each value through its bind's processor); raises
    for a row that does not fit (SQLAlchemy's own way then says what is wrong)."""
    names = [f"c{index}" for index in range(len(plan.keys))]
    steps = list(zip(names, plan.keys, plan.processors, strict=True))
    return records_json(
        [
            {
                name: row[key] if process is None else process(row[key])
                for name, key, process in steps
            }
            for row in rows
        ]
    )


_RECORDS_PLANS: WeakKeyDictionary[
    Dialect, dict[tuple[Table, tuple[str, ...]], _RecordsPlan | None]
] = WeakKeyDictionary()


def _records_plan_for(dialect: Dialect, table: Table, keys: tuple[str, ...]) -> _RecordsPlan | None:
    plans = _RECORDS_PLANS.setdefault(dialect, {})
    try:
        return plans[table, keys]
    except KeyError:
        if len(plans) > PLANS_KEPT:
            plans.clear()
        plan = plans[table, keys] = _records_plan(table, keys, dialect)
        return plan


def insert_tables(conn: Connection, batches: Sequence[tuple[Table, Sequence[Row]]]) -> None:
    """Insert each ``(table, rows)`` in turn (parents first), as :func:`insert_rows` does.

    On PostgreSQL every table's rows go in one statement, each table's INSERT a data-modifying
    ``WITH`` of it: a group commit's notifications and runs are one round trip, not one each
    (the writer thread waits for each, and gets the GIL back after each wait).
    """
    batches = [(table, rows) for table, rows in batches if rows]
    if conn.dialect.name == "postgresql" and len(batches) > 1:
        plans = [_records_plan_for(conn.dialect, table, tuple(rows[0])) for table, rows in batches]
        if all(plan is not None for plan in plans):
            try:
                params: dict[str, Any] = {}
                for number, (plan, (_, rows)) in enumerate(zip(plans, batches, strict=True)):
                    assert plan is not None
                    params[f"t{number}"] = _records(plan, rows)
            except Exception:
                params = {}
            if params:
                parts = [
                    f"w{number} AS ({plan.sql.replace('%(@)', f'%(t{number})')})"
                    for number, plan in enumerate(plans)
                    if plan is not None
                ]
                conn.exec_driver_sql(f"WITH {', '.join(parts)} SELECT 1", params)
                return
    for table, rows in batches:
        insert_rows(conn, table, rows)


def insert_rows(conn: Connection, table: Table, rows: Sequence[Row]) -> None:
    """Insert ``rows`` (at least one, each with the first one's columns) into ``table``."""
    dialect = conn.dialect
    keys = tuple(rows[0])
    if dialect.name == "postgresql":
        records_plan = _records_plan_for(dialect, table, keys)
        if records_plan is not None:
            try:
                document = _records(records_plan, rows)
            except Exception:
                document = None  # a row that does not fit: SQLAlchemy's own way says what is wrong
            if document is not None:
                conn.exec_driver_sql(
                    records_plan.sql.replace("%(@)", "%(rows)"), {"rows": document}
                )
                return
    if _short_way(dialect):
        plans = _plans(dialect)
        try:
            plan = plans[table, keys]
        except KeyError:
            plan = None
            if all(key in table.c for key in keys):
                compiled = insert(table).compile(dialect=dialect, column_keys=list(keys))
                # Every column given, and no other (SQLAlchemy would fill in a Python default).
                if sorted(compiled.positiontup or ()) == sorted(keys):
                    plan = _compile_plan(compiled, keys, dialect)
            plans[table, keys] = plan
        if plan is not None and _run(conn, plan, rows) is not None:
            return
    conn.execute(insert(table), list(rows))


def execute_many(conn: Connection, statement: UpdateBase, rows: Sequence[Row]) -> int:
    """Execute ``statement`` once per row of parameters (at least one); the rows it matched."""
    dialect = conn.dialect
    if _short_way(dialect):
        keys = tuple(rows[0])
        plans = _plans(dialect)
        try:
            plan = plans[statement, keys]
        except KeyError:
            compiled = statement.compile(dialect=dialect)
            plan = plans[statement, keys] = _compile_plan(compiled, keys, dialect)
        if plan is not None:
            matched = _run(conn, plan, rows)
            if matched is not None:
                return matched
    return int(conn.execute(statement, list(rows)).rowcount)


@dataclass(frozen=True)
class _ReadPlan:
    """One compiled SELECT: its SQL, its parameters as the driver takes them, and how to make a
    row of what the driver returns."""

    sql: str
    values: Callable[[Row], Any]
    make: Callable[[Sequence[Any]], NamedTuple]


_READ_PLANS: WeakKeyDictionary[Dialect, dict[tuple[Any, tuple[str, ...]], _ReadPlan | None]] = (
    WeakKeyDictionary()
)


def _make_function(
    names: list[str], processors: list[Processor | None]
) -> Callable[[Sequence[Any]], NamedTuple]:
    """``driver row -> named row``, each value through its column's result processor; compiled
    from source as ``_row_function`` is, with only ``T``, ``r``, ``p<i>`` and indices in it."""
    scope: dict[str, Any] = {"T": namedtuple("Row", names, rename=True)}
    items = []
    for index, process in enumerate(processors):
        item = f"r[{index}]"
        if process is not None:
            scope[f"p{index}"] = process
            item = f"p{index}({item})"
        items.append(item)
    function: Callable[[Sequence[Any]], NamedTuple] = eval(
        f"lambda r: T({', '.join(items)})", scope
    )
    return function


def _named_values(compiled: Compiled, dialect: Dialect) -> Callable[[Row], Any] | None:
    """PostgreSQL (named parameters): ``params -> {name: value}``, each value through its
    bind's processor, as SQLAlchemy would send them; None where SQLAlchemy must render more
    (an expanding list, a value it computes)."""
    binds = getattr(compiled, "binds", {})
    if dialect.positional or getattr(compiled, "escaped_bind_names", None):
        return None
    if any(bind.expanding or bind.literal_execute or bind.callable for bind in binds.values()):
        return None
    processors = {name: _processor(bind.type, dialect) for name, bind in binds.items()}

    def values(params: Row) -> dict[str, Any]:
        given = compiled.construct_params(dict(params)) or {}  # raises for a missing one
        return {
            name: value if (process := processors.get(name)) is None else process(value)
            for name, value in given.items()
        }

    return values


def _read_plan(statement: Select[Any], keys: tuple[str, ...], dialect: Dialect) -> _ReadPlan | None:
    compiled = statement.compile(dialect=dialect)
    values: Callable[[Row], Any] | None
    if _short_way(dialect):
        plan = _compile_plan(compiled, keys, dialect)
        values = None if plan is None else plan.values
    else:
        values = _named_values(compiled, dialect)
    if values is None:
        return None
    processors: list[Processor | None] = [
        column.type._cached_result_processor(dialect, None) for column in statement.selected_columns
    ]
    names = list(statement.selected_columns.keys())
    return _ReadPlan(sql=str(compiled), values=values, make=_make_function(names, processors))


def select_rows(conn: Connection, statement: Select[Any], params: Row) -> Sequence[Any]:
    """The rows of ``statement`` with ``params``: named rows (attributes, ``_asdict()``) with
    the values SQLAlchemy's own rows would hold."""
    dialect = conn.dialect
    if dialect.name in ("sqlite", "postgresql") and params and not observed(conn):
        keys = tuple(params)
        plans = _READ_PLANS.get(dialect)
        if plans is None or len(plans) > PLANS_KEPT:
            plans = _READ_PLANS[dialect] = {}
        try:
            read = plans[statement, keys]
        except KeyError:
            read = plans[statement, keys] = _read_plan(statement, keys, dialect)
        if read is not None:
            try:
                values = read.values(params)
            except Exception:
                values = None  # a value its type refuses: SQLAlchemy's own way says what
            driver = conn.connection.driver_connection
            if values is not None and driver is not None:
                try:
                    found = driver.execute(read.sql, values).fetchall()
                except Exception as exc:
                    conn._handle_dbapi_exception(exc, read.sql, values, None, None)
                make = read.make
                return [make(row) for row in found]
    return conn.execute(statement, dict(params)).all()
