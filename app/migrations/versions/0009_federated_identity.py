"""Federated identity (issue 14): accounts at upstream OpenID Providers keyed by (issuer,
subject), sign-ins in progress, the party who signed in at the claims interaction, and the
claim names of each audit record.

Revision ID: 0009_federated_identity
Revises: 0008_rate_limits
Create Date: 2026-12-03 10:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0009_federated_identity"
down_revision = "0008_rate_limits"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "federated_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issuer", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("last_sign_in_at", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("issuer", "subject", name="uq_federated_identities_issuer_subject"),
    )
    with op.batch_alter_table("federated_identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_federated_identities_user_id"), ["user_id"], unique=False)

    op.create_table(
        "upstream_sign_ins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("next", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=False),
        sa.Column("used_at", sa.Integer(), nullable=True),
        sa.Column("result_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("claims", sa.JSON(), nullable=False),
        sa.Column("claim_sources", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("upstream_sign_ins", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_upstream_sign_ins_state_hash"), ["state_hash"], unique=True)
        batch_op.create_index(batch_op.f("ix_upstream_sign_ins_result_hash"), ["result_hash"], unique=True)
        batch_op.create_index(batch_op.f("ix_upstream_sign_ins_expires_at"), ["expires_at"], unique=False)

    with op.batch_alter_table("permission_tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signed_in_party", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claims", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_column("claims")
    with op.batch_alter_table("permission_tickets", schema=None) as batch_op:
        batch_op.drop_column("signed_in_party")
    op.drop_table("upstream_sign_ins")
    op.drop_table("federated_identities")
