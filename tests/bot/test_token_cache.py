"""access_token cache: one fetch shared by threads and processes, refresh ahead and on 40001."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy.engine import Engine

from tests.fakes.wechat_server import TOKEN, FakeWeChatServer
from yishi.bot.adapters import WeChatApiError, token_fetcher
from yishi.bot.token_cache import (
    AccessTokens,
    DbTokenStore,
    RedisTokenStore,
    TokenCache,
    TokenStore,
)
from yishi.core.clock import set_clock
from yishi.core.db import create_all, make_engine

REDIS_URL = "redis://127.0.0.1:6379/0"
ROOT = Path(__file__).resolve().parents[2]


def _redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL).ping())
    except Exception:
        return False


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                        pytest.param("redis", marks=pytest.mark.redis)])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """How to reach a store: {"kind": ..., "url": ..., "prefix": ...} (rebuilt in subprocesses)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cache.db'}"
        engine = make_engine(url)
        create_all(engine)
        engine.dispose()
        yield {"kind": "db", "url": url}
    elif request.param == "postgres":
        request.getfixturevalue("pg_clean_engine")  # the session's schema, emptied
        yield {"kind": "db", "url": request.getfixturevalue("pg_schema_url")}
    else:
        if not _redis_up():
            pytest.skip("Redis at 127.0.0.1:6379 is not reachable")
        prefix = f"yishi:test:{uuid.uuid4().hex[:8]}:"
        yield {"kind": "redis", "url": REDIS_URL, "prefix": prefix}
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(prefix + "*"):
            client.delete(key)


_engines: list[Engine] = []


def build_store(spec: dict[str, str]) -> TokenStore:
    if spec["kind"] == "db":
        engine = make_engine(spec["url"])
        _engines.append(engine)
        return DbTokenStore(engine)
    return RedisTokenStore(redis.Redis.from_url(spec["url"]), prefix=spec["prefix"])


@pytest.fixture(autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    set_clock(None)
    while _engines:
        _engines.pop().dispose()


def mp_tokens(cache: TokenCache, wx: FakeWeChatServer) -> AccessTokens:
    fetch = token_fetcher(
        httpx.Client(), wx.base_url + "token",
        {"grant_type": "client_credential", "appid": wx.app_id, "secret": wx.app_secret},
    )
    return AccessTokens(cache, f"wechat_mp:{wx.app_id}", fetch)


def test_fetched_once_then_cached(store_spec: dict[str, str], wx: FakeWeChatServer) -> None:
    tokens = mp_tokens(TokenCache(build_store(store_spec)), wx)
    first = tokens.get()
    assert first.startswith("ACCESS_mp_")
    assert tokens.get() == first
    # another cache object (another process, in effect) sees the same token
    assert mp_tokens(TokenCache(build_store(store_spec)), wx).get() == first
    assert len(wx.calls(TOKEN)) == 1


def test_refreshed_before_expiry(store_spec: dict[str, str], wx: FakeWeChatServer) -> None:
    start = time.time()
    set_clock(lambda: start)
    tokens = mp_tokens(TokenCache(build_store(store_spec), refresh_margin=300), wx)
    first = tokens.get()
    set_clock(lambda: start + 7200 - 301)  # still outside the margin
    assert tokens.get() == first
    set_clock(lambda: start + 7200 - 299)  # inside the margin: refresh ahead of expiry
    second = tokens.get()
    assert second != first
    assert len(wx.calls(TOKEN)) == 2


def test_invalidate_only_drops_the_named_token(
    store_spec: dict[str, str], wx: FakeWeChatServer
) -> None:
    tokens = mp_tokens(TokenCache(build_store(store_spec)), wx)
    first = tokens.get()
    tokens.invalidate("some-older-token")  # a late 40001 for a token already replaced
    assert tokens.get() == first
    tokens.invalidate(first)
    assert tokens.get() != first
    assert len(wx.calls(TOKEN)) == 2


def test_concurrent_threads_fetch_once(store_spec: dict[str, str], wx: FakeWeChatServer) -> None:
    wx.token_delay_s = 0.3
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(mp_tokens(TokenCache(build_store(store_spec)), wx).get())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 1 and len(results) == 8
    assert len(wx.calls(TOKEN)) == 1


_CHILD = textwrap.dedent(
    """
    import json, sys, httpx, redis
    from yishi.bot.adapters import token_fetcher
    from yishi.bot.token_cache import AccessTokens, DbTokenStore, RedisTokenStore, TokenCache
    from yishi.core.db import make_engine
    spec, base, appid, secret = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    if spec["kind"] == "db":
        store = DbTokenStore(make_engine(spec["url"]))
    else:
        store = RedisTokenStore(redis.Redis.from_url(spec["url"]), prefix=spec["prefix"])
    fetch = token_fetcher(httpx.Client(), base + "token",
                          {"grant_type": "client_credential", "appid": appid, "secret": secret})
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    print(AccessTokens(TokenCache(store), "wechat_mp:" + appid, fetch).get())
    """
)


def test_several_processes_refresh_once(store_spec: dict[str, str], wx: FakeWeChatServer) -> None:
    wx.token_delay_s = 0.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, json.dumps(store_spec), wx.base_url, wx.app_id,
             wx.app_secret],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=ROOT,
        )
        for _ in range(3)
    ]
    for p in procs:  # every child has imported everything: the race starts on the newline
        assert p.stdout is not None and p.stdin is not None
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("\n")
        p.stdin.flush()
    outputs = [p.communicate(timeout=60) for p in procs]
    tokens = {out.strip() for out, _ in outputs}
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    assert len(tokens) == 1
    assert len(wx.calls(TOKEN)) == 1


def test_crashed_refresher_does_not_block_forever(
    store_spec: dict[str, str], wx: FakeWeChatServer
) -> None:
    store = build_store(store_spec)
    assert store.try_lease("wechat_mp:" + wx.app_id, "dead-process", 0.3)  # never released
    tokens = mp_tokens(TokenCache(store, lease_s=0.3, wait_s=1.0), wx)
    start = time.time()
    set_clock(lambda: start + (time.time() - start))
    assert tokens.get().startswith("ACCESS_mp_")
    assert len(wx.calls(TOKEN)) == 1


def test_fetch_errors_surface_and_release_the_lease(
    store_spec: dict[str, str], wx: FakeWeChatServer
) -> None:
    tokens = mp_tokens(TokenCache(build_store(store_spec)), wx)
    wx.script(TOKEN, ("http", 502), -1)
    with pytest.raises(WeChatApiError) as first:
        tokens.get()
    assert first.value.errcode == 502 and first.value.retryable
    with pytest.raises(WeChatApiError) as second:
        tokens.get()
    assert second.value.errcode == -1 and second.value.retryable
    assert tokens.get().startswith("ACCESS_mp_")  # the lease was given back each time
    assert len(wx.calls(TOKEN)) == 3


def test_wrong_secret_is_not_cached(tmp_path: Path, wx: FakeWeChatServer) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    create_all(engine)
    _engines.append(engine)
    fetch = token_fetcher(httpx.Client(), wx.base_url + "token",
                          {"grant_type": "client_credential", "appid": wx.app_id,
                           "secret": "wrong"})
    tokens = AccessTokens(TokenCache(DbTokenStore(engine)), "k", fetch)
    with pytest.raises(WeChatApiError) as exc:
        tokens.get()
    assert exc.value.errcode == 40125
    assert DbTokenStore(engine).read("k") is None
