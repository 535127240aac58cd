"""The audit log is append-only in the database itself and hash-chained; `yishi audit verify`
finds an entry changed or slipped in behind the application's back."""

from __future__ import annotations

import pytest
import typer
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select
from typer.testing import CliRunner

from yishi.core.config import Settings
from yishi.core.db import get_engine, init_db, session_scope
from yishi.moderation import audit
from yishi.moderation.cli import register
from yishi.moderation.models import ModerationDecision


def _write_log(settings: Settings, n: int = 3) -> list[int]:
    init_db(settings)
    with session_scope(settings) as session:
        entries = [audit.seal(session=session, entry=ModerationDecision(
            actor_id=f"web:mod{i}", action="approve", reason=f"第{i}次", details={"n": i}))
            for i in range(n)]
        session.flush()
        return [e.id or 0 for e in entries]


def _cli() -> typer.Typer:
    app, eval_app = typer.Typer(), typer.Typer()
    register(app, eval_app)
    return app


def test_raw_sql_cannot_change_or_delete_an_entry(any_db_env: Settings) -> None:
    ids = _write_log(any_db_env)
    engine = get_engine(any_db_env)
    for statement in ("UPDATE moderation_decision SET reason = 'changed' WHERE id = :id",
                      "DELETE FROM moderation_decision WHERE id = :id"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement), {"id": ids[0]})
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM moderation_decision")).scalar() == 3


def test_verify_passes_a_clean_log_and_finds_a_forged_entry(any_db_env: Settings) -> None:
    ids = _write_log(any_db_env)
    with session_scope(any_db_env) as session:
        clean = audit.verify(session=session)
    assert clean.ok and clean.checked == 3
    result = CliRunner().invoke(_cli(), ["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "已校验 3 条" in result.output

    with session_scope(any_db_env) as session:  # the newest real hash, so the link looks right
        last_hash = session.get(ModerationDecision, ids[-1]).row_hash  # type: ignore[union-attr]
    with get_engine(any_db_env).begin() as conn:
        conn.execute(text(
            "INSERT INTO moderation_decision (created_at, actor_id, action, reason, details, "
            "prev_hash, row_hash) VALUES (:at, 'web:mod9', 'reject', '伪造', :details, :prev, "
            ":forged)"), {"at": "2026-01-01 00:00:00", "details": "{}", "prev": last_hash,
                          "forged": "0" * 64})
        forged_id = conn.execute(text("SELECT max(id) FROM moderation_decision")).scalar()
    _write_log(any_db_env, n=1)  # the application goes on writing after the forgery
    with session_scope(any_db_env) as session:
        broken = audit.verify(session=session)
    assert (broken.ok, broken.broken_id, broken.reason, broken.checked) == (False, forged_id,
                                                                            "altered", 3)
    result = CliRunner().invoke(_cli(), ["audit", "verify"])
    assert result.exit_code == 1
    assert "第 4 条" in result.output and "内容与其校验值不符" in result.output


def test_the_application_writes_a_chained_log(any_db_env: Settings) -> None:
    """Entries written by the review workflow link one to the next."""
    from yishi.moderation import service as moderation_service

    init_db(any_db_env)
    with session_scope(any_db_env) as session:
        verdict = moderation_service.screen("你就是个傻逼")
        moderation_service.hold(session=session, text="你就是个傻逼", verdict=verdict,
                                sender_id="wechat_mp:o1", source="message")
        moderation_service.hold(session=session, text="傻逼物业", verdict=verdict,
                                sender_id="wechat_mp:o2", source="message")
    with session_scope(any_db_env) as session:
        rows = session.exec(select(ModerationDecision).order_by(col(ModerationDecision.id))).all()
        check = audit.verify(session=session)
    assert len(rows) >= 2 and check.ok and check.checked == len(rows)
    assert rows[1].prev_hash == rows[0].row_hash != ""


def test_concurrent_writers_keep_one_chain(any_db_env: Settings) -> None:
    """Writers in several threads never give two entries the same predecessor."""
    from concurrent.futures import ThreadPoolExecutor

    init_db(any_db_env)

    def write(worker: int) -> None:
        for i in range(8):
            with session_scope(any_db_env) as session:
                session.exec(select(ModerationDecision).limit(1)).all()  # a read comes first
                audit.seal(session=session, entry=ModerationDecision(
                    actor_id=f"web:mod{worker}", action="approve", reason=str(i)))

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(write, range(4)))
    with session_scope(any_db_env) as session:
        check = audit.verify(session=session)
    assert check.ok and check.checked == 32
