"""The `yishi` command: serve, worker, chat, users, and each domain's commands."""

from __future__ import annotations

import importlib
import json
import logging
import sys
from typing import Annotated

import typer

from yishi.core.config import Settings, get_settings
from yishi.core.errors import YishiError
from yishi.core.models import Role

app = typer.Typer(
    name="yishi",
    help="Yishi 议事 — a deliberation assistant for residential communities.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
eval_app = typer.Typer(help="Measure retrieval, moderation and the engine on evaluation sets.")
users_app = typer.Typer(help="Users, roles and API tokens.")
app.add_typer(eval_app, name="eval")
app.add_typer(users_app, name="users")

DOMAIN_CLIS = (
    "yishi.knowledge.cli", "yishi.moderation.cli", "yishi.deliberation.cli", "yishi.privacy.cli",
    "yishi.bot.cli",
)


def _setup_logging() -> None:
    from yishi.privacy import logs as privacy_logs

    privacy_logs.install()
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def fail(message: str, hint: str | None = None, code: int = 1) -> None:
    """Print a friendly error and exit."""
    typer.secho(f"错误：{message}", fg=typer.colors.RED, err=True)
    if hint:
        typer.secho(f"提示：{hint}", err=True)
    raise typer.Exit(code)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    worker: Annotated[bool, typer.Option(help="Run the job worker in this process.")] = True,
    workers: Annotated[
        int,
        typer.Option(
            help="HTTP worker processes (>1 needs --no-worker and a separate `yishi worker`)."
        ),
    ] = 1,
) -> None:
    """Run the web service (WeChat webhooks, API, console, chat simulator)."""
    import uvicorn

    from yishi.core.server import uvicorn_options

    _setup_logging()
    settings = get_settings()
    if workers > 1:
        if worker:
            fail("多进程模式下请加 --no-worker，并另行运行 `yishi worker`")
        uvicorn.run(
            "yishi.cli:_app_without_worker",
            host=host,
            port=port,
            workers=workers,
            factory=True,
            log_level=settings.log_level.lower(),
            **uvicorn_options(settings),
        )
        return
    from yishi.api import create_app

    typer.echo(f"Yishi 议事 on http://{host}:{port}  (chat: /chat, docs: /docs, health: /healthz)")
    typer.echo(
        f"Console for moderators and staff: http://{host}:{port}/console  (sign in with a token "
        "from `yishi users add NAME --role staff`; pages: /console/moderation, /console/issues, "
        "/console/threads, /console/proposals, /console/owners, /console/documents, "
        "/console/users)"
    )
    uvicorn.run(
        create_app(settings, run_worker=worker),
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        **uvicorn_options(settings),
    )


def _app_without_worker():  # type: ignore[no-untyped-def]
    from yishi.api import create_app

    return create_app(run_worker=False)


@app.command()
def worker(
    threads: Annotated[int, typer.Option(help="Worker threads.")] = 0,
) -> None:
    """Run a standalone job worker (several may run at once on PostgreSQL + Redis)."""
    from yishi.api import prepare_process
    from yishi.bot import pipeline
    from yishi.core import jobs
    from yishi.core.db import init_db

    _setup_logging()
    settings = get_settings()
    init_db(settings)
    prepare_process(settings)
    _knowledge_ready(settings)
    huey = jobs.configure(settings, immediate=False)
    jobs.wait_for_broker(settings)  # a wrong Redis URL is named at start, once per try
    pipeline.sweep()
    jobs.run_consumer(huey, workers=threads or settings.worker_threads)


def _knowledge_ready(settings: Settings) -> None:
    """Load the knowledge base (the sample documents on first run) before answering."""
    from yishi.knowledge import service as knowledge_service

    try:
        knowledge_service.ensure_ready(settings)
    except Exception as exc:  # answers then hand over to staff instead of quoting
        typer.secho(f"知识库未就绪：{exc}", fg=typer.colors.YELLOW, err=True)


@app.command()
def chat(
    text: Annotated[str, typer.Argument(help="The message, as a resident would type it.")],
    user: Annotated[str, typer.Option("--user", help="Resident id (as `cli:<id>`).")] = "u1",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """One turn through the same pipeline as a WeChat message; prints the reply."""
    from yishi.bot import pipeline
    from yishi.bot.schemas import IncomingMessage
    from yishi.core import jobs
    from yishi.core.clock import timestamp
    from yishi.core.db import init_db

    settings = get_settings()
    if not text.strip():
        fail("消息不能为空", hint='例如：yishi chat --user u1 "帮助"')
    init_db(settings)
    _knowledge_ready(settings)
    jobs.configure(settings, immediate=True)
    msg = IncomingMessage(
        channel="cli",
        sender=user,
        msg_type="text",
        content=text,
        create_time=int(timestamp() * 1e6),
    )
    turn = pipeline.run_turn(msg=msg, settings=settings)
    if as_json:
        out = turn.model_dump(include={"reply", "intent", "actions", "citations", "engine"})
        out["citations"] = [
            {"source": c.get("source"), "article": c.get("article")} for c in turn.citations
        ]
        typer.echo(json.dumps(out, ensure_ascii=False))
    else:
        typer.echo(turn.reply)


@app.command("init-db")
def init_db_command() -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    from yishi.core.db import init_db

    init_db(get_settings())
    typer.echo("数据库已是最新版本")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Display name.")],
    role: Annotated[
        Role, typer.Option(help="resident | moderator | staff | admin")
    ] = Role.resident,
    external_id: Annotated[
        str | None,
        typer.Option(help="Bind a channel identity, e.g. wechat_mp:<OpenID> or wecom:<UserID>."),
    ] = None,
    token: Annotated[bool, typer.Option(help="Also issue a bearer token.")] = True,
) -> None:
    """Create a user with a role (and print a bearer token for the API)."""
    from yishi.core import auth as auth_service
    from yishi.core.db import init_db, session_scope

    settings = get_settings()
    init_db(settings)
    with session_scope(settings) as session:
        user = auth_service.create(session=session, name=name, role=role, external_id=external_id)
        typer.echo(f"已创建用户 #{user.id} {user.name}（{user.role.value}）")
        if token and user.id is not None:
            plain = auth_service.issue_token(session=session, user_id=user.id)
            typer.echo(f"令牌（只显示一次）：{plain}")


@users_app.command("list")
def users_list() -> None:
    """List users and their roles."""
    from yishi.core import auth as auth_service
    from yishi.core.db import init_db, session_scope

    settings = get_settings()
    init_db(settings)
    with session_scope(settings) as session:
        for u in auth_service.get_all(session=session):
            typer.echo(f"#{u.id}\t{u.role.value}\t{u.name}\t{u.external_id or ''}")


@users_app.command("token")
def users_token(user_id: Annotated[int, typer.Argument(help="User number.")]) -> None:
    """Issue a new bearer token for a user."""
    from yishi.core import auth as auth_service
    from yishi.core.db import init_db, session_scope

    settings = get_settings()
    init_db(settings)
    with session_scope(settings) as session:
        typer.echo(auth_service.issue_token(session=session, user_id=user_id))


@users_app.command("role")
def users_role(
    user_id: Annotated[int, typer.Argument(help="User number.")],
    role: Annotated[Role, typer.Argument(help="resident | moderator | staff | admin")],
) -> None:
    """Change a user's role."""
    from yishi.core import auth as auth_service
    from yishi.core.db import init_db, session_scope

    settings = get_settings()
    init_db(settings)
    with session_scope(settings) as session:
        user = auth_service.set_role(session=session, user_id=user_id, role=role)
        typer.echo(f"#{user.id} {user.name} → {user.role.value}")


def _register_domains() -> None:
    for name in DOMAIN_CLIS:
        importlib.import_module(name).register(app, eval_app)


_register_domains()


def main() -> None:
    """Entry point: run the CLI, turning domain errors into friendly messages."""
    try:
        app()
    except YishiError as exc:
        typer.secho(f"错误：{exc.message}", fg=typer.colors.RED, err=True)
        if exc.hint:
            typer.secho(f"提示：{exc.hint}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
