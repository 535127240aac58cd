"""The owners' roster (业主名册): import from CSV into users (name, unit, phone) and the recorded
units that Civil Code art. 278 counts."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from sqlmodel import Session, select

from yishi.core import auth as auth_service
from yishi.core.auth import Actor
from yishi.core.errors import Invalid, YishiError
from yishi.core.models import Role, User
from yishi.deliberation import proposals

# Accepted column names, Chinese or English, for each field.
COLUMNS = {
    "unit": ("房号", "房屋", "单元", "unit"),
    "name": ("姓名", "业主", "name"),
    "area": ("面积", "专有面积", "建筑面积", "area", "area_m2"),
    "phone": ("电话", "手机", "手机号", "phone"),
    "external_id": ("微信身份", "身份标识", "external_id"),
}
MAX_ROWS = 20_000


@dataclass
class RosterReport:
    """What an import did: rows added or updated, and each rejected row with its reason."""

    added: int = 0
    updated: int = 0
    errors: list[str] = field(default_factory=list)


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    for i, h in enumerate(header):
        if h.strip().lower() in names:
            return i
    return None


def import_csv(*, session: Session, actor: Actor, data: bytes) -> RosterReport:
    """Staff: add or update owners from a CSV (房号, 姓名, 面积; optional 电话, 微信身份)."""
    actor.require(Role.staff)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            raise Invalid("名册文件无法识别编码", hint="请另存为 UTF-8 编码的 CSV") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise Invalid("名册文件是空的", hint="第一行写表头：房号,姓名,面积,电话")
    header = rows[0]
    idx = {key: _column(header, names) for key, names in COLUMNS.items()}
    missing = [COLUMNS[k][0] for k in ("unit", "name", "area") if idx[k] is None]
    if missing:
        raise Invalid("名册缺少列：" + "、".join(missing), hint="第一行写表头：房号,姓名,面积,电话")
    if len(rows) - 1 > MAX_ROWS:
        raise Invalid(f"名册超过 {MAX_ROWS} 行", hint="请分批导入")
    report = RosterReport()

    def cell(row: list[str], key: str) -> str:
        i = idx[key]
        return row[i].strip() if i is not None and i < len(row) else ""

    for line, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        unit, name = cell(row, "unit"), cell(row, "name")
        try:
            if not unit or not name:
                raise Invalid("房号和姓名不能为空")
            try:
                area = float(cell(row, "area"))
            except ValueError:
                raise Invalid("面积不是数字") from None
            external_id = cell(row, "external_id") or f"roster:{unit}"
            user = session.exec(select(User).where(User.external_id == external_id)).first()
            if user is None:
                user = auth_service.create(session=session, name=name, role=Role.resident,
                                           external_id=external_id)
                report.added += 1
            else:
                report.updated += 1
            assert user.id is not None
            auth_service.update_profile(session=session, user_id=user.id, name=name, unit=unit,
                                        phone=cell(row, "phone") or None)
            proposals.record_unit(session=session, actor=actor, unit=unit,
                                  owner_id=external_id, area_m2=area)
        except YishiError as exc:
            session.rollback()
            report.errors.append(f"第 {line} 行：{exc.message}")
    return report
