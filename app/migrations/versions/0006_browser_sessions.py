"""Browser sessions stored server-side (app/identity/sessions.py).

Logout and a password change end a session in every process. Sessions begun before this
revision were cookie-only and are not in the table: their owners log in again.

Revision ID: 0006_browser_sessions
Revises: 0005_purge_indexes
Create Date: 2026-12-03 07:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006_browser_sessions"
down_revision = "0005_purge_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "browser_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sid_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("credential", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("browser_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_browser_sessions_sid_hash"), ["sid_hash"], unique=True)
        batch_op.create_index(batch_op.f("ix_browser_sessions_user_id"), ["user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_browser_sessions_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_table("browser_sessions")
