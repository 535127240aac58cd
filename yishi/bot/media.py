"""Photos and locations in reports ("拍照上报"), and a clear answer for every other type.

A photo is fetched through the configured API's media endpoint (never from the URL in the
message), checked (jpeg / png / webp, `media_max_bytes`), stored content-addressed under
`<data_dir>/media/` and attached to the report the resident made in the last
`media_attach_minutes`; with no such report it waits and joins the resident's next one. A
location fills the report's place when the report has none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from yishi.bot.channel_models import ReportMedia
from yishi.core.clock import utcnow
from yishi.core.config import Settings
from yishi.deliberation.models import Issue, IssueEvent

log = logging.getLogger(__name__)

MEDIA_TYPES = ("image", "location")
DAILY_LIMIT = 50  # photos and locations a resident may send a day
_EXT = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
_SHA = re.compile(r"^[0-9a-f]{64}$")

OTHER_TYPES = {
    "video": "视频",
    "shortvideo": "小视频",
    "file": "文件",
    "link": "链接",
    "miniprogram": "小程序卡片",
    "miniprogrampage": "小程序卡片",
    "music": "音乐",
    "emotion": "表情",
    "unknown": "这类消息",
}
CAN_TAKE = (
    "我目前能看懂：文字、语音，以及报修时拍的照片和发送的位置。"
    "请用文字说明您的问题（如“3栋2单元楼道灯坏了”），或发送“帮助”查看我能做什么。"
)
PHOTO_ATTACHED = "照片已收到，已附在您的报修（编号 {issue_id}）里，工作人员处理时能看到。"
PHOTO_HELD = (
    "照片已收到。请再用文字说明问题和位置（如“3栋2单元楼道灯坏了”），"
    "我会把照片附在这次报修里。"
)
LOCATION_ATTACHED = "位置已收到，已记在您的报修（编号 {issue_id}）里：{label}。"
LOCATION_KEPT = (
    "位置已收到：{label}。您的报修（编号 {issue_id}）已有地点，这个位置一并附上供工作人员参考。"
)
LOCATION_HELD = "位置已收到：{label}。请再用文字说明遇到的问题，我会把位置记在这次报修里。"
PHOTO_FAILED = "抱歉，这张照片没能保存：{reason}。您也可以直接用文字描述问题和位置。"
TOO_MANY = "今天发送的照片和位置已经很多了，请用文字补充说明，或明天再发。"
PHOTO_UNAVAILABLE = (
    "抱歉，这里发来的照片暂时无法保存。请在社区公众号或企业微信应用里发送照片，"
    "或直接用文字描述问题和位置。"
)
ATTACHED_NOTE = "\n（已附上您刚才发来的{what}。）"


def content_for(msg_type: str, fields: dict[str, Any]) -> str:
    """What an image or location message stores as its content (a small JSON object)."""

    def text(key: str) -> str:
        value = fields.get(key)
        return value.strip()[:300] if isinstance(value, str) else ""

    if msg_type == "image":
        return json.dumps({"media_id": text("MediaId"), "pic_url": text("PicUrl")})
    if msg_type == "location":
        return json.dumps(
            {"lat": text("Location_X"), "lng": text("Location_Y"), "label": text("Label")},
            ensure_ascii=False,
        )
    return ""


def notice_for_type(msg_type: str) -> str:
    """The reply to a message type the assistant does not take (video, file, link, ...)."""
    name = OTHER_TYPES.get(msg_type, "这类消息")
    return f"抱歉，我暂时无法查看{name}。{CAN_TAKE}"


# ---------------------------------------------------------------- storage


def media_path(settings: Settings, sha256: str, content_type: str) -> Path:
    """Where a stored photo lives: `<data_dir>/media/<aa>/<sha256>.<ext>`."""
    if not _SHA.match(sha256) or content_type not in _EXT:
        raise ValueError("not a stored photo")
    return settings.data_dir / "media" / sha256[:2] / f"{sha256}.{_EXT[content_type]}"


def sniff_image(data: bytes) -> str | None:
    """The image type by its first bytes (what it is, not what the server said)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) > 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def store_photo(*, settings: Settings, data: bytes) -> tuple[str, str]:
    """Store an image content-addressed; (sha256, content type). Raises ValueError if not one."""
    if len(data) > settings.media_max_bytes:
        raise ValueError(f"照片超过{settings.media_max_bytes // (1024 * 1024)}MB")
    content_type = sniff_image(data)
    if content_type is None:
        raise ValueError("只能接收JPG、PNG或WEBP格式的照片")
    sha = hashlib.sha256(data).hexdigest()
    path = media_path(settings, sha, content_type)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # atomic: a reader never sees half a file
    return sha, content_type


def media_key(sha256: str, content_type: str) -> str:
    """How an issue lists a photo in `Issue.media`."""
    return f"{sha256}.{_EXT[content_type]}"


def open_photo(*, settings: Settings, key: str) -> tuple[Path, str] | None:
    """The file and content type of a photo listed in `Issue.media`, if it is stored."""
    sha, _, ext = key.partition(".")
    types = {v: k for k, v in _EXT.items()}
    if ext not in types or not _SHA.match(sha):
        return None
    path = media_path(settings, sha, types[ext])
    return (path, types[ext]) if path.is_file() else None


# ---------------------------------------------------------------- attaching


def _recent_issue(session: Session, settings: Settings, user_id: str) -> Issue | None:
    since = utcnow() - timedelta(minutes=settings.media_attach_minutes)
    return session.exec(
        select(Issue)
        .where(Issue.reporter_id == user_id, col(Issue.created_at) >= since)
        .order_by(col(Issue.created_at).desc(), col(Issue.id).desc())
    ).first()


def _attach(session: Session, item: ReportMedia, issue: Issue) -> bool:
    """Attach one item; True when a location filled the issue's empty place."""
    item.issue_id = issue.id
    item.attached_at = utcnow()
    session.add(item)
    filled = False
    if item.kind == "photo" and item.sha256 and item.content_type:
        key = media_key(item.sha256, item.content_type)
        if key not in (issue.media or []):
            issue.media = [*(issue.media or []), key]  # a new list: JSON columns track rebinding
        note = "居民补充了照片"
    else:
        if not issue.location and item.label:
            issue.location = item.label[:200]
            filled = True
        note = f"居民发送了位置：{item.label or ''}"
    issue.updated_at = utcnow()
    session.add(issue)
    assert issue.id is not None
    session.add(IssueEvent(issue_id=issue.id, kind="media", actor_id=item.user_id, note=note))
    return filled


def _sent_today(session: Session, user_id: str) -> int:
    since = utcnow() - timedelta(days=1)
    return len(session.exec(
        select(ReportMedia.id).where(
            ReportMedia.user_id == user_id, col(ReportMedia.created_at) >= since
        )
    ).all())


def take_media(
    *, session: Session, settings: Settings, user_id: str, channel: str, msg_type: str,
    content: str, inbound_id: int | None, fetchers: dict[str, Any],
) -> str:
    """Store a photo or location and attach it; the reply to send (never raises on bad input)."""
    if msg_type not in MEDIA_TYPES:
        return notice_for_type(msg_type)
    if _sent_today(session, user_id) >= DAILY_LIMIT:
        return TOO_MANY
    try:
        fields = json.loads(content) if content else {}
    except ValueError:
        fields = {}
    if not isinstance(fields, dict):
        fields = {}
    if msg_type == "location":
        item = _location(fields, user_id=user_id, inbound_id=inbound_id)
        if item is None:
            return "抱歉，没有读到位置信息，请用文字告诉我具体位置（如“3栋2单元门口”）。"
    else:
        photo = _photo(settings, fields, channel=channel, fetchers=fetchers)
        if isinstance(photo, str):
            return photo
        sha, content_type, size = photo
        item = ReportMedia(user_id=user_id, inbound_id=inbound_id, kind="photo", sha256=sha,
                           content_type=content_type, size=size)
    session.add(item)
    if item.kind == "location":
        answered = _answer_where(session, settings, item, channel=channel)
        if answered is not None:
            return answered
    issue = _recent_issue(session, settings, user_id)
    if issue is None:
        session.commit()
        label = item.label or ""
        return PHOTO_HELD if item.kind == "photo" else LOCATION_HELD.format(label=label)
    filled = _attach(session, item, issue)
    session.commit()
    if item.kind == "photo":
        return PHOTO_ATTACHED.format(issue_id=issue.id)
    template = LOCATION_ATTACHED if filled else LOCATION_KEPT
    return template.format(issue_id=issue.id, label=item.label or "")


def _answer_where(
    session: Session, settings: Settings, item: ReportMedia, *, channel: str
) -> str | None:
    """A location sent when the assistant asked where a reported problem is: record the report.

    The pin answers the question directly (its label is the place), so the resident is not
    asked again; None when no report is waiting for its place.
    """
    from yishi.bot import memory as memory_service
    from yishi.core import auth as auth_service
    from yishi.core.errors import YishiError
    from yishi.deliberation import service as deliberation_service

    pending = memory_service.load(session=session, user_id=item.user_id, settings=settings).pending
    if pending.get("kind") != "issue_location" or not pending.get("text"):
        return None
    actor = auth_service.actor_for(session=session, external_id=item.user_id, channel=channel)
    try:
        result = deliberation_service.record_issue(
            session=session, actor=actor, text=str(pending["text"]),
            category=pending.get("category"), location=item.label,
            urgency=pending.get("urgency"),
        )
    except YishiError as exc:
        log.info("report from a location pin not recorded: %s", type(exc).__name__)
        return None
    memory_service.set_pending(session=session, user_id=item.user_id, pending=None)
    issue = result.issue
    _attach(session, item, issue)
    session.commit()
    note = attach_pending(
        session=session, settings=settings, user_id=item.user_id,
        actions=[{"type": "record_issue", "issue_id": issue.id}],
    )
    if result.notice:
        return f"位置已收到：{issue.location or item.label}。{result.notice}{note}"
    party = issue.responsible_party or "相关负责方"
    if result.joined_existing:
        return (f"这个问题已经有邻居反映过（编号 {issue.id}），已把您加为支持者，"
                f"由{party}处理。回复“我的问题”可查看进度。{note}")
    return (f"已记录您反映的问题（编号 {issue.id}），位置：{issue.location or item.label}，"
            f"已转交{party}。回复“我的问题”可随时查看进度。{note}")


def _location(
    fields: dict[str, Any], *, user_id: str, inbound_id: int | None
) -> ReportMedia | None:
    try:
        lat, lng = float(fields.get("lat", "")), float(fields.get("lng", ""))
    except (TypeError, ValueError):
        return None
    if not (-90 <= lat <= 90 and -180 <= lng <= 180):
        return None
    label = str(fields.get("label") or "").strip()[:200] or f"{lat:.5f}, {lng:.5f}"
    return ReportMedia(user_id=user_id, inbound_id=inbound_id, kind="location", label=label,
                       latitude=lat, longitude=lng)


def _photo(
    settings: Settings, fields: dict[str, Any], *, channel: str, fetchers: dict[str, Any]
) -> tuple[str, str, int] | str:
    """(sha256, content type, size) of the stored photo, or the reply explaining why not."""
    from yishi.bot.adapters import WeChatApiError

    media_id = fields.get("media_id")
    fetcher = fetchers.get(channel)
    if fetcher is None or not isinstance(media_id, str) or not media_id:
        return PHOTO_UNAVAILABLE
    try:
        data, _declared = fetcher.fetch(media_id=media_id)
        sha, content_type = store_photo(settings=settings, data=data)
    except WeChatApiError as exc:
        log.warning("photo fetch failed: errcode %s", exc.errcode)
        reason = {
            40006: f"照片超过{settings.media_max_bytes // (1024 * 1024)}MB",
            40005: "只能接收JPG、PNG或WEBP格式的照片",
        }.get(exc.errcode, "暂时无法获取照片，请稍后重新发送")
        return PHOTO_FAILED.format(reason=reason)
    except ValueError as exc:
        return PHOTO_FAILED.format(reason=str(exc))
    return sha, content_type, len(data)


def attach_pending(
    *, session: Session, settings: Settings, user_id: str, actions: list[dict[str, Any]]
) -> str:
    """After a report: attach the photos / location the resident sent just before it.

    Returns a short note for the reply ("" when nothing was waiting).
    """
    issue_ids = [a.get("issue_id") for a in actions if a.get("type") == "record_issue"]
    issue_id = next((i for i in issue_ids if isinstance(i, int)), None)
    if issue_id is None:
        return ""
    issue = session.get(Issue, issue_id)
    if issue is None:
        return ""
    since = utcnow() - timedelta(minutes=settings.media_attach_minutes)
    waiting = session.exec(
        select(ReportMedia)
        .where(
            ReportMedia.user_id == user_id,
            col(ReportMedia.issue_id).is_(None),
            col(ReportMedia.created_at) >= since,
        )
        .order_by(col(ReportMedia.id))
    ).all()
    if not waiting:
        return ""
    for item in waiting:
        _attach(session, item, issue)
    session.commit()
    photos = sum(1 for i in waiting if i.kind == "photo")
    parts = [f"照片{photos}张"] if photos else []
    if any(i.kind == "location" for i in waiting):
        parts.append("位置")
    return ATTACHED_NOTE.format(what="和".join(parts))


_fetchers: dict[int, tuple[Settings, dict[str, Any]]] = {}


def fetchers_for(settings: Settings, senders: dict[str, Any]) -> dict[str, Any]:
    """The media fetchers of the configured channels (built once per Settings object)."""
    cached = _fetchers.get(id(settings))
    if cached is not None and cached[0] is settings:
        return cached[1]
    from yishi.bot.channel_adapters import build_media_fetchers

    built = build_media_fetchers(settings, senders)
    _fetchers[id(settings)] = (settings, built)
    return built


def answer_non_text(*, session: Session, settings: Settings, row: Any, senders: dict[str, Any]
                    ) -> str:
    """The pipeline's one call for a non-text message: take a photo / location, or explain."""
    return take_media(
        session=session, settings=settings, user_id=row.user_id, channel=row.channel,
        msg_type=row.msg_type, content=row.content or "", inbound_id=row.id,
        fetchers=fetchers_for(settings, senders) if row.msg_type == "image" else {},
    )
