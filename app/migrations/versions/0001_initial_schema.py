"""Initial schema: every table of app.models, and the policy-set version row.

Revision ID: 0001
Revises:
Create Date: 2026-11-27 05:00:50.841532
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("requesting_party", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("resource_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_records_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_records_owner"), ["owner"], unique=False)

    op.create_table(
        "authorization_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("redirect_uri", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("redirect_uri_sent", sa.Boolean(), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("code_challenge", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("code_challenge_method", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=False),
        sa.Column("used", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("authorization_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_authorization_codes_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_authorization_codes_code_hash"), ["code_hash"], unique=True)

    op.create_table(
        "clients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("client_secret_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("client_name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("redirect_uris", sa.JSON(), nullable=False),
        sa.Column("claims_redirect_uris", sa.JSON(), nullable=False),
        sa.Column("grant_types", sa.JSON(), nullable=False),
        sa.Column("response_types", sa.JSON(), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("token_endpoint_auth_method", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("client_metadata", sa.JSON(), nullable=False),
        sa.Column("client_id_issued_at", sa.Integer(), nullable=False),
        sa.Column("client_secret_expires_at", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_clients_client_id"), ["client_id"], unique=True)

    op.create_table(
        "pcts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pct_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("claims", sa.JSON(), nullable=False),
        sa.Column("claim_sources", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("pcts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pcts_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_pcts_pct_hash"), ["pct_hash"], unique=True)

    op.create_table(
        "pending_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("requesting_party", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("rs_client_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("resource_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("scopes_requested", sa.JSON(), nullable=False),
        sa.Column("scopes_approved", sa.JSON(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.Column("decided_at", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("pending_requests", schema=None) as batch_op:
        batch_op.create_index("ix_pending_owner_status", ["owner", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_pending_requests_resource_id"), ["resource_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_pending_requests_ticket_id"), ["ticket_id"], unique=False)

    op.create_table(
        "permission_tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("rs_client_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("requesting_party", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("claims", sa.JSON(), nullable=False),
        sa.Column("claim_sources", sa.JSON(), nullable=False),
        sa.Column("predecessor_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=False),
        sa.Column("consumed", sa.Boolean(), nullable=False),
        sa.Column("consumed_at", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("permission_tickets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_permission_tickets_owner"), ["owner"], unique=False)
        batch_op.create_index(batch_op.f("ix_permission_tickets_predecessor_id"), ["predecessor_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_permission_tickets_ticket_hash"), ["ticket_hash"], unique=True)

    op.create_table(
        "policy_documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner", "name", "version", name="uq_policy_documents_version"),
    )
    with op.batch_alter_table("policy_documents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_policy_documents_owner"), ["owner"], unique=False)

    op.create_table(
        "policy_set_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "resources",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("rs_client_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("icon_uri", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("resource_scopes", sa.JSON(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("user_access_policy_uri", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("resources", schema=None) as batch_op:
        batch_op.create_index("ix_resources_owner_rs", ["owner", "rs_client_id"], unique=False)

    op.create_table(
        "rpts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("jti", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("format", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("requesting_party", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("rs_client_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("issued_at", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=False),
        sa.Column("refresh_token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("refresh_expires_at", sa.Integer(), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("rpts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rpts_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rpts_jti"), ["jti"], unique=True)
        batch_op.create_index(batch_op.f("ix_rpts_owner"), ["owner"], unique=False)
        batch_op.create_index(batch_op.f("ix_rpts_refresh_token_hash"), ["refresh_token_hash"], unique=True)
        batch_op.create_index(batch_op.f("ix_rpts_requesting_party"), ["requesting_party"], unique=False)
        batch_op.create_index(batch_op.f("ix_rpts_rs_client_id"), ["rs_client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rpts_ticket_id"), ["ticket_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rpts_token_hash"), ["token_hash"], unique=True)

    op.create_table(
        "signing_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kid", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("algorithm", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("private_key_pem", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("retired_at", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("signing_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signing_keys_kid"), ["kid"], unique=True)

    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("access_token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("refresh_token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("token_type", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("grant_type", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("family_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("issued_at", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=False),
        sa.Column("refresh_expires_at", sa.Integer(), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("rotated", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tokens_access_token_hash"), ["access_token_hash"], unique=True)
        batch_op.create_index(batch_op.f("ix_tokens_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tokens_family_id"), ["family_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tokens_refresh_token_hash"), ["refresh_token_hash"], unique=True)
        batch_op.create_index(batch_op.f("ix_tokens_subject"), ["subject"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("claims", sa.JSON(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_username"), ["username"], unique=True)
    # The single global policy-set version row (app.db.policy_set_version).
    op.bulk_insert(
        sa.table(
            "policy_set_version",
            sa.column("id", sa.Integer),
            sa.column("version", sa.Integer),
            sa.column("updated_at", sa.Integer),
        ),
        [{"id": 1, "version": 0, "updated_at": 0}],
    )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_username"))

    op.drop_table("users")
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tokens_subject"))
        batch_op.drop_index(batch_op.f("ix_tokens_refresh_token_hash"))
        batch_op.drop_index(batch_op.f("ix_tokens_family_id"))
        batch_op.drop_index(batch_op.f("ix_tokens_client_id"))
        batch_op.drop_index(batch_op.f("ix_tokens_access_token_hash"))

    op.drop_table("tokens")
    with op.batch_alter_table("signing_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signing_keys_kid"))

    op.drop_table("signing_keys")
    with op.batch_alter_table("rpts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rpts_token_hash"))
        batch_op.drop_index(batch_op.f("ix_rpts_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_rpts_rs_client_id"))
        batch_op.drop_index(batch_op.f("ix_rpts_requesting_party"))
        batch_op.drop_index(batch_op.f("ix_rpts_refresh_token_hash"))
        batch_op.drop_index(batch_op.f("ix_rpts_owner"))
        batch_op.drop_index(batch_op.f("ix_rpts_jti"))
        batch_op.drop_index(batch_op.f("ix_rpts_client_id"))

    op.drop_table("rpts")
    with op.batch_alter_table("resources", schema=None) as batch_op:
        batch_op.drop_index("ix_resources_owner_rs")

    op.drop_table("resources")
    op.drop_table("policy_set_version")
    with op.batch_alter_table("policy_documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_documents_owner"))

    op.drop_table("policy_documents")
    with op.batch_alter_table("permission_tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_permission_tickets_ticket_hash"))
        batch_op.drop_index(batch_op.f("ix_permission_tickets_predecessor_id"))
        batch_op.drop_index(batch_op.f("ix_permission_tickets_owner"))

    op.drop_table("permission_tickets")
    with op.batch_alter_table("pending_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pending_requests_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_pending_requests_resource_id"))
        batch_op.drop_index("ix_pending_owner_status")

    op.drop_table("pending_requests")
    with op.batch_alter_table("pcts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pcts_pct_hash"))
        batch_op.drop_index(batch_op.f("ix_pcts_client_id"))

    op.drop_table("pcts")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clients_client_id"))

    op.drop_table("clients")
    with op.batch_alter_table("authorization_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_authorization_codes_code_hash"))
        batch_op.drop_index(batch_op.f("ix_authorization_codes_client_id"))

    op.drop_table("authorization_codes")
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_records_owner"))
        batch_op.drop_index(batch_op.f("ix_audit_records_created_at"))

    op.drop_table("audit_records")
