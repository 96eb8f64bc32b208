"""teams: site members with roles, invitations, and one audit log of who did what

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-09 09:00:00

Every site's owner_id becomes an owner membership; access is decided by memberships from
now on (sites.owner_id stays, saying who added the site).

The audit log, until now the erasure log, becomes the log of every action: it loses its
foreign key to sites (an entry must outlive a deleted site, so it keeps the site's id and
domain) and gains the actor's user id and a JSON column of details. The table is rebuilt
(a foreign key cannot be dropped in place on SQLite); entries keep their order.
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def _audit_columns() -> list:
    """The new audit log's columns."""
    return [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("site_domain", sa.String(length=253), nullable=True),
        sa.Column("actor", sa.String(length=300), nullable=False),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=48), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("events_deleted", sa.Integer(), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    ]


def upgrade():
    op.create_table(
        "site_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("site_id", "user_id", name="uq_site_members_site_user"),
    )
    op.create_index("ix_site_members_user", "site_members", ["user_id"])
    op.execute(
        "INSERT INTO site_members (site_id, user_id, role, created_at) "
        "SELECT id, owner_id, 'owner', created_at FROM sites ORDER BY id"
    )
    op.create_table(
        "invitations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("accepted_at", sa.DateTime(), nullable=True),
        sa.Column("accepted_by_id", sa.Integer(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["accepted_by_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash", name="uq_invitations_token_hash"),
    )
    op.create_index("ix_invitations_site", "invitations", ["site_id", "id"])

    op.create_table("audit_log_new", *_audit_columns())
    op.execute(
        "INSERT INTO audit_log_new (site_id, site_domain, actor, action, subject, "
        "events_deleted, created_at) "
        "SELECT a.site_id, s.domain, a.actor, a.action, a.subject, a.events_deleted, "
        "a.created_at FROM audit_log a LEFT JOIN sites s ON s.id = a.site_id ORDER BY a.id"
    )
    op.drop_index("ix_audit_site_id", table_name="audit_log")
    op.drop_table("audit_log")
    op.rename_table("audit_log_new", "audit_log")
    op.create_index("ix_audit_site_id", "audit_log", ["site_id", "id"])
    op.create_index("ix_audit_created_at", "audit_log", ["created_at"])
    op.create_index("ix_audit_actor_user", "audit_log", ["actor_user_id", "id"])


def downgrade():
    # Back to the erasure log: only the deletions of sites that still exist remain.
    op.create_table(
        "audit_log_old",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=300), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("events_deleted", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute(
        "INSERT INTO audit_log_old (site_id, actor, action, subject, events_deleted, "
        "created_at) SELECT site_id, actor, action, substr(subject, 1, 100), events_deleted, "
        "created_at FROM audit_log WHERE action IN ('erase_visitor', 'delete_before', "
        "'clear_test') AND site_id IN (SELECT id FROM sites) ORDER BY id"
    )
    for name in ("ix_audit_actor_user", "ix_audit_created_at", "ix_audit_site_id"):
        op.drop_index(name, table_name="audit_log")
    op.drop_table("audit_log")
    op.rename_table("audit_log_old", "audit_log")
    op.create_index("ix_audit_site_id", "audit_log", ["site_id", "id"])
    op.drop_index("ix_invitations_site", table_name="invitations")
    op.drop_table("invitations")
    op.drop_index("ix_site_members_user", table_name="site_members")
    op.drop_table("site_members")
