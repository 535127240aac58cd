"""Webhook ack benchmark: safe-mode encrypted text messages against a real uvicorn server.

Starts `yishi.api.create_app()` under uvicorn on 127.0.0.1 (worker not running in the server, so
what is measured is the ack: verify, decrypt, parse, store with its dedupe key, enqueue, answer),
then drives it with an async httpx client at 50 and 200 concurrent senders, each message unique.
Runs on the embedded default (SQLite + SQLite huey) and on PostgreSQL + Redis, and measures the
bare decrypt + parse of the same message in the same run.

    .venv/bin/python bench/bench_webhook.py                  # both backends, 50 and 200
    .venv/bin/python bench/bench_webhook.py --backend embedded --messages 2000

Prints p50 / p99 latency and messages/s (wall clock, client and server on the same machine), and
the server process's CPU time per message against the CPU time of the bare decrypt + parse
(CPU time, so that other load on the machine does not inflate the ratio; the database server's
own CPU is not in it). An "http floor" run first (a server that only answers `success`) shows
what HTTP and the client alone cost here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from yishi.bot.channels.crypto import MessageCrypto, sha1_signature  # noqa: E402
from yishi.bot.channels.wechat_mp import OfficialAccount  # noqa: E402

TOKEN = "bench-token"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
APP_ID = "wxbenchappid0001"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/14"


def make_app():  # type: ignore[no-untyped-def]
    """uvicorn factory: the real app, without the in-process worker or knowledge warm-up."""
    from yishi.api import create_app

    return create_app(run_worker=False, warm_knowledge=False)


def make_floor_app():  # type: ignore[no-untyped-def]
    """uvicorn factory: reads the body and answers `success` (the HTTP + client floor)."""
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/wechat/mp")
    async def receive(request: Request) -> PlainTextResponse:
        await request.body()
        return PlainTextResponse("success")

    return app


def text_xml(i: int, run: str) -> str:
    return (
        "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName>"
        f"<FromUserName><![CDATA[oBench{i % 500}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[3栋2单元楼道灯坏了一周了，麻烦尽快安排维修。]]></Content>"
        f"<MsgId>{run}{i:09d}</MsgId></xml>"
    )


def build_requests(n: int, crypto: MessageCrypto, run: str) -> list[tuple[str, bytes]]:
    """n signed, encrypted callbacks (URL query string and body), built before timing."""
    out = []
    for i in range(n):
        ts = str(int(time.time()))
        nonce = str(100000 + i)
        encrypt = crypto.encrypt(text_xml(i, run).encode())
        msg_signature = sha1_signature(TOKEN, ts, nonce, encrypt)
        query = (
            f"signature={sha1_signature(TOKEN, ts, nonce)}&timestamp={ts}&nonce={nonce}"
            f"&openid=oBench&encrypt_type=aes&msg_signature={msg_signature}"
        )
        body = (
            f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        ).encode()
        out.append((query, body))
    return out


def bare_decrypt_parse_us(requests: Sequence[tuple[str, bytes]], repeat: int = 3) -> float:
    """Microseconds per message for verify + decrypt + safe parse alone (best of `repeat`)."""
    mp = OfficialAccount(
        token=TOKEN,
        crypto=MessageCrypto(token=TOKEN, aes_keys=[AES_KEY], receive_id=APP_ID),
        tolerance=300,
        passive=False,
    )
    queries = [dict(p.split("=", 1) for p in q.split("&")) for q, _ in requests]
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()  # CPU time: what the machine's other load cannot inflate
        for query, (_, body) in zip(queries, requests, strict=True):
            mp.open(query=query, body=body, now=time.time())
        best = min(best, (time.process_time() - start) / len(requests))
    return best * 1e6


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process `pid` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(env: dict[str, str], port: int, factory: str) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", factory,
        "--app-dir", str(ROOT / "bench"), "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning", "--no-access-log",
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("server did not come up in 60 s")


async def drive(
    url: str, requests: Sequence[tuple[str, bytes]], concurrency: int, max_s: float
) -> tuple[list[float], int, float]:
    """Send every request with `concurrency` keep-alive senders; (latencies, errors, seconds).

    The client writes pre-built HTTP/1.1 requests on raw asyncio streams: a general-purpose
    client (httpx) costs more CPU per request than the server being measured, and on a 2-core
    machine shared with the server that would measure the client.
    """
    parsed = urlsplit(url)
    host, port, path = parsed.hostname or "127.0.0.1", parsed.port or 80, parsed.path
    raw = [
        (
            f"POST {path}?{query} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for query, body in requests
    ]
    latencies: list[float] = []
    errors = 0
    kinds: dict[str, int] = {}
    next_index = 0
    start = time.perf_counter()
    deadline = start + max_s

    async def sender() -> None:
        nonlocal next_index, errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while next_index < len(raw) and time.perf_counter() < deadline:
                request = raw[next_index]
                next_index += 1
                t0 = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                answer = await reader.readexactly(length) if length else b""
                latencies.append(time.perf_counter() - t0)
                if status != 200 or answer != b"success":
                    errors += 1
                    kind = f"HTTP {status}"
                    kinds[kind] = kinds.get(kind, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    if kinds:
        print(f"# errors: {kinds}", flush=True)
    return latencies, errors, elapsed


def pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run_backend(
    name: str, env: dict[str, str], args: argparse.Namespace, factory: str | None = None
) -> list[str]:
    port = free_port()
    proc = start_server(env, port, factory or args.app)
    crypto = MessageCrypto(token=TOKEN, aes_keys=[AES_KEY], receive_id=APP_ID)
    url = f"http://127.0.0.1:{port}/wechat/mp"
    lines = []
    try:
        warm = build_requests(200, crypto, "9" + uuid.uuid4().hex[:6].translate(_DIGITS))
        asyncio.run(drive(url, warm, 20, 30))
        for concurrency in args.concurrency:
            run_id = str(concurrency) + uuid.uuid4().hex[:6].translate(_DIGITS)
            reqs = build_requests(args.messages, crypto, run_id)
            bare = bare_decrypt_parse_us(reqs[:1000])
            cpu_before = cpu_seconds(proc.pid)
            lat, errors, elapsed = asyncio.run(drive(url, reqs, concurrency, args.max_seconds))
            cpu_us = (cpu_seconds(proc.pid) - cpu_before) / len(lat) * 1e6
            rate = len(lat) / elapsed
            lines.append(
                f"{name:<15} c={concurrency:<3} n={len(lat):<5} err={errors:<3} "
                f"p50={statistics.median(lat) * 1000:7.1f} ms p99={pct(lat, 99) * 1000:7.1f} ms "
                f"{rate:6.0f} msg/s | server CPU/msg={cpu_us:6.0f} us, "
                f"bare decrypt+parse={bare:4.0f} us, ratio={cpu_us / bare:5.1f}x"
            )
            print(lines[-1], flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    return lines


_DIGITS = str.maketrans("abcdef", "123456")


def base_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YISHI_")}
    env.update(
        YISHI_DATA_DIR=str(data_dir),
        YISHI_WECHAT_TOKEN=TOKEN,
        YISHI_WECHAT_AES_KEY=AES_KEY,
        YISHI_WECHAT_APP_ID=APP_ID,
        YISHI_WECHAT_REPLY_MODE="push",
        YISHI_LOAD_SAMPLE_KNOWLEDGE="false",
        YISHI_LOG_LEVEL="WARNING",
    )
    return env


def main() -> None:
    """Run the benchmark and print one line per backend and concurrency."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["embedded", "pg", "both"], default="both")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--messages", type=int, default=3000, help="per run (bounded count)")
    parser.add_argument("--app", default="bench_webhook:make_app",
                        help="uvicorn factory (module:function on the path or in bench/)")
    parser.add_argument("--no-floor", dest="floor", action="store_false",
                        help="skip the HTTP floor (a server that only answers `success`)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="per run (bounded time)")
    args = parser.parse_args()

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# {os.cpu_count()} CPUs shared by client and server; load average {load}; "
          "worker not running")
    lines: list[str] = []
    if args.floor:
        data_dir = Path(tempfile.mkdtemp(prefix="yishi-bench-"))
        try:
            lines += run_backend("http floor", base_env(data_dir), args,
                                 "bench_webhook:make_floor_app")
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
    if args.backend in ("embedded", "both"):
        data_dir = Path(tempfile.mkdtemp(prefix="yishi-bench-"))
        try:
            lines += run_backend("sqlite", base_env(data_dir), args)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
    if args.backend in ("pg", "both"):
        import redis
        from sqlalchemy import create_engine, text

        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        rds = redis.Redis.from_url(REDIS_URL)
        rds.flushdb()
        data_dir = Path(tempfile.mkdtemp(prefix="yishi-bench-"))
        env = base_env(data_dir)
        env["YISHI_DATABASE_URL"] = f"{PG_URL}?options=-csearch_path%3D{schema}"
        env["YISHI_REDIS_URL"] = REDIS_URL
        try:
            lines += run_backend("postgres+redis", env, args)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
            rds.flushdb()
            shutil.rmtree(data_dir, ignore_errors=True)
    print("\n".join(["# summary", *lines]))


if __name__ == "__main__":
    main()
