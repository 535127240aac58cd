"""Whole-screen throughput and latency, sentence embedding included.

Run: .venv/bin/python bench/bench_moderation.py [--n 600] [--corpus DIR]
Messages: the team corpus's test split (harmful and benign community messages) mixed with
ordinary chat commands and replies, the way a community's traffic looks; each message is screened
once with a cold embedding memo, so every semantic-stage message pays for its embedding.
Prints messages/s per core (CPU time of the process), wall-clock p50/p95/p99, and the
share of messages that a crisp check settled without the embedding.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from pathlib import Path

# One OpenMP thread for the sentence model: on a shared 2-core machine its spinning worker
# threads cost more than they save (measured: 4 vs 30 messages/s per core).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Everyday traffic that is not in the corpus: commands, votes, thanks, emoji.
CHAT = (
    "帮助",
    "我的问题",
    "议题",
    "赞成",
    "反对",
    "好的",
    "谢谢",
    "👍👍",
    "收到",
    "1",
    "明天几点开会？",
    "已经修好了，谢谢师傅",
)


def _messages(corpus: list[Path], n: int) -> list[str]:
    from yishi.moderation import training

    texts = [it.text for it in training.read_corpus(corpus) if it.split == "test"]
    rng = random.Random(7)
    rng.shuffle(texts)
    mix = texts[: int(n * 0.85)]
    mix += [CHAT[i % len(CHAT)] for i in range(n - len(mix))]
    rng.shuffle(mix)
    return mix


def main() -> None:
    """Time `screen` over a realistic mix and print the figures."""
    from yishi.core import embedding
    from yishi.moderation import service, training

    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=600, help="messages to screen")
    parser.add_argument("--corpus", type=Path, action="append", help="team corpus directory")
    args = parser.parse_args()

    t0 = time.perf_counter()
    service.warm_up()
    load_s = time.perf_counter() - t0
    batch = _messages(args.corpus or [training.DEFAULT_CORPUS], args.n)
    screener = service.get_screener()
    screener.stats = service.ScreenStats()
    lat: list[float] = []
    cpu: list[float] = []
    start = time.perf_counter()
    cpu_start = time.process_time()
    for text in batch:
        embedding.forget()  # every message pays for its own embedding
        t = time.perf_counter()
        c = time.process_time()
        service.screen(text)
        cpu.append((time.process_time() - c) * 1000)
        lat.append((time.perf_counter() - t) * 1000)
    total = time.perf_counter() - start
    cpu_total = time.process_time() - cpu_start
    lat.sort()
    cpu.sort()

    def pct(values: list[float], p: float) -> float:
        return values[min(len(values) - 1, int(p / 100 * len(values)))]

    chars = statistics.mean(len(t) for t in batch)
    stats = screener.stats
    print(f"messages: {len(batch)} (mean {chars:.0f} chars), one thread")
    print(f"warm-up (lexicon, classifier, heads, sentence model): {load_s:.2f} s")
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(
        f"skipped the embedding: {stats.skip_share:.1%} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(stats.skipped.items())) or 'none'})"
    )
    print(f"throughput (wall): {len(batch) / total:,.1f} msgs/s")
    print(f"throughput per core (process CPU time): {len(batch) / cpu_total:,.1f} msgs/s")
    for name, values in (("wall", lat), ("cpu", cpu)):
        print(
            f"latency ms ({name}): p50 {pct(values, 50):.2f}  p95 {pct(values, 95):.2f}  "
            f"p99 {pct(values, 99):.2f}  max {values[-1]:.2f}"
        )


if __name__ == "__main__":
    main()
