"""Fault drills on the production stack: `yishi serve` + two `yishi worker` processes on
PostgreSQL + Redis, against the local fake WeChat API (tests/fakes/wechat_server.py).

    .venv/bin/python bench/drill.py                 # full form: 300 messages, 5-minute outage
    .venv/bin/python bench/drill.py --short         # CI form: 40 messages, 20-second outage
    .venv/bin/python bench/drill.py --outage 60 --only c

Scenarios: (a) a worker SIGKILLed mid-run, (b) the API server SIGKILLed and restarted, (c) a
WeChat API outage, (d) a poison message in a batch, (e) a flood from one resident, (s) slow
clients (slowloris: headers and bodies that never finish). Every message is posted as WeChat
does — signed, retried up to three times 5 s apart until answered — and each is posted twice.

For each scenario it prints messages acked / answered / duplicated / lost, where "answered"
means the message reached its final state and every reply it produced was accepted by the fake
API, "duplicated" counts sends beyond one per reply part, and "lost" counts acked messages not
answered when the scenario ends. Loopback only; every loop is bounded. Exit status 1 when any
scenario lost or duplicated a message.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.wechat_server import (  # noqa: E402
    CUSTOM_SEND,
    CallbackSigner,
    FakeWeChatServer,
    Recorded,
    text_xml,
)
from yishi.bot.text import split_for_wechat  # noqa: E402

PG_ADMIN_URL = os.environ.get(
    "YISHI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("YISHI_DRILL_REDIS_URL", "redis://127.0.0.1:6379/7")
TOKEN = "drilltoken"


# ---------------------------------------------------------------- the fake API, with an outage


@dataclass
class DrillWeChat(FakeWeChatServer):
    """The fake WeChat API that can be taken down (every call answers HTTP 503) and that
    records when each send was accepted."""

    down: bool = False
    accepted_at: list[tuple[float, str]] = field(default_factory=list)

    def _respond(
        self, endpoint: str, query: dict[str, str], body: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any]]:
        if self.down:
            with self._lock:
                self.requests.append(Recorded(endpoint + ":down", query, body))
            return 503, {"errcode": -1, "errmsg": "system busy"}
        status, payload = super()._respond(endpoint, query, body)
        if endpoint == CUSTOM_SEND and payload.get("errcode") == 0 and body:
            with self._lock:
                self.accepted_at.append((time.monotonic(), str(body.get("touser"))))
        return status, payload


# ---------------------------------------------------------------- the stack


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Stack:
    """One API process and two worker processes on a fresh PostgreSQL schema and Redis db."""

    def __init__(self, *, wx: DrillWeChat, workdir: Path, lease_s: float) -> None:
        self.wx = wx
        self.workdir = workdir
        self.schema = f"drill_{uuid.uuid4().hex[:10]}"
        self.admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
        sep = "&" if "?" in PG_ADMIN_URL else "?"
        self.db_url = f"{PG_ADMIN_URL}{sep}options=-csearch_path%3D{self.schema}"
        self.db: Engine = create_engine(self.db_url)
        redis.Redis.from_url(REDIS_URL).flushdb()
        self.port = _free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("YISHI_")}
        self.env.update(
            {
                "YISHI_DATA_DIR": str(workdir / "var"),
                "YISHI_ENVIRONMENT": "test",
                "YISHI_DATABASE_URL": self.db_url,
                "YISHI_REDIS_URL": REDIS_URL,
                "YISHI_WECHAT_TOKEN": TOKEN,
                "YISHI_WECHAT_APP_ID": wx.app_id,
                "YISHI_WECHAT_APP_SECRET": wx.app_secret,
                "YISHI_WECHAT_API_BASE_URL": wx.base_url,
                "YISHI_LOAD_SAMPLE_KNOWLEDGE": "false",
                "YISHI_INBOUND_LEASE_S": str(lease_s),
                "YISHI_HTTP_HEADER_TIMEOUT_S": "5",
                "YISHI_REQUEST_BODY_TIMEOUT_S": "5",
                "YISHI_LOG_LEVEL": "WARNING",
            }
        )
        self.api: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self._logs: list[Any] = []
        subprocess.run(
            [sys.executable, "-m", "yishi.cli", "init-db"], env=self.env, check=True,
            capture_output=True, timeout=300,
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 (closed in stop())
        self._logs.append(log)
        return subprocess.Popen(
            [sys.executable, "-m", "yishi.cli", *args], env=self.env, stdout=log, stderr=log
        )

    def start_api(self) -> None:
        self.api = self._spawn("api", "serve", "--no-worker", "--port", str(self.port))
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("the API did not become healthy; see api.log")

    def start_worker(self) -> None:
        self.workers.append(self._spawn(f"worker{len(self.workers)}", "worker", "--threads", "2"))

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self) -> None:
        procs = [p for p in [self.api, *self.workers] if p is not None and p.poll() is None]
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in self._logs:
            log.close()
        self.db.dispose()
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{self.schema}" CASCADE'))
        self.admin.dispose()
        redis.Redis.from_url(REDIS_URL).flushdb()


# ---------------------------------------------------------------- WeChat's side


@dataclass
class Sent:
    msg_id: str
    sender: str
    acked: bool = False
    refused: bool = False


class Resident:
    """Posts messages as WeChat does: signed, up to three tries 5 s apart, each sent twice."""

    def __init__(self, stack: Stack, *, tries: int = 3, retry_s: float = 5.0) -> None:
        self.stack = stack
        self.signer = CallbackSigner(token=TOKEN)
        self.tries = tries
        self.retry_s = retry_s
        self.http = httpx.Client(timeout=10)

    def post(self, sent: Sent, content: str = "你好") -> Sent:
        xml = text_xml(sender=sent.sender, content=content, msg_id=sent.msg_id,
                       create_time=int(time.time()))
        for copy in range(2):  # WeChat's retry reaches us too: one reply for both
            for _ in range(self.tries):
                query = self.signer.plain_query(int(time.time()))
                try:
                    answer = self.http.post(self.stack.base + "/wechat/mp", params=query,
                                            content=xml.encode())
                except httpx.HTTPError:
                    time.sleep(self.retry_s)
                    continue
                if answer.status_code == 200 and answer.text == "success":
                    sent.acked = True
                    break
                if 400 <= answer.status_code < 500:
                    sent.refused = copy == 0 or sent.refused
                    break
                time.sleep(self.retry_s)
        return sent

    def post_all(self, batch: list[Sent], *, threads: int = 16,
                 content: Callable[[Sent], str] = lambda s: "你好") -> list[Sent]:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(lambda s: self.post(s, content(s)), batch))


# ---------------------------------------------------------------- counting


@dataclass
class Figures:
    scenario: str
    acked: int = 0
    answered: int = 0
    duplicated: int = 0
    lost: int = 0
    refused: int = 0
    notes: dict[str, Any] = field(default_factory=dict)


def _state(stack: Stack, batch: list[Sent]) -> tuple[int, int, dict[str, Any]]:
    """(answered, duplicated, notes) for the acked messages of `batch`."""
    acked = [s for s in batch if s.acked]
    keys = [f"wechat_mp:msg:{s.msg_id}" for s in acked]
    users = {f"wechat_mp:{s.sender}" for s in acked}
    with stack.db.connect() as conn:
        inbound = {
            row.dedupe_key: (row.id, row.status)
            for row in conn.execute(
                text("SELECT id, dedupe_key, status FROM inboundmessage "
                     "WHERE dedupe_key = ANY(:keys)"),
                {"keys": keys},
            )
        }
        outbound = list(
            conn.execute(
                text("SELECT inbound_id, user_id, status, text, last_error FROM outboundmessage "
                     "WHERE user_id = ANY(:users)"),
                {"users": list(users)},
            )
        )
    accepted = {(b["touser"], b["text"]["content"]) for b in stack.wx.sent(CUSTOM_SEND)}

    def delivered(row: Any) -> bool:
        """Sent — or cut off mid-call and listed for staff, yet accepted by the API."""
        if row.status == "sent":
            return True
        user = row.user_id.split(":", 1)[1]
        return _uncertain(row) and all(
            (user, part) in accepted for part in split_for_wechat(row.text)
        )

    by_inbound: dict[int, list[Any]] = {}
    for row in outbound:
        by_inbound.setdefault(row.inbound_id, []).append(row)
    answered = 0
    for key in keys:
        found = inbound.get(key)
        if found is None or found[1] not in ("replied", "held"):
            continue
        if all(delivered(o) for o in by_inbound.get(found[0], [])):
            answered += 1
    expected: Counter[str] = Counter()
    for row in outbound:
        if delivered(row):
            expected[row.user_id.split(":", 1)[1]] += len(split_for_wechat(row.text))
    got = Counter(body["touser"] for body in stack.wx.sent(CUSTOM_SEND))
    duplicated = sum(
        max(0, got[user] - expected[user]) for user in got if f"wechat_mp:{user}" in users
    )
    notes = {
        "uncertain_listed_for_staff": sum(1 for o in outbound if _uncertain(o)),
        "failed_outbound": sum(1 for o in outbound if o.status == "failed"),
    }
    return answered, duplicated, notes


def _uncertain(row: Any) -> bool:
    return bool(row.status == "failed" and (row.last_error or "").startswith("发送结果未知"))


def _settle(stack: Stack, batch: list[Sent], *, timeout_s: float) -> Figures:
    """Wait (bounded) until every acked message is answered; then count."""
    deadline = time.monotonic() + timeout_s
    acked = sum(1 for s in batch if s.acked)
    answered, duplicated, notes = _state(stack, batch)
    while answered < acked and time.monotonic() < deadline:
        time.sleep(1.0)
        answered, duplicated, notes = _state(stack, batch)
    time.sleep(2.0)  # let a late duplicate show itself
    answered, duplicated, notes = _state(stack, batch)
    return Figures(
        scenario="",
        acked=acked,
        answered=answered,
        duplicated=duplicated,
        lost=acked - answered,
        refused=sum(1 for s in batch if s.refused),
        notes=notes,
    )


def _batch(tag: str, count: int, *, one_sender: bool = False) -> list[Sent]:
    return [
        Sent(msg_id=f"{ord(tag[0])}{n:05d}",
             sender=f"oDrill{tag}" if one_sender else f"oDrill{tag}{n}")
        for n in range(count)
    ]


# ---------------------------------------------------------------- scenarios


def worker_killed(stack: Stack, resident: Resident, *, messages: int, settle_s: float) -> Figures:
    """(a) SIGKILL one of the two workers while the batch is being answered; start another."""
    batch = _batch("a", messages)
    poster = threading.Thread(target=resident.post_all, args=(batch,))
    poster.start()
    deadline = time.monotonic() + 120
    while len(stack.wx.sent(CUSTOM_SEND)) < messages // 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    stack.kill(stack.workers[0])
    stack.start_worker()  # a supervisor would restart it
    poster.join()
    figures = _settle(stack, batch, timeout_s=settle_s)
    figures.scenario = "a: worker SIGKILLed"
    return figures


def api_killed(stack: Stack, resident: Resident, *, messages: int, settle_s: float) -> Figures:
    """(b) SIGKILL the API server mid-stream and restart it; WeChat retries what got no answer."""
    batch = _batch("b", messages)
    poster = threading.Thread(target=resident.post_all, args=(batch,), kwargs={"threads": 8})
    poster.start()
    deadline = time.monotonic() + 120
    while sum(1 for s in batch if s.acked) < messages // 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stack.api is not None
    stack.kill(stack.api)
    time.sleep(1.0)
    stack.start_api()
    poster.join()
    figures = _settle(stack, batch, timeout_s=settle_s)
    figures.scenario = "b: API SIGKILLed, restarted"
    return figures


def api_outage(stack: Stack, resident: Resident, *, messages: int, outage_s: float) -> Figures:
    """(c) The WeChat API answers 503 for `outage_s`; replies wait and drain when it returns."""
    batch = _batch("c", messages)
    stack.wx.down = True
    started = time.monotonic()
    resident.post_all(batch)
    time.sleep(max(0.0, outage_s - (time.monotonic() - started)))
    down_calls = len(stack.wx.calls(CUSTOM_SEND + ":down"))
    stack.wx.down = False
    returned = time.monotonic()
    figures = _settle(stack, batch, timeout_s=180)
    users = {s.sender for s in batch}
    times = [t for t, user in stack.wx.accepted_at if user in users and t >= returned]
    figures.scenario = f"c: WeChat API outage {outage_s:g} s"
    figures.notes.update(
        {
            "send_attempts_during_outage": down_calls,
            "last_reply_after_return_s": round(max(times) - returned, 1) if times else None,
            "first_reply_after_return_s": round(min(times) - returned, 1) if times else None,
        }
    )
    return figures


def poison_in_batch(stack: Stack, resident: Resident, *, messages: int) -> Figures:
    """(d) One validly signed message with an oversized field among concurrent good ones."""
    batch = _batch("d", messages)
    batch[messages // 2].sender = "o" * 300
    resident.post_all(batch, threads=32)
    figures = _settle(stack, batch, timeout_s=120)
    figures.scenario = "d: poison message in a batch"
    figures.notes["poison_answered_4xx"] = batch[messages // 2].refused
    return figures


def flood(stack: Stack, resident: Resident, *, messages: int) -> Figures:
    """(e) One resident sends `messages` messages at once (the limit is 15 a minute)."""
    batch = _batch("e", messages, one_sender=True)
    resident.post_all(batch, threads=8, content=lambda s: f"第{s.msg_id[-3:]}条")
    figures = _settle(stack, batch, timeout_s=120)
    figures.scenario = f"e: flood of {messages} from one resident"
    with stack.db.connect() as conn:
        rows = conn.execute(
            text("SELECT moderation_action, count(*) AS n FROM inboundmessage "
                 "WHERE user_id = :user GROUP BY moderation_action"),
            {"user": f"wechat_mp:{batch[0].sender}"},
        )
        actions = {str(r.moderation_action): int(r.n) for r in rows}
        notices = conn.execute(
            text("SELECT count(*) FROM outboundmessage WHERE user_id = :user AND text LIKE :t"),
            {"user": f"wechat_mp:{batch[0].sender}", "t": "您发送消息太频繁%"},
        ).scalar()
    figures.notes.update({"moderation_actions": actions, "slow_down_notices": notices,
                          "pushes": len([b for b in stack.wx.sent(CUSTOM_SEND)
                                         if b["touser"] == batch[0].sender])})
    return figures


def slowloris(stack: Stack, *, connections: int) -> Figures:
    """(s) Connections that never finish their headers or bodies, while others are served."""
    hanging: list[socket.socket] = []
    query = CallbackSigner(token=TOKEN).plain_query(int(time.time()))
    path = "/wechat/mp?" + "&".join(f"{k}={v}" for k, v in query.items())
    for n in range(connections):
        sock = socket.create_connection(("127.0.0.1", stack.port), timeout=10)
        if n % 2:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        else:
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n<xml>"
                         .encode())
        hanging.append(sock)
    latencies = []
    with httpx.Client(timeout=10) as http:
        for _ in range(20):
            t0 = time.perf_counter()
            http.get(stack.base + "/healthz")
            latencies.append((time.perf_counter() - t0) * 1000)
    time.sleep(5 + 3)  # header and body deadlines (5 s in the drill) plus slack
    closed = 0
    for sock in hanging:
        sock.settimeout(0.5)
        with contextlib.suppress(TimeoutError, OSError):
            closed += sock.recv(4096) is not None  # b"" (closed) or an answer (408)
        sock.close()
    return Figures(
        scenario=f"s: slowloris, {connections} connections",
        notes={
            "closed_by_server_within_8_s": closed,
            "still_held": connections - closed,
            "healthz_p50_ms_while_held": round(statistics.median(latencies), 1),
        },
    )


# ---------------------------------------------------------------- main


def run(args: argparse.Namespace) -> list[Figures]:
    results: list[Figures] = []
    only = set(args.only.split(",")) if args.only else set("abcdes")
    with DrillWeChat() as wx, tempfile.TemporaryDirectory(prefix="yishi-drill-") as tmp:
        stack = Stack(wx=wx, workdir=Path(tmp), lease_s=args.lease)
        try:
            stack.start_worker()
            stack.start_worker()
            stack.start_api()
            resident = Resident(stack)
            settle = args.lease + 120
            steps: list[tuple[str, Callable[[], Figures]]] = [
                ("d", lambda: poison_in_batch(stack, resident, messages=min(args.messages, 100))),
                ("e", lambda: flood(stack, resident, messages=50)),
                ("a", lambda: worker_killed(stack, resident, messages=args.messages,
                                            settle_s=settle)),
                ("b", lambda: api_killed(stack, resident, messages=args.messages,
                                         settle_s=settle)),
                ("c", lambda: api_outage(stack, resident, messages=min(args.messages, 100),
                                         outage_s=args.outage)),
                ("s", lambda: slowloris(stack, connections=args.slow_connections)),
            ]
            for key, step in steps:
                if key in only:
                    t0 = time.monotonic()
                    figures = step()
                    figures.notes["wall_s"] = round(time.monotonic() - t0, 1)
                    results.append(figures)
                    _print(figures, as_json=args.json)
        finally:
            stack.stop()
    return results


def _print(f: Figures, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(asdict(f), ensure_ascii=False), flush=True)
        return
    print(f"{f.scenario:<36} acked {f.acked:>4}  answered {f.answered:>4}  "
          f"duplicated {f.duplicated}  lost {f.lost}  refused {f.refused}  {f.notes}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true",
                        help="the CI form: 40 messages, a 20 s outage, a 15 s lease")
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--outage", type=float, default=300.0, help="outage length, seconds")
    parser.add_argument("--lease", type=float, default=60.0, help="YISHI_INBOUND_LEASE_S")
    parser.add_argument("--slow-connections", type=int, default=300)
    parser.add_argument("--only", default="", help="scenarios to run, e.g. a,c")
    parser.add_argument("--json", action="store_true", help="one JSON object per scenario")
    args = parser.parse_args(argv)
    if args.short:
        args.messages, args.outage, args.lease = 40, 20.0, 15.0
        args.slow_connections = 100
    results = run(args)
    return 1 if any(f.lost or f.duplicated for f in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
