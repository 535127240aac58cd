"""The responsibility list (责任清单): category → responsible party and service-level time.

The list comes from a file (the packaged default or `settings.responsibility_path`, TOML or JSON)
and admins override single entries through the API; those overrides live in the database.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import Session, select

from yishi.core.auth import Actor
from yishi.core.clock import utcnow
from yishi.core.config import Settings, get_settings
from yishi.core.errors import Invalid, NotFound
from yishi.core.models import Role
from yishi.deliberation.models import Category, ResponsibilityRule, Urgency

DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "responsibility.toml"

CATEGORY_LABELS: dict[str, str] = {
    "repairs": "维修",
    "cleaning": "保洁",
    "security": "安保",
    "parking": "停车",
    "noise": "噪音扰民",
    "pets": "宠物",
    "garbage": "垃圾",
    "greenery": "绿化",
    "fire_safety": "消防安全",
    "neighbour_dispute": "邻里纠纷",
    "elderly_care": "养老助老",
    "illegal_construction": "违章搭建",
    "fees": "收费",
    "other": "其他",
}


@dataclass(frozen=True)
class Responsibility:
    """One entry of the list, wherever it came from."""

    category: str
    party: str
    sla_hours: int
    urgent_sla_hours: int | None = None
    note: str = ""
    source: str = "file"  # file | admin

    def sla_for(self, urgency: str) -> int:
        """The service-level hours for an issue of this urgency."""
        if urgency == Urgency.urgent and self.urgent_sla_hours:
            return min(self.sla_hours, self.urgent_sla_hours)
        return self.sla_hours


def _parse(raw: dict[str, object], origin: str) -> dict[str, Responsibility]:
    out: dict[str, Responsibility] = {}
    for category, entry in raw.items():
        if category not in Category.__members__:
            raise Invalid(f"责任清单 {origin} 中有未知类别：{category}")
        if not isinstance(entry, dict) or "party" not in entry or "sla_hours" not in entry:
            raise Invalid(f"责任清单 {origin} 的 {category} 缺少 party 或 sla_hours")
        sla = int(entry["sla_hours"])
        urgent = entry.get("urgent_sla_hours")
        if sla <= 0 or (urgent is not None and int(urgent) <= 0):
            raise Invalid(f"责任清单 {origin} 的 {category} 时限必须为正数")
        out[category] = Responsibility(
            category=category,
            party=str(entry["party"]),
            sla_hours=sla,
            urgent_sla_hours=int(urgent) if urgent is not None else None,
            note=str(entry.get("note", "")),
        )
    return out


def load_file(path: Path | None = None) -> dict[str, Responsibility]:
    """Read a responsibility list file (TOML or JSON)."""
    path = path or DEFAULT_PATH
    if not path.exists():
        raise NotFound(f"找不到责任清单文件：{path}", hint="检查 YISHI_RESPONSIBILITY_PATH")
    if path.suffix.lower() == ".json":
        raw = json.loads(path.read_text(encoding="utf-8"))
    else:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    return _parse(raw, str(path))


def get_list(*, session: Session, settings: Settings | None = None) -> dict[str, Responsibility]:
    """The effective list: the default file, then the configured file, then admin overrides."""
    settings = settings or get_settings()
    entries = load_file(DEFAULT_PATH)
    if settings.responsibility_path:
        entries.update(load_file(settings.responsibility_path))
    for row in session.exec(select(ResponsibilityRule)):
        entries[row.category] = Responsibility(
            category=row.category,
            party=row.party,
            sla_hours=row.sla_hours,
            urgent_sla_hours=row.urgent_sla_hours,
            note=row.note,
            source="admin",
        )
    return entries


def route_to_responsible_party(
    *,
    session: Session,
    category: str,
    urgency: str,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> tuple[Responsibility | None, datetime | None]:
    """The responsible entry for a category and the due time it implies from `now`."""
    entries = get_list(session=session, settings=settings)
    entry = entries.get(category) or entries.get(Category.other.value)
    if entry is None:
        return None, None
    now = now or utcnow()
    return entry, now + timedelta(hours=entry.sla_for(urgency))


def set_rule(
    *,
    session: Session,
    actor: Actor,
    category: str,
    party: str,
    sla_hours: int,
    urgent_sla_hours: int | None = None,
    note: str = "",
) -> Responsibility:
    """Admin: override one category's party and service-level time."""
    actor.require(Role.admin)
    if category not in Category.__members__:
        known = "、".join(Category.__members__)
        raise Invalid(f"未知类别：{category}", hint=f"可用类别：{known}")
    if not party.strip():
        raise Invalid("责任方不能为空")
    if sla_hours <= 0 or (urgent_sla_hours is not None and urgent_sla_hours <= 0):
        raise Invalid("处理时限必须为正整数（小时）")
    row = session.get(ResponsibilityRule, category) or ResponsibilityRule(
        category=category, party=party, sla_hours=sla_hours
    )
    row.party = party.strip()
    row.sla_hours = sla_hours
    row.urgent_sla_hours = urgent_sla_hours
    row.note = note
    row.updated_by = actor.user_id
    row.updated_at = utcnow()
    session.add(row)
    session.commit()
    return Responsibility(
        category=category,
        party=row.party,
        sla_hours=sla_hours,
        urgent_sla_hours=urgent_sla_hours,
        note=note,
        source="admin",
    )


def reset_rule(*, session: Session, actor: Actor, category: str) -> None:
    """Admin: drop the override so the file's entry applies again."""
    actor.require(Role.admin)
    row = session.get(ResponsibilityRule, category)
    if row is None:
        raise NotFound(f"类别 {category} 没有管理员覆盖项")
    session.delete(row)
    session.commit()
