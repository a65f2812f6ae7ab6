"""Policy-set status (files hash, last error) and claims-interaction continuation marker.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 05:25:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("policy_set_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("files_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("last_error", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("error_version", sa.Integer(), nullable=True))
    with op.batch_alter_table("permission_tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("continued_at", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("permission_tickets", schema=None) as batch_op:
        batch_op.drop_column("continued_at")
    with op.batch_alter_table("policy_set_version", schema=None) as batch_op:
        batch_op.drop_column("error_version")
        batch_op.drop_column("last_error")
        batch_op.drop_column("files_hash")
