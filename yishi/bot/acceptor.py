"""Group commit for webhooks: concurrent requests' messages are stored in one transaction.

Each webhook request hands its parsed message to the process's `Acceptor` and awaits the
outcome; one writer thread takes whatever has queued up (up to `max_batch`), inserts it with a
single INSERT ... ON CONFLICT DO NOTHING RETURNING, commits once, enqueues one fan-out job,
and only then resolves the requests' futures — so WeChat still gets its answer only after its
message is durably stored, and a repeat (same dedupe key) is still decided by the database.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any

from sqlalchemy import BigInteger, Integer, select
from sqlalchemy.exc import DBAPIError, StatementError
from sqlmodel import Session

from yishi.bot import outbox
from yishi.bot.channels.crypto import ChannelRejected
from yishi.bot.models import InboundMessage, InboundStatus
from yishi.bot.schemas import Accepted, IncomingMessage
from yishi.core import jobs
from yishi.core.clock import utcnow
from yishi.core.config import Settings
from yishi.core.db import get_engine

log = logging.getLogger(__name__)

_INBOUND = InboundMessage.__table__  # type: ignore[attr-defined]
_Pending = tuple[IncomingMessage, asyncio.AbstractEventLoop, "asyncio.Future[Accepted]"]
CONTENT_LIMIT = 20000  # characters kept of a message's text (WeChat's own limit is far lower)
_INT_BOUNDS = {Integer: 2**31 - 1, BigInteger: 2**63 - 1}


class MessageRefused(ChannelRejected):
    """A verified message whose fields do not fit: refused alone (400), the rest of its batch
    is stored."""

    status_code = 400


def check_row(values: dict[str, Any]) -> None:
    """Refuse values the table cannot hold, on every backend (the table's own bounds)."""
    for name, value in values.items():
        column = _INBOUND.c[name]
        if isinstance(value, str):
            length = getattr(column.type, "length", None)
            if length is not None and len(value) > length:
                raise MessageRefused(f"{name} is longer than {length} characters")
            if "\x00" in value:  # PostgreSQL text cannot hold NUL
                raise MessageRefused(f"{name} contains a NUL character")
        elif isinstance(value, int) and not isinstance(value, bool):
            for kind, bound in _INT_BOUNDS.items():
                if type(column.type) is kind and not 0 <= value <= bound:
                    raise MessageRefused(f"{name} is out of range")


def row_values(msg: IncomingMessage) -> dict[str, Any]:
    """The column values of a new inbound message."""
    now = utcnow()
    return {
        "dedupe_key": msg.dedupe_key,
        "channel": msg.channel,
        "user_id": msg.user_id,
        "sender": msg.sender,
        "msg_type": msg.msg_type,
        "event": msg.event,
        "content": msg.content[:CONTENT_LIMIT],
        "msg_id": msg.msg_id,
        "create_time": msg.create_time,
        "agent_id": msg.agent_id,
        "status": InboundStatus.received,
        "attempts": 0,
        "passive_polls": 0,
        "deliver_on_next": False,
        "moderation_categories": [],
        "actions": [],
        "citations": [],
        "created_at": now,
        "updated_at": now,
    }


def accept_many(
    *, session: Session, msgs: list[IncomingMessage]
) -> list[Accepted | MessageRefused]:
    """Store a batch of messages in one transaction; a repeat gets the first message's id.

    A message whose fields do not fit is refused alone (its entry is a `MessageRefused`); if the
    batch insert still fails, each row is tried alone so that one bad row harms no other.
    """
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = session.get_bind().dialect.name
    dialect_insert: Any = sqlite.insert if dialect == "sqlite" else postgresql.insert
    unique: dict[str, IncomingMessage] = {}
    refused: dict[str, MessageRefused] = {}
    rows: dict[str, dict[str, Any]] = {}
    for msg in msgs:
        try:
            key = msg.dedupe_key
            if key in unique or key in refused:
                continue
            values = row_values(msg)
            check_row(values)
        except MessageRefused as exc:
            refused[msg.dedupe_key] = exc
            continue
        unique[key] = msg
        rows[key] = values
    stmt = (
        dialect_insert(_INBOUND)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(_INBOUND.c.id, _INBOUND.c.dedupe_key)
    )
    new: dict[str, int] = {}
    if rows:
        try:
            for row in session.execute(stmt, list(rows.values())):
                new[row.dedupe_key] = int(row.id)
        except (DBAPIError, StatementError) as exc:
            session.rollback()
            log.warning(
                "batch insert failed (%s); storing its %s rows one by one",
                type(exc).__name__,
                len(rows),
            )
            new = {}
            for key, values in rows.items():
                try:  # its own transaction: a savepoint is not portable to pysqlite
                    for row in session.execute(stmt, [values]):
                        new[row.dedupe_key] = int(row.id)
                    session.commit()
                except (DBAPIError, StatementError) as row_exc:
                    session.rollback()
                    log.warning("inbound row refused by the database: %s", type(row_exc).__name__)
                    refused[key] = MessageRefused(f"not storable: {type(row_exc).__name__}")
    missing = [key for key in unique if key not in new and key not in refused]
    existing: dict[str, int] = {}
    if missing:
        for row in session.execute(
            select(_INBOUND.c.id, _INBOUND.c.dedupe_key).where(_INBOUND.c.dedupe_key.in_(missing))
        ):
            existing[row.dedupe_key] = int(row.id)
    session.commit()
    results: list[Accepted | MessageRefused] = []
    first_seen: set[str] = set()
    for msg in msgs:
        key = msg.dedupe_key
        if key in refused:
            results.append(refused[key])
        elif key in new and key not in first_seen:
            first_seen.add(key)
            results.append(Accepted(inbound_id=new[key], duplicate=False))
        else:
            results.append(Accepted(inbound_id=new.get(key) or existing[key], duplicate=True))
    to_process = [
        new[m.dedupe_key]
        for m in unique.values()
        if m.dedupe_key in new and m.channel not in outbox.LOCAL_CHANNELS
    ]
    if to_process:
        try:
            jobs.enqueue("bot.fan_out", to_process)
        except Exception as exc:  # the broker is down: the sweep picks the stored messages up
            log.warning(  # one line, not a traceback per batch while the broker is down
                "could not enqueue %s inbound messages (%s); the sweep will retry",
                len(to_process),
                type(exc).__name__,
            )
    return results


class Acceptor:
    """One writer thread per process that stores webhook messages in batches."""

    def __init__(self, settings: Settings, *, max_batch: int = 256) -> None:
        self.settings = settings
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="yishi-acceptor", daemon=True)
        self._thread.start()

    async def accept(self, msg: IncomingMessage) -> Accepted:
        """Store `msg` (with whatever else is waiting) and return its outcome."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Accepted] = loop.create_future()
        self._queue.put((msg, loop, future))
        return await future

    def _run(self) -> None:
        engine = get_engine(self.settings)
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                with Session(engine) as session:
                    results: list[Any] = accept_many(session=session, msgs=[m for m, _, _ in batch])
            except Exception as exc:  # the requests fail (WeChat retries); nothing half-stored
                first_line = (str(exc).splitlines() or [""])[0][:200]
                log.error(
                    "storing %s webhook messages failed: %s: %s",
                    len(batch),
                    type(exc).__name__,
                    first_line,
                )
                results = [exc] * len(batch)
            for (_, loop, future), result in zip(batch, results, strict=True):
                loop.call_soon_threadsafe(_resolve, future, result)


def _resolve(future: asyncio.Future[Accepted], result: Any) -> None:
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


_acceptors: dict[int, Acceptor] = {}
_lock = threading.Lock()


def get_acceptor(settings: Settings) -> Acceptor:
    """The process's acceptor for `settings` (one writer thread per Settings object)."""
    acceptor = _acceptors.get(id(settings))
    if acceptor is None or acceptor.settings is not settings:
        with _lock:
            acceptor = _acceptors.get(id(settings))
            if acceptor is None or acceptor.settings is not settings:
                acceptor = _acceptors[id(settings)] = Acceptor(settings)
    return acceptor
