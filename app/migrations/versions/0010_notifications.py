"""Notifications (issue 15 point 4): owners' webhook and email targets, the outbox of their
deliveries; and the owner's revocations with their time (issue 15 point 5).

Revision ID: 0010_notifications
Revises: 0009_federated_identity
Create Date: 2026-12-03 13:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0010_notifications"
down_revision = "0009_federated_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification_targets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("notification_targets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notification_targets_owner"), ["owner"], unique=False)

    op.create_table(
        "notification_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("event", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Integer(), nullable=False),
        sa.Column("lease_until", sa.Integer(), nullable=True),
        sa.Column("lease_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.Column("delivered_at", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("notification_deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notification_deliveries_target_id"), ["target_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_notification_deliveries_owner"), ["owner"], unique=False)
        batch_op.create_index(batch_op.f("ix_notification_deliveries_request_id"), ["request_id"], unique=False)
        batch_op.create_index("ix_notification_deliveries_due", ["status", "next_attempt_at"], unique=False)

    op.create_table(
        "owner_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("at", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("ref_id", sa.Integer(), nullable=True),
        sa.Column("requesting_party", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("owner_actions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_owner_actions_owner"), ["owner"], unique=False)
        batch_op.create_index(batch_op.f("ix_owner_actions_at"), ["at"], unique=False)


def downgrade() -> None:
    op.drop_table("owner_actions")
    op.drop_table("notification_deliveries")
    op.drop_table("notification_targets")
