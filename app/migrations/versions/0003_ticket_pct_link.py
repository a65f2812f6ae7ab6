"""Permission tickets remember the PCT whose claims joined their authorization process.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 05:57:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("permission_tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pct_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("permission_tickets", schema=None) as batch_op:
        batch_op.drop_column("pct_id")
