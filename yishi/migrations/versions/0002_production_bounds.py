"""production bounds: column types that fit what the code writes; the outbound send lease

Revision ID: 0002_production_bounds
Revises: 0001
Create Date: 2026-12-04 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0002_production_bounds"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inboundmessage", schema=None) as batch_op:
        batch_op.alter_column(
            "create_time", existing_type=sa.Integer(), type_=sa.BigInteger(), nullable=False
        )
        batch_op.alter_column(
            "moderation_action",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=10),
            type_=sqlmodel.sql.sqltypes.AutoString(length=20),
            existing_nullable=True,
        )
    with op.batch_alter_table("outboundmessage", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deadline_at", sa.DateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("lease_owner", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True)
        )
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("send_started_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outboundmessage", schema=None) as batch_op:
        batch_op.drop_column("send_started_at")
        batch_op.drop_column("lease_until")
        batch_op.drop_column("lease_owner")
        batch_op.drop_column("deadline_at")
    with op.batch_alter_table("inboundmessage", schema=None) as batch_op:
        batch_op.alter_column(
            "moderation_action",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=20),
            type_=sqlmodel.sql.sqltypes.AutoString(length=10),
            existing_nullable=True,
        )
        batch_op.alter_column(
            "create_time", existing_type=sa.BigInteger(), type_=sa.Integer(), nullable=False
        )
