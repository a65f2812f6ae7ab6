"""Live access: RPTs record what they were decided from, and form refresh families.

Existing RPTs each start their own family (their ``jti``) and have an empty
basis: they were issued before decisions were recorded, so the current policy
decides them with no claims.

Revision ID: 0004_live_access
Revises: 0003
Create Date: 2026-11-28 09:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004_live_access"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rpts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("family_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("rotated", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("basis", sa.JSON(), nullable=False, server_default="{}"))
    op.execute("UPDATE rpts SET family_id = jti")
    with op.batch_alter_table("rpts", schema=None) as batch_op:
        batch_op.alter_column("family_id", existing_type=sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False)
        batch_op.alter_column("rotated", server_default=None)
        batch_op.alter_column("basis", server_default=None)
        batch_op.create_index(batch_op.f("ix_rpts_family_id"), ["family_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rpts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rpts_family_id"))
        batch_op.drop_column("basis")
        batch_op.drop_column("rotated")
        batch_op.drop_column("family_id")
