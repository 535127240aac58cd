"""Storage on SQLite and PostgreSQL: migrations, users and tokens, the dedupe key, the lease."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect
from sqlmodel import SQLModel, select

from yishi.bot import pipeline
from yishi.bot.models import InboundMessage, InboundStatus
from yishi.bot.schemas import Accepted, IncomingMessage
from yishi.core import auth as auth_service
from yishi.core import jobs
from yishi.core.config import Settings
from yishi.core.db import get_engine, import_all_models, session_scope
from yishi.core.errors import Forbidden, Invalid, Unauthorized
from yishi.core.models import Role


def test_migrations_create_every_table_of_every_domain(any_db_env: Settings) -> None:
    import_all_models()
    tables = set(inspect(get_engine(any_db_env)).get_table_names())
    missing = {t.name for t in SQLModel.metadata.sorted_tables} - tables
    assert not missing, f"models without a migration: {missing}"


def test_models_and_migrations_agree(any_db_env: Settings) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import_all_models()
    with get_engine(any_db_env).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == [], f"run the migration generator: {diff[:5]}"


def test_tokens_authenticate_by_role(any_db_env: Settings) -> None:
    with session_scope(any_db_env) as session:
        staff = auth_service.create(
            session=session, name="王主任", role=Role.staff, external_id="wechat_mp:oStaff"
        )
        assert staff.id is not None
        token = auth_service.issue_token(session=session, user_id=staff.id)
        user = auth_service.authenticate(session=session, token=token)
        assert user.role is Role.staff
        with pytest.raises(Unauthorized):
            auth_service.authenticate(session=session, token=token + "x")
        with pytest.raises(Invalid):
            auth_service.create(
                session=session, name="重复", role=Role.resident, external_id="wechat_mp:oStaff"
            )
        actor = auth_service.actor_for(
            session=session, external_id="wechat_mp:oStaff", channel="wechat_mp"
        )
        assert actor.role is Role.staff
        stranger = auth_service.actor_for(
            session=session, external_id="wechat_mp:oNew", channel="wechat_mp"
        )
        assert stranger.role is Role.resident
        with pytest.raises(Forbidden):
            stranger.require(Role.staff)


def _msg(msg_id: str | None = "1001", create_time: int = 1700000000) -> IncomingMessage:
    return IncomingMessage(
        channel="wechat_mp", sender="oRes", content="你好", msg_id=msg_id, create_time=create_time
    )


def test_dedupe_key_holds_in_the_database(any_db_env: Settings) -> None:
    jobs.configure(any_db_env, immediate=False)  # enqueue only; nothing consumes in this test
    with session_scope(any_db_env) as session:
        first = pipeline.accept(session=session, msg=_msg())
        again = pipeline.accept(session=session, msg=_msg())
        event1 = pipeline.accept(
            session=session,
            msg=IncomingMessage(
                channel="wechat_mp",
                sender="oRes",
                msg_type="event",
                event="subscribe",
                create_time=1700000001,
            ),
        )
        event2 = pipeline.accept(
            session=session,
            msg=IncomingMessage(
                channel="wechat_mp",
                sender="oRes",
                msg_type="event",
                event="subscribe",
                create_time=1700000001,
            ),
        )
    assert not first.duplicate and again.duplicate
    assert again.inbound_id == first.inbound_id
    assert not event1.duplicate and event2.duplicate and event2.inbound_id == event1.inbound_id


def test_only_one_worker_can_claim_a_message(any_db_env: Settings) -> None:
    jobs.configure(any_db_env, immediate=False)
    with session_scope(any_db_env) as session:
        accepted = pipeline.accept(session=session, msg=_msg("2002"))
    with session_scope(any_db_env) as s1, session_scope(any_db_env) as s2:
        first = pipeline._claim(s1, accepted.inbound_id)
        second = pipeline._claim(s2, accepted.inbound_id)
    assert first is not None and first.status is InboundStatus.processing
    assert second is None
    with session_scope(any_db_env) as session:
        row = session.get(InboundMessage, accepted.inbound_id)
        assert row is not None and row.attempts == 1


def test_batched_accept_dedupes_within_the_batch_and_against_the_table(
    any_db_env: Settings,
) -> None:
    from yishi.bot.acceptor import accept_many

    jobs.configure(any_db_env, immediate=False)
    with session_scope(any_db_env) as session:
        earlier = pipeline.accept(session=session, msg=_msg("3001"))
        results = accept_many(
            session=session,
            msgs=[_msg("3001"), _msg("3002"), _msg("3003"), _msg("3002")],
        )
    accepted = [r for r in results if isinstance(r, Accepted)]
    assert [r.duplicate for r in accepted] == [True, False, False, True]
    assert accepted[0].inbound_id == earlier.inbound_id
    assert accepted[3].inbound_id == accepted[1].inbound_id
    with session_scope(any_db_env) as session:
        keys = session.exec(select(InboundMessage.dedupe_key)).all()
    assert sorted(keys) == sorted(f"wechat_mp:msg:{n}" for n in ("3001", "3002", "3003"))


def test_concurrent_webhook_requests_share_one_commit(yishi_env: Settings) -> None:
    import asyncio

    from yishi.bot.acceptor import Acceptor
    from yishi.core.db import init_db

    init_db(yishi_env)
    jobs.configure(yishi_env, immediate=False)
    acceptor = Acceptor(yishi_env)

    async def burst() -> list[bool]:
        msgs = [_msg(str(4000 + i)) for i in range(50)] + [_msg("4000")]
        results = await asyncio.gather(*(acceptor.accept(m) for m in msgs))
        return [r.duplicate for r in results]

    duplicates = asyncio.run(burst())
    assert duplicates.count(False) == 50 and duplicates[-1] is True
    with session_scope(yishi_env) as session:
        assert len(session.exec(select(InboundMessage)).all()) == 50
