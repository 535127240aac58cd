"""channels: WeCom AI bot streams and group bindings, report media

Revision ID: 0005_channels
Revises: 0001
Create Date: 2026-12-04 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005_channels"
down_revision: str | None = "0004_people"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATES = ("open", "ready", "answered", "posting", "posted", "failed")


def upgrade() -> None:
    op.create_table(
        "aibotstream",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedupe_key", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("stream_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("chat_type", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("chat_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("response_url", sa.Text(), nullable=True),
        sa.Column("state", sa.Enum(*_STATES, name="streamstate"), nullable=False),
        sa.Column("reply_text", sa.Text(), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(), nullable=True),
        sa.Column("ready_at", sa.DateTime(), nullable=True),
        sa.Column("done_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("aibotstream", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_aibotstream_chat_id"), ["chat_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_aibotstream_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_aibotstream_dedupe_key"), ["dedupe_key"], unique=True)
        batch_op.create_index(batch_op.f("ix_aibotstream_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_aibotstream_stream_id"), ["stream_id"], unique=True)
        batch_op.create_index(batch_op.f("ix_aibotstream_user_id"), ["user_id"], unique=False)

    op.create_table(
        "aibotgroup",
        sa.Column("chat_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=True),
        sa.Column("thread_id", sa.Integer(), nullable=True),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("chat_id"),
    )
    with op.batch_alter_table("aibotgroup", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_aibotgroup_community_id"), ["community_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_aibotgroup_thread_id"), ["thread_id"], unique=False)

    op.create_table(
        "reportmedia",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("inbound_id", sa.Integer(), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("content_type", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("issue_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("attached_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("reportmedia", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reportmedia_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_reportmedia_inbound_id"), ["inbound_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_reportmedia_issue_id"), ["issue_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_reportmedia_sha256"), ["sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_reportmedia_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_table("reportmedia")
    op.drop_table("aibotgroup")
    op.drop_table("aibotstream")
    sa.Enum(name="streamstate").drop(op.get_bind(), checkfirst=True)
