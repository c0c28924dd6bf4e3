"""notification priority and send_at; a token's destination

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Integer(), server_default="3", nullable=False))
        batch_op.add_column(sa.Column("send_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("destination", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_column("destination")
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_column("send_at")
        batch_op.drop_column("priority")
