"""Knowledge benchmark: ingest time for the whole policy corpus, warm query latency of the ranked
search (hybrid candidates + learned ranker, each query new so its embedding is computed), memory,
and retrieval figures (BM25, vectors, hybrid, ranked) on the team's held-out pairs (test split)
and on retrieval_dev (measured only, never tuned on).

    .venv/bin/python bench/bench_knowledge.py [--data-dir DIR] [--queries 200]

Without --data-dir a fresh temporary data dir is used (cold embedding cache).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    env = os.environ.get("YISHI_SHARED_DIR")
    return Path(env) if env else REPO.parent / "shared"


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MB."""
    current = 0.0
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return current, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()

    from yishi.core.config import Settings
    from yishi.knowledge import evaluation
    from yishi.knowledge import service as knowledge_service

    corpus = shared_dir() / "corpus" / "policy"
    dev = shared_dir() / "eval" / "retrieval_dev.jsonl"
    tmp = None
    if args.data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="yishi-bench-")
        data_dir = Path(tmp.name)
    else:
        data_dir = args.data_dir
    settings = Settings(data_dir=data_dir, load_sample_knowledge=False)

    t0 = time.perf_counter()
    knowledge_service.ensure_ready(settings)
    report = knowledge_service.ingest_paths(paths=[corpus], settings=settings)
    ingest_s = time.perf_counter() - t0
    index = knowledge_service.get_index(settings)
    print(
        f"ingest: {len(report.files)} files ({report.count('added')} added, "
        f"{report.count('unchanged')} unchanged, {len(report.errors)} errors), "
        f"{index.chunk_count()} chunks in {ingest_s:.1f} s"
    )
    t0 = time.perf_counter()
    again = knowledge_service.ingest_paths(paths=[corpus], settings=settings)
    print(
        f"re-ingest unchanged: {again.count('unchanged')} unchanged in "
        f"{time.perf_counter() - t0:.2f} s"
    )

    from yishi.knowledge import training

    pairs = training.read_items(training.PAIRS_PATH)
    # Distinct questions, so each search embeds its query as a new message would.
    questions = [i["question"] for i in pairs]
    for q in questions[-5:]:  # warm-up: model, jieba, Chroma, ranker
        knowledge_service.search(q, k=5, settings=settings)
    latencies = []
    for n in range(min(args.queries, len(questions) - 5)):
        q = questions[n]
        t = time.perf_counter()
        knowledge_service.search(q, k=5, settings=settings)
        latencies.append((time.perf_counter() - t) * 1000)
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(
        f"warm query latency over {len(latencies)} ranked searches (new questions): "
        f"p50 {statistics.median(latencies):.1f} ms, p95 {p95:.1f} ms, "
        f"max {latencies[-1]:.1f} ms"
    )
    current, peak = rss_mb()
    print(f"memory: RSS {current:.0f} MB (peak {peak:.0f} MB)")
    # Latency on 2 shared cores depends on what else runs: print the load next to it.
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")

    sets = [("held-out pairs (test split)", [i for i in pairs if i["split"] == "test"])]
    if dev.is_file():
        sets.append((dev.name, evaluation.read_items(dev)))
    for name, items in sets:
        print(f"retrieval on {name} (n={len(items)}; any-gold / all-gold for multi items):")
        for mode in ("bm25", "vector", "hybrid", "ranked"):
            s = evaluation.evaluate(items, mode=mode, settings=settings)
            r, ra = s.recall_at, s.recall_all_at
            print(
                f"  {mode:<6}  R@1 {r[1]:.3f}  R@5 {r[5]:.3f}  R@10 {r[10]:.3f}  MRR {s.mrr:.3f}"
                f"   | all-gold R@5 {ra[5]:.3f} R@10 {ra[10]:.3f}  misses@5 {len(s.misses)}"
            )
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
