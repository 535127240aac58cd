"""held issue fields in their own table; the audit log append-only in the database, hash-chained

Revision ID: 0006_house
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006_house"
down_revision: str | None = "0005_channels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Kept here (not imported from the models) so this revision means the same forever.
SQLITE_TRIGGERS = tuple(
    f"CREATE TRIGGER IF NOT EXISTS moderation_decision_no_{verb.lower()} BEFORE {verb} "
    "ON moderation_decision "
    "BEGIN SELECT RAISE(ABORT, 'the moderation audit log is append-only'); END"
    for verb in ("UPDATE", "DELETE")
)
POSTGRES_TRIGGERS = (
    "CREATE OR REPLACE FUNCTION yishi_audit_append_only() RETURNS trigger AS $$ BEGIN "
    "RAISE EXCEPTION 'the moderation audit log is append-only'; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER moderation_decision_append_only BEFORE UPDATE OR DELETE "
    "ON moderation_decision FOR EACH ROW EXECUTE FUNCTION yishi_audit_append_only()",
)


def _seal_existing() -> None:
    """Chain the entries written before this revision, oldest first."""
    from yishi.moderation.audit import GENESIS, content_hash

    conn = op.get_bind()
    table = sa.table(
        "moderation_decision", sa.column("id", sa.Integer), sa.column("created_at", sa.DateTime),
        sa.column("review_item_id", sa.Integer), sa.column("actor_id", sa.String),
        sa.column("action", sa.String), sa.column("reason", sa.Text),
        sa.column("details", sa.JSON), sa.column("prev_hash", sa.String),
        sa.column("row_hash", sa.String),
    )
    prev = GENESIS
    for row in conn.execute(sa.select(table).order_by(table.c.id)).mappings().all():
        digest = content_hash(prev_hash=prev, created_at=row["created_at"],
                              review_item_id=row["review_item_id"], actor_id=row["actor_id"],
                              action=row["action"], reason=row["reason"] or "",
                              details=row["details"] or {})
        conn.execute(table.update().where(table.c.id == row["id"])
                     .values(prev_hash=prev, row_hash=digest))
        prev = digest


def upgrade() -> None:
    op.create_table(
        "deliberation_held_issue",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "moderation_audit_subject",
        sa.Column("pseudonym", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("sender_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.PrimaryKeyConstraint("pseudonym"),
    )
    with op.batch_alter_table("moderation_audit_subject", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_moderation_audit_subject_sender_id"), ["sender_id"], unique=True
        )
    with op.batch_alter_table("moderation_decision", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=False,
                                      server_default=""))
        batch_op.add_column(sa.Column("row_hash", sa.String(length=64), nullable=False,
                                      server_default=""))
    _seal_existing()
    dialect = op.get_bind().dialect.name
    for statement in {"sqlite": SQLITE_TRIGGERS, "postgresql": POSTGRES_TRIGGERS}.get(dialect, ()):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS moderation_decision_no_update")
        op.execute("DROP TRIGGER IF EXISTS moderation_decision_no_delete")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS moderation_decision_append_only ON moderation_decision")
        op.execute("DROP FUNCTION IF EXISTS yishi_audit_append_only()")
    with op.batch_alter_table("moderation_decision", schema=None) as batch_op:
        batch_op.drop_column("row_hash")
        batch_op.drop_column("prev_hash")
    op.drop_table("moderation_audit_subject")
    op.drop_table("deliberation_held_issue")
