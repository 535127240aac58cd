"""Engine benchmark: offline accuracy on the scenario set, offline turn latency (each turn embeds
its message: the memo is cleared every pass), and the
agent's per-turn overhead over the bare LLM call against the local scripted server.

Run: .venv/bin/python bench/bench_engine.py [--rounds 5] [--agent-turns 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


def bench_offline(rounds: int) -> None:
    """Accuracy once, then latency over `rounds` passes of the scenario set (first pass warms)."""
    import pytest

    from tests.bot.scenarios.support import install_fake_knowledge, run_scenarios
    from yishi.core.config import get_settings

    patch = pytest.MonkeyPatch()
    install_fake_knowledge(patch)
    settings = get_settings()
    score = run_scenarios(settings, "memory")
    print(f"scenarios: {score.conversations} conversations, {score.intent_total} turns")
    for name, value, ok, total in (
        ("intent", score.intent_accuracy, score.intent_ok, score.intent_total),
        ("field", score.field_accuracy, score.field_ok, score.field_total),
        ("action", score.action_accuracy, score.action_ok, score.action_total),
    ):
        print(f"  {name:<7} accuracy  {value:.3f} ({ok}/{total})")
    for failure in score.failures:
        print(f"    miss: {failure}")
    held = run_scenarios(settings, "memory", only=lambda c: bool(c.get("heldout")))
    print(f"  of which held-out ({held.conversations} conversations): intent "
          f"{held.intent_ok}/{held.intent_total}, fields {held.field_ok}/{held.field_total}, "
          f"actions {held.action_ok}/{held.action_total} (first untuned run: 16/17, 12/14, 14/15)")
    from yishi.core import embedding

    timings: list[float] = []
    for _ in range(rounds):
        embedding.forget()  # every turn pays for its own embedding, as a new message would
        run_scenarios(settings, "memory", timings=timings)
    print(f"offline turn latency incl. the embedding, in-memory SQLite ({len(timings)} turns): "
          f"p50 {ms(pct(timings, 0.5))}, p95 {ms(pct(timings, 0.95))}, max {ms(max(timings))}")
    embed_only: list[float] = []
    for n in range(60):  # the embedding alone, same moment, for scale
        started = time.perf_counter()
        embedding.embed_message(f"基准{n}：{n}号楼楼道灯坏了好几天了")
        embed_only.append(time.perf_counter() - started)
    print(f"  the embedding alone: p50 {ms(pct(embed_only, 0.5))}, p95 {ms(pct(embed_only, 0.95))}"
          f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    file_timings: list[float] = []
    embedding.forget()
    with tempfile.TemporaryDirectory() as tmp:
        run_scenarios(settings, f"sqlite:///{tmp}/bench", timings=file_timings)
    print(f"offline turn latency, SQLite file (WAL) ({len(file_timings)} turns): "
          f"p50 {ms(pct(file_timings, 0.5))}, p95 {ms(pct(file_timings, 0.95))}")
    patch.undo()


def bench_injection() -> None:
    """The engines' own injection guard on the shared moderation dev set (measurement only)."""
    import json

    from yishi.bot.intents import injection_signals

    shared = Path(os.environ.get("YISHI_SHARED_DIR", REPO.parent / "shared"))
    path = shared / "eval" / "moderation_dev.jsonl"
    if not path.exists():
        print(f"injection guard: {path} not found, skipped")
        return
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    attacks = [r for r in rows if "prompt_injection" in r.get("categories", [])]
    others = [r for r in rows if "prompt_injection" not in r.get("categories", [])]
    caught = sum(bool(injection_signals(r["text"])) for r in attacks)
    false = sum(bool(injection_signals(r["text"])) for r in others)
    print(f"injection guard (engine-side, before any tool): caught {caught}/{len(attacks)} "
          f"prompt_injection items, flagged {false}/{len(others)} other items")


def bench_agent(turns: int) -> None:
    """Agent turn vs the bare streamed model call, same scripted server and reply."""
    import pytest
    from langchain_core.messages import HumanMessage
    from sqlmodel import Session

    from tests.bot.scenarios.support import RESIDENT, install_fake_knowledge
    from tests.fakes.openai_server import FakeOpenAIServer, text, tool_call
    from yishi.bot.agent import AgentEngine
    from yishi.core.config import get_settings
    from yishi.core.db import create_all, make_engine
    from yishi.core.llm import build_chat_model

    patch = pytest.MonkeyPatch()
    install_fake_knowledge(patch)
    with FakeOpenAIServer() as llm, tempfile.TemporaryDirectory() as tmp:
        settings = get_settings().model_copy(update={
            "llm_base_url": llm.base_url, "llm_model": "fake-model", "llm_timeout": 5.0,
            "llm_max_retries": 0})
        engine = make_engine(f"sqlite:///{tmp}/agent.db")
        create_all(engine)
        agent = AgentEngine(settings)
        bare: Any = build_chat_model(settings)  # streams (supports_streaming)
        with Session(engine, expire_on_commit=False) as session:
            for _ in range(5):  # warm both paths
                llm.enqueue(text("您好，请问有什么可以帮您？"), text("您好"))
                agent.respond(session=session, actor=RESIDENT, text="你好")
                list(bare.stream([HumanMessage("你好")]))
            raw: list[float] = []
            full: list[float] = []
            for i in range(turns):
                llm.enqueue(text("您好，请问有什么可以帮您？"))
                started = time.perf_counter()
                list(bare.stream([HumanMessage("你好")]))
                raw.append(time.perf_counter() - started)
                llm.enqueue(text("您好，请问有什么可以帮您？"))
                started = time.perf_counter()
                agent.respond(session=session, actor=RESIDENT, text=f"你好{i}")
                full.append(time.perf_counter() - started)
            tool_turns: list[float] = []
            for _ in range(max(turns // 4, 10)):
                llm.enqueue(tool_call("search_knowledge", {"query": "加装电梯"}),
                            text("根据《示例社区管理规约》第八条，需表决。"))
                started = time.perf_counter()
                agent.respond(session=session, actor=RESIDENT, text="加装电梯怎么表决？")
                tool_turns.append(time.perf_counter() - started)
        engine.dispose()
    overhead = [f - r for f, r in zip(full, raw, strict=True)]
    print(f"agent vs bare model call, scripted server ({turns} turns, history of 8 turns):")
    print(f"  bare streamed call  p50 {ms(pct(raw, 0.5))}, p95 {ms(pct(raw, 0.95))}")
    print(f"  agent turn          p50 {ms(pct(full, 0.5))}, p95 {ms(pct(full, 0.95))}")
    print(f"  agent overhead      p50 {ms(statistics.median(overhead))}, "
          f"p95 {ms(pct(overhead, 0.95))}  (memory load/store, prompt, tool binding, guards)")
    print(f"  turn with one tool call (2 model calls + search): p50 {ms(pct(tool_turns, 0.5))}, "
          f"p95 {ms(pct(tool_turns, 0.95))}")
    patch.undo()


def main() -> None:
    """Print every figure."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="latency passes over the scenarios")
    parser.add_argument("--agent-turns", type=int, default=200)
    parser.add_argument("--no-agent", action="store_true", help="skip the agent figures")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="yishi-bench-")
    os.environ["YISHI_DATA_DIR"] = tmp
    os.environ.setdefault("YISHI_ENVIRONMENT", "bench")
    for key in ("YISHI_LLM_BASE_URL", "YISHI_LLM_MODEL", "YISHI_DATABASE_URL"):
        os.environ.pop(key, None)
    bench_offline(args.rounds)
    bench_injection()
    if not args.no_agent:
        bench_agent(args.agent_turns)


if __name__ == "__main__":
    main()
