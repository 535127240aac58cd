"""The staff commands: `yishi issues|responsibility|threads|proposals ...` on a migrated SQLite."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from yishi.core.auth import Actor
from yishi.core.db import dispose_engines, session_scope
from yishi.deliberation import issues
from yishi.deliberation.cli import register


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app, typer.Typer())
    return app


def test_staff_commands_end_to_end() -> None:
    app, run = _app(), CliRunner()
    try:
        r = run.invoke(app, ["threads", "create", "停车收费", "地面车位怎么收费？",
                             "--statement", "按月收费"])
        assert r.exit_code == 0, r.output
        assert "#1" in run.invoke(app, ["threads", "list"]).output
        summary = run.invoke(app, ["threads", "summary", "--topic", "总结一下停车收费的讨论",
                                   "--json"])
        assert summary.exit_code == 0, summary.output
        assert json.loads(summary.output)["title"] == "停车收费"

        r = run.invoke(app, ["responsibility", "set", "noise", "街道/城管", "12"])
        assert r.exit_code == 0, r.output
        assert "街道/城管" in run.invoke(app, ["responsibility", "list"]).output

        with session_scope() as session:
            issue = issues.record_issue(session=session, actor=Actor(user_id="cli:u1"),
                                        text="7栋半夜施工太吵扰民").issue
            issue_id = issue.id
        board = run.invoke(app, ["issues", "list", "--party", "街道/城管", "--json"])
        assert [i["id"] for i in json.loads(board.output)] == [issue_id]
        r = run.invoke(app, ["issues", "status", str(issue_id), "rejected"])
        assert r.exit_code != 0  # a rejection needs a reason
        r = run.invoke(app, ["issues", "status", str(issue_id), "in_progress"])
        assert r.exit_code == 0 and "in_progress" in r.output
    finally:
        dispose_engines()
