"""generic task_run columns: queue, label, ref (no foreign key to notification)

The tracker became a library of its own: a run names a ``queue`` (was ``channel``), a
``label`` shown to operators (was ``recipient``) and an indexed ``ref`` to the caller's object
(was ``notification_id``, a foreign key to ``notification``). Every run and attempt is kept.

PostgreSQL renames in place. SQLite cannot drop a foreign key without rebuilding the table, and
dropping a parent table with foreign keys on deletes its children (ON DELETE CASCADE), so both
tables are copied into new ones, children re-pointed at the new parent, and then swapped in.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_RUN_COLUMNS = (
    "id, task_name, {queue}, {label}, {ref}, args, status, attempts, max_attempts, interruptions, "
    "crashes, created_at, updated_at, next_attempt_at, lease_expires_at, worker, started_at, "
    "finished_at, last_error"
)
_ATTEMPT_COLUMNS = (
    "id, run_id, number, worker, started_at, finished_at, duration_ms, outcome, error_type, "
    "error_message, traceback, retry_delay_seconds, response"
)
_RENAMES = (("channel", "queue"), ("recipient", "label"), ("notification_id", "ref"))


def _run_table(name: str, ref_name: str, ref_type: sa.types.TypeEngine[str]) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("task_name", sa.String(length=200), nullable=False),
        sa.Column("queue" if ref_name == "ref" else "channel", sa.String(length=40), nullable=True),
        sa.Column("label" if ref_name == "ref" else "recipient", sa.Text(), nullable=True),
        sa.Column(ref_name, ref_type, nullable=True),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("interruptions", sa.Integer(), nullable=False),
        sa.Column("crashes", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(), nullable=True),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        *(
            [sa.ForeignKeyConstraint([ref_name], ["notification.id"], ondelete="CASCADE")]
            if ref_name == "notification_id"
            else []
        ),
        sa.PrimaryKeyConstraint("id"),
    )


def _attempt_table(name: str, parent: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("error_type", sa.String(length=200), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("retry_delay_seconds", sa.Float(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], [f"{parent}.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )


def _indexes(queue: str, ref: str) -> None:
    op.create_index(f"ix_task_run_{queue}", "task_run", [queue])
    op.create_index("ix_task_run_created_at", "task_run", ["created_at"])
    op.create_index("ix_task_run_due", "task_run", ["status", "next_attempt_at"])
    op.create_index(f"ix_task_run_{ref}", "task_run", [ref])
    op.create_index("ix_task_run_task_name", "task_run", ["task_name"])
    op.create_index("ix_attempt_run_id", "attempt", ["run_id"])


def _rebuild_sqlite(*, to_generic: bool) -> None:
    # Children are re-pointed at the new parent before the old tables go, so that dropping the
    # old parent (an implicit DELETE, with foreign keys on) has no attempt left to cascade to.
    old = {"queue": "channel", "label": "recipient", "ref": "notification_id"}
    new = {"queue": "queue", "label": "label", "ref": "ref"}
    source, target = (old, new) if to_generic else (new, old)
    ref_type: sa.types.TypeEngine[str] = sa.String(length=100 if to_generic else 40)
    _run_table("task_run_new", target["ref"], ref_type)
    op.execute(
        f"INSERT INTO task_run_new ({_RUN_COLUMNS.format(**target)}) "
        f"SELECT {_RUN_COLUMNS.format(**source)} FROM task_run"
    )
    _attempt_table("attempt_new", "task_run_new")
    op.execute(
        f"INSERT INTO attempt_new ({_ATTEMPT_COLUMNS}) SELECT {_ATTEMPT_COLUMNS} FROM attempt"
    )
    op.drop_table("attempt")
    op.drop_table("task_run")
    op.rename_table("task_run_new", "task_run")
    op.rename_table("attempt_new", "attempt")
    _indexes(target["queue"], target["ref"])


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(to_generic=True)
        return
    op.drop_constraint("task_run_notification_id_fkey", "task_run", type_="foreignkey")
    for old, new in _RENAMES:
        op.alter_column("task_run", old, new_column_name=new)
    op.alter_column("task_run", "ref", type_=sa.String(length=100), existing_nullable=True)
    op.execute("ALTER INDEX ix_task_run_channel RENAME TO ix_task_run_queue")
    op.execute("ALTER INDEX ix_task_run_notification_id RENAME TO ix_task_run_ref")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(to_generic=False)
        return
    op.execute("ALTER INDEX ix_task_run_queue RENAME TO ix_task_run_channel")
    op.execute("ALTER INDEX ix_task_run_ref RENAME TO ix_task_run_notification_id")
    op.alter_column("task_run", "ref", type_=sa.String(length=40), existing_nullable=True)
    for old, new in _RENAMES:
        op.alter_column("task_run", new, new_column_name=old)
    op.create_foreign_key(
        "task_run_notification_id_fkey",
        "task_run",
        "notification",
        ["notification_id"],
        ["id"],
        ondelete="CASCADE",
    )
