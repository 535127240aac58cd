"""Moderation throughput and latency on one core: prints msgs/s and p50/p95/p99 per message.

Run: .venv/bin/python bench/bench_moderation.py [--n 5000]
Messages: moderation_dev + COLD test texts from ../shared (or $YISHI_SHARED_DIR), cycled.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path


def _shared() -> Path:
    env = os.environ.get("YISHI_SHARED_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"


def _messages() -> list[str]:
    from yishi.moderation.evaluate import read_cold_texts

    shared = _shared()
    dev = shared / "eval" / "moderation_dev.jsonl"
    texts = [json.loads(line)["text"] for line in dev.read_text(encoding="utf-8").splitlines()]
    texts += read_cold_texts(shared / "eval" / "moderation" / "cold" / "test.csv")
    return [t for t in texts if t]


def main() -> None:
    """Time `screen` over real messages and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=6000, help="messages to screen")
    args = parser.parse_args()

    t0 = time.perf_counter()
    from yishi.moderation import service

    service.warm_up()
    load_s = time.perf_counter() - t0

    texts = _messages()
    batch = [texts[i % len(texts)] for i in range(args.n)]
    lat: list[float] = []
    cpu: list[float] = []
    start = time.perf_counter()
    cpu_start = time.thread_time()
    for text in batch:
        t = time.perf_counter()
        c = time.thread_time()
        service.screen(text)
        cpu.append((time.thread_time() - c) * 1000)
        lat.append((time.perf_counter() - t) * 1000)
    total = time.perf_counter() - start
    cpu_total = time.thread_time() - cpu_start
    lat.sort()
    cpu.sort()

    def pct(values: list[float], p: float) -> float:
        return values[min(len(values) - 1, int(p / 100 * len(values)))]

    chars = statistics.mean(len(t) for t in batch)
    print(f"messages: {len(batch)} (mean {chars:.0f} chars), one thread")
    print(f"warm-up (lexicon, classifier, pinyin, jieba freq): {load_s:.2f} s")
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"throughput (wall): {len(batch) / total:,.0f} msgs/s")
    print(f"throughput (CPU time of this thread): {len(batch) / cpu_total:,.0f} msgs/s")
    for name, values in (("wall", lat), ("cpu", cpu)):
        print(
            f"latency ms ({name}): p50 {pct(values, 50):.3f}  p95 {pct(values, 95):.3f}  "
            f"p99 {pct(values, 99):.3f}  max {values[-1]:.3f}"
        )
    big = "正常内容，大家好。" * 11_000  # ~100 KB
    t = time.perf_counter()
    service.screen(big)
    print(f"one 100 KB message: {(time.perf_counter() - t) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
