"""people: residents' unit and phone, merged issues, hidden statements' reasons

Revision ID: 0004_people
Revises: 0001
Create Date: 2026-12-04 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004_people"
down_revision: str | None = "0003_privacy_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("unit", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True)
        )
        batch_op.add_column(
            sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=True)
        )
    with op.batch_alter_table("issue", schema=None) as batch_op:
        batch_op.add_column(sa.Column("merged_into_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_issue_merged_into_id_issue", "issue", ["merged_into_id"], ["id"]
        )
    with op.batch_alter_table("statement", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("hidden_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("statement", schema=None) as batch_op:
        batch_op.drop_column("hidden_reason")
    with op.batch_alter_table("issue", schema=None) as batch_op:
        batch_op.drop_constraint("fk_issue_merged_into_id_issue", type_="foreignkey")
        batch_op.drop_column("merged_into_id")
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("phone")
        batch_op.drop_column("unit")
