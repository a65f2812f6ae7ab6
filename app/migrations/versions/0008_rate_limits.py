"""Brute-force protection (issue 13, point 3): the counters of the ``limits`` storage kept in
the database (app/identity/limits_storage.py), shared by every process and machine.

Revision ID: 0008_rate_limits
Revises: 0007_registration_token
Create Date: 2026-12-04 09:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008_rate_limits"
down_revision = "0007_registration_token"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_counters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("rate_limit_counters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rate_limit_counters_key"), ["key"], unique=True)
        batch_op.create_index(batch_op.f("ix_rate_limit_counters_expires_at"), ["expires_at"], unique=False)
    op.create_table(
        "rate_limit_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("rate_limit_entries", schema=None) as batch_op:
        batch_op.create_index("ix_rate_limit_entries_key_at", ["key", "at"], unique=False)
        batch_op.create_index(batch_op.f("ix_rate_limit_entries_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_table("rate_limit_entries")
    op.drop_table("rate_limit_counters")
