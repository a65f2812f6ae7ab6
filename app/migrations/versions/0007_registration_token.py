"""Dynamic client management (RFC 7592): the SHA-256 of each registered client's
registration access token.

Revision ID: 0007_registration_token
Revises: 0006_browser_sessions
Create Date: 2026-12-03 07:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007_registration_token"
down_revision = "0006_browser_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("registration_token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("registration_token_hash")
