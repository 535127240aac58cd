"""`yishi privacy ...` (erase, export, figures, retention) and the account commands
`yishi users deactivate / activate / tokens / revoke-token`."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from yishi.core.config import get_settings


def _session():  # type: ignore[no-untyped-def]
    from yishi.core.db import init_db, session_scope

    settings = get_settings()
    init_db(settings)
    return session_scope(settings)


def _fmt(value: datetime | None) -> str:
    from yishi.core.clock import local_time

    return local_time(value, "%Y-%m-%d %H:%M") if value is not None else "—"


USER_HELP = "The resident: wechat_mp:<OpenID>, wecom:<UserID> or web:<id>."


def register(app: typer.Typer, eval_app: typer.Typer) -> None:
    """Add the privacy group and the account commands to the `yishi` command."""
    privacy_app = typer.Typer(help="Residents' personal data: export, erase, retention.")
    app.add_typer(privacy_app, name="privacy")

    @privacy_app.command("export")
    def export(
        user: Annotated[str, typer.Option("--user", help=USER_HELP)],
        out: Annotated[Path | None, typer.Option(help="Write the JSON to this file.")] = None,
    ) -> None:
        """Everything held about one resident, as JSON."""
        from yishi.privacy import service as privacy_service

        with _session() as session:
            data = privacy_service.export(session=session, user_id=user, actor="cli")
        text = json.dumps(data, ensure_ascii=False, indent=2)
        if out is None:
            typer.echo(text)
        else:
            out.write_text(text, encoding="utf-8")
            typer.echo(f"已导出到 {out}")

    @privacy_app.command("erase")
    def erase(
        user: Annotated[str, typer.Option("--user", help=USER_HELP)],
        yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    ) -> None:
        """Erase one resident's personal data (issues they reported stay, redacted)."""
        from yishi.core import jobs
        from yishi.privacy import service as privacy_service

        settings = get_settings()
        with _session() as session:
            held = privacy_service.holdings(session=session, user_id=user)
        typer.echo(f"将删除：{held.summary()}")
        if not yes and not typer.confirm("删除后无法恢复，确定吗？"):
            raise typer.Exit(1)
        jobs.configure(settings, immediate=False)  # to reach the job queue's pending payloads
        with _session() as session:
            done = privacy_service.erase(session=session, user_id=user, actor="cli",
                                         settings=settings)
        typer.echo(f"已删除：{done.summary()}；队列中的任务 {done.counts.get('queued_jobs', 0)} 个")

    @privacy_app.command("figures")
    def figures() -> None:
        """What personal data is held and how old."""
        from yishi.privacy import service as privacy_service

        with _session() as session:
            typer.echo(json.dumps(privacy_service.figures(session=session), ensure_ascii=False,
                                  indent=2))

    @privacy_app.command("retention")
    def retention() -> None:
        """Apply the retention period now (the worker does it every hour)."""
        from yishi.privacy import service as privacy_service

        settings = get_settings()
        with _session() as session:
            counts = privacy_service.retention_sweep(session=session, settings=settings)
        privacy_service.compact_storage(settings, vacuum=True)
        typer.echo(json.dumps(counts, ensure_ascii=False))

    users_app = next(g.typer_instance for g in app.registered_groups if g.name == "users")
    assert users_app is not None

    @users_app.command("deactivate")
    def deactivate(user_id: Annotated[int, typer.Argument(help="User number.")]) -> None:
        """Deactivate a user: their tokens and console sessions stop working at once."""
        from yishi.core import auth as auth_service

        with _session() as session:
            user = auth_service.deactivate(session=session, user_id=user_id)
            typer.echo(f"已停用 #{user.id} {user.name}，其令牌和管理台登录已全部失效")

    @users_app.command("activate")
    def activate(user_id: Annotated[int, typer.Argument(help="User number.")]) -> None:
        """Re-enable a user (issue a new token afterwards)."""
        from yishi.core import auth as auth_service

        with _session() as session:
            user = auth_service.activate(session=session, user_id=user_id)
            typer.echo(f"已启用 #{user.id} {user.name}；"
                       f"请用 `yishi users token {user.id}` 签发新令牌")

    @users_app.command("tokens")
    def tokens(user_id: Annotated[int, typer.Argument(help="User number.")]) -> None:
        """A user's tokens: number, label, created, expires, last used, revoked."""
        from yishi.core import auth as auth_service

        with _session() as session:
            for t in auth_service.get_tokens(session=session, user_id=user_id):
                state = "已吊销" if t.revoked else "有效"
                typer.echo(f"#{t.id}\t{state}\t{t.label or '—'}\t签发 {_fmt(t.created_at)}\t"
                           f"到期 {_fmt(t.expires_at)}\t最近使用 {_fmt(t.last_used_at)}")

    @users_app.command("revoke-token")
    def revoke_token(
        token_id: Annotated[int | None, typer.Argument(help="Token number (see `tokens`).")] = None,
        token: Annotated[str | None, typer.Option(help="Or the plain token itself.")] = None,
        all_of: Annotated[int | None, typer.Option("--all-of", help="Revoke every token of "
                                                   "this user number.")] = None,
    ) -> None:
        """Revoke a token (by number or value) or all of a user's tokens; effective at once."""
        from yishi.core import auth as auth_service
        from yishi.core.errors import Invalid

        with _session() as session:
            if all_of is not None:
                n = auth_service.revoke_all_tokens(session=session, user_id=all_of)
                typer.echo(f"已吊销 {n} 个令牌")
                return
            if token_id is None and not token:
                raise Invalid("请给出令牌编号或 --token",
                              hint="用 `yishi users tokens ID` 查看编号")
            row = auth_service.revoke_token(session=session, token_id=token_id, token=token)
            typer.echo(f"已吊销令牌 #{row.id}")
