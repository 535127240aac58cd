"""Column types fit what the code writes: the extreme value of every column, on both backends."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel

from yishi.core.config import Settings
from yishi.core.db import get_engine, import_all_models

WIDE = "議"  # one character, three bytes in UTF-8: VARCHAR(n) must count characters


def _extreme(column: sa.Column[Any], rows: dict[str, dict[str, Any]]) -> Any:
    """The largest value the column's type promises to hold (a foreign key: the parent's)."""
    for fk in column.foreign_keys:
        parent = fk.column
        if parent.table.name == column.table.name:
            return None if column.nullable else rows[column.table.name].get(parent.name)
        return rows[parent.table.name][parent.name]
    kind = column.type
    length = getattr(kind, "length", None)
    if isinstance(kind, sa.TypeDecorator):
        kind = kind.impl_instance
    if isinstance(kind, sa.Enum):
        return max(kind.enums, key=len)
    if isinstance(kind, sa.Boolean):
        return True
    if isinstance(kind, sa.BigInteger):
        return 2**63 - 1
    if isinstance(kind, sa.Integer):
        return 2**31 - 1
    if isinstance(kind, sa.Float | sa.Numeric):
        return 1e300 if isinstance(kind, sa.Float) else 10**6
    if isinstance(kind, sa.DateTime):
        return datetime(9999, 12, 31, 23, 59, 59, 999999)
    if isinstance(kind, sa.Date):
        return datetime(9999, 12, 31).date()
    if isinstance(kind, sa.JSON):
        return {"k": [WIDE * 1000, 2**53, None, {"nested": True}]}
    if isinstance(kind, sa.LargeBinary):
        return b"\xff" * 100_000
    if isinstance(kind, sa.String):  # String, Text, AutoString
        return WIDE * (length or 100_000)
    raise AssertionError(f"{column.table.name}.{column.name}: add a bound for {kind!r}")


def test_every_column_holds_its_extreme_value(yishi_env: Settings) -> None:
    from yishi.core.db import init_db

    init_db(yishi_env)
    import_all_models()
    rows: dict[str, dict[str, Any]] = {}
    engine = get_engine(yishi_env)
    with engine.begin() as conn:
        for table in SQLModel.metadata.sorted_tables:
            values: dict[str, Any] = {}
            for column in table.columns:
                if (
                    column.primary_key
                    and isinstance(column.type, sa.Integer)
                    and (not column.foreign_keys)
                ):
                    continue  # the database's own id
                values[column.name] = _extreme(column, rows)
            inserted = conn.execute(table.insert().values(**values).returning(*table.c))
            stored = dict(inserted.one()._mapping)
            rows[table.name] = stored
            for name, value in values.items():
                if isinstance(value, enum.Enum | float) or name not in stored:
                    continue
                assert stored[name] == value or str(stored[name]) == str(value), (
                    f"{table.name}.{name} did not keep its extreme value"
                )
    assert rows, "no tables"


def test_values_the_bot_writes_fit_their_columns(yishi_env: Settings) -> None:
    """The code's own longest values: flood control's action and a CLI CreateTime in µs."""
    from yishi.bot.models import InboundMessage

    columns = InboundMessage.__table__.c  # type: ignore[attr-defined]
    for action in ("rate_limited", "muted", "allow", "review", "block"):
        assert len(action) <= columns.moderation_action.type.length
    assert isinstance(columns.create_time.type, sa.BigInteger)
