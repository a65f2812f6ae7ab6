"""Indexes for the purge of expired rows (app.purge): each batch is a range scan, not a table scan.

Revision ID: 0005_purge_indexes
Revises: 0004_live_access
Create Date: 2026-12-03 07:00:00
"""

from alembic import op

revision = "0005_purge_indexes"
down_revision = "0004_live_access"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_authorization_codes_expires_at", "authorization_codes", ["expires_at"])
    op.create_index("ix_permission_tickets_expires_at", "permission_tickets", ["expires_at"])
    op.create_index("ix_pcts_expires_at", "pcts", ["expires_at"])
    op.create_index("ix_tokens_purge", "tokens", ["refresh_expires_at", "expires_at"])
    op.create_index("ix_rpts_purge", "rpts", ["refresh_expires_at", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_rpts_purge", table_name="rpts")
    op.drop_index("ix_tokens_purge", table_name="tokens")
    op.drop_index("ix_pcts_expires_at", table_name="pcts")
    op.drop_index("ix_permission_tickets_expires_at", table_name="permission_tickets")
    op.drop_index("ix_authorization_codes_expires_at", table_name="authorization_codes")
