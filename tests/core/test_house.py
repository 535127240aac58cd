"""House rules a reader can check: every module imports, and only adapters touch the outside."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import yishi

PACKAGE_DIR = Path(yishi.__file__).parent
OUTSIDE = {"redis", "wechatpy", "langchain", "langchain_core", "langchain_openai", "openai"}
# Modules allowed to import an outside client although they are not adapters: none today.
EXCEPTIONS: set[str] = set()


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages([str(PACKAGE_DIR)], prefix="yishi."))


def test_every_module_imports() -> None:
    """A broken module fails here instead of silently removing a feature."""
    names = _modules()
    assert len(names) > 60 and "yishi.bot.pipeline" in names
    for name in names:
        importlib.import_module(name)


def _is_adapter(path: Path) -> bool:
    return path.name == "adapters.py" or "adapters" in path.relative_to(PACKAGE_DIR).parts[:-1]


def _outside_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots = [node.module.split(".")[0]]
        else:
            continue
        found |= OUTSIDE.intersection(roots)
    return found


def test_only_adapters_import_outside_clients() -> None:
    offenders = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        module = ".".join(("yishi", *path.relative_to(PACKAGE_DIR).with_suffix("").parts))
        if _is_adapter(path) or module in EXCEPTIONS:
            continue
        found = _outside_imports(path)
        if found:
            offenders[module] = sorted(found)
    assert offenders == {}


def test_the_checker_sees_a_late_import(tmp_path: Path) -> None:
    """The scan finds an import inside a function too (as the old rate limiter had)."""
    source = tmp_path / "pipeline.py"
    source.write_text("def f():\n    import redis.client\n    from openai import OpenAI\n")
    assert _outside_imports(source) == {"redis", "openai"}


def test_a_missing_optional_dependency_names_its_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from yishi.core import adapters
    from yishi.core.config import Settings
    from yishi.core.errors import Invalid

    monkeypatch.setitem(sys.modules, "redis", None)  # as if redis were not installed
    adapters.check_dependencies(Settings(redis_url=None))
    with pytest.raises(Invalid) as err:
        adapters.check_dependencies(Settings(redis_url="redis://127.0.0.1:6379/11"))
    assert "YISHI_REDIS_URL" in err.value.message and "redis" in (err.value.hint or "")


def test_a_missing_router_or_job_module_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """A feature whose module is gone is an error at start, not a silently missing feature."""
    from yishi import api
    from yishi.core import jobs
    from yishi.core.config import Settings

    monkeypatch.setattr(api, "ROUTERS", (*api.ROUTERS, "yishi.bot.no_such_routes"))
    with pytest.raises(ModuleNotFoundError, match="no_such_routes"):
        api.create_app(Settings(data_dir=tmp_path), run_worker=False, warm_knowledge=False)
    monkeypatch.setattr(jobs, "JOB_MODULES", ("yishi.bot.no_such_jobs",))
    with pytest.raises(ModuleNotFoundError, match="no_such_jobs"):
        jobs._import_job_modules()
