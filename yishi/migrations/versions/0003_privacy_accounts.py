"""privacy and accounts: token expiry and last use, console sessions, privacy audit and notices

Revision ID: 0003_privacy_accounts
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003_privacy_accounts"
down_revision: str | None = "0002_production_bounds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("apitoken", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(), nullable=True))

    op.create_table(
        "console_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("console_session", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_console_session_session_sha256"), ["session_sha256"], unique=True
        )
        batch_op.create_index(batch_op.f("ix_console_session_user_id"), ["user_id"], unique=False)

    op.create_table(
        "privacy_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("privacy_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_privacy_event_at"), ["at"], unique=False)

    op.create_table(
        "privacy_notice",
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("shown_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id"),
    )


def downgrade() -> None:
    op.drop_table("privacy_notice")
    with op.batch_alter_table("privacy_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_privacy_event_at"))
    op.drop_table("privacy_event")
    with op.batch_alter_table("console_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_console_session_user_id"))
        batch_op.drop_index(batch_op.f("ix_console_session_session_sha256"))
    op.drop_table("console_session")
    with op.batch_alter_table("apitoken", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("expires_at")
