"""Benchmark the consensus math: time per Polis openData conversation, a synthetic
10,000 × 1,000 matrix, and peak memory; `--ari` adds agreement with Polis's own groups and math.

    .venv/bin/python bench/bench_consensus.py [--ari] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from yishi.deliberation import consensus, polis  # noqa: E402
from yishi.deliberation.consensus import VoteMatrix  # noqa: E402

SHARED = Path(os.environ.get("YISHI_SHARED_DIR", REPO.parent / "shared")).resolve()
DATA = SHARED / "eval" / "deliberation"


def _synthetic(n: int, m: int, *, density: float = 0.25, seed: int = 0) -> VoteMatrix:
    """Three planted opinion groups voting with 15% noise on a fraction `density` of comments."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, size=n)
    stance = rng.choice([-1.0, 0.0, 1.0], size=(3, m), p=[0.4, 0.2, 0.4])
    values = stance[truth]
    noise = rng.random((n, m)) < 0.15
    values[noise] = rng.choice([-1.0, 0.0, 1.0], size=int(noise.sum()))
    values[rng.random((n, m)) > density] = np.nan
    return VoteMatrix(values, list(range(n)), list(range(m)))


def _timed(fn, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def bench_opendata(repeat: int) -> dict[str, tuple[polis.PolisExport, consensus.ConsensusResult]]:
    """Print load and math time for every openData conversation; return the results."""
    results = {}
    print(f"{'conversation':48s} {'participants × comments':>24s} {'load s':>8s} {'math s':>8s}")
    for folder in sorted(p for p in (DATA / "polis-opendata").iterdir() if p.is_dir()):
        load_s, export = _timed(lambda f=folder: polis.load_export(f), 1)
        assert isinstance(export, polis.PolisExport)
        math_s, result = _timed(
            lambda e=export: consensus.compute(e.matrix, mod_out=e.mod_out), repeat
        )
        assert isinstance(result, consensus.ConsensusResult)
        shape = "{} × {}".format(*export.matrix.values.shape)
        print(f"{folder.name:48s} {shape:>24s} {load_s:8.3f} {math_s:8.3f}")
        results[folder.name] = (export, result)
    return results


def bench_synthetic(repeat: int) -> None:
    """Print time and peak memory of the math on a synthetic 10,000 × 1,000 matrix."""
    matrix = _synthetic(10_000, 1_000)
    seconds, result = _timed(lambda: consensus.compute(matrix), repeat)
    assert isinstance(result, consensus.ConsensusResult)
    tracemalloc.start()
    consensus.compute(matrix)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    input_mb = matrix.values.nbytes / 2**20
    print(
        f"synthetic 10,000 × 1,000 (25% voted): {seconds:.3f} s (median of {repeat}), "
        f"k = {result.k}, peak memory allocated by compute {peak / 2**20:.0f} MiB "
        f"(input matrix {input_mb:.0f} MiB)"
    )


def print_ari(results: dict[str, tuple[polis.PolisExport, consensus.ConsensusResult]]) -> None:
    """Adjusted Rand index of our groups against Polis's group-id, per conversation."""
    print(f"\n{'conversation':48s} {'polis k':>7s} {'our k':>6s} {'grouped (ours/Polis/both)':>27s}"
          f" {'ARI':>6s} {'silhouette by k'}")
    for name, (export, result) in results.items():
        common = [p for p in result.groups if p in export.polis_groups]
        ari = adjusted_rand_score(
            [export.polis_groups[p] for p in common], [result.groups[p] for p in common]
        )
        counts = f"{len(result.groups)}/{len(export.polis_groups)}/{len(common)}"
        sil = " ".join(f"{k}:{v:.3f}" for k, v in result.silhouettes.items())
        print(f"{name:48s} {len(set(export.polis_groups.values())):7d} {result.k:6d} "
              f"{counts:>27s} {ari:6.3f} {sil}")


def print_fixture_agreement() -> None:
    """Agreement with Polis's math-pca2.json given Polis's own groups."""
    print(f"\n{'fixture':32s} {'GAC max |Δ|':>12s} {'consensus':>10s} {'repness':>8s}"
          f" {'repness-test max rel Δ':>23s}")
    for folder in sorted(p for p in (DATA / "polis-math-fixtures").iterdir() if p.is_dir()):
        fixture = polis.load_math_fixture(folder)
        math, matrix, groups = fixture.math, fixture.matrix, fixture.groups
        result = consensus.compute(matrix, groups=groups, mod_out=math["mod-out"])
        want = math["group-aware-consensus"]
        gac = max(abs(c.group_informed_consensus - want[str(c.id)]) for c in result.comments)
        cons_ok = all(
            [(s.comment, s.n_success, s.n_trials) for s in result.consensus if s.side == side]
            == [(w["tid"], w["n-success"], w["n-trials"]) for w in math["consensus"][side]]
            for side in ("agree", "disagree")
        )
        rep_ok, rel = True, 0.0
        for g, items in math["repness"].items():
            ours = result.repness[int(g)]
            rep_ok &= [(r.comment, r.repful_for, r.best_agree) for r in ours] == [
                (w["tid"], w["repful-for"], bool(w.get("best-agree"))) for w in items
            ]
            for r, w in zip(ours, items, strict=False):
                delta = abs(r.repness_test - w["repness-test"])
                rel = max(rel, delta / max(1.0, abs(r.repness_test)))
        print(f"{folder.name:32s} {gac:12.2e} {'same' if cons_ok else 'DIFF':>10s} "
              f"{'same' if rep_ok else 'DIFF':>8s} {rel:23.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ari", action="store_true", help="also print agreement with Polis")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (median)")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"shared data not found at {DATA}; set YISHI_SHARED_DIR")
    consensus.compute(_synthetic(200, 50))  # warm up imports and BLAS
    results = bench_opendata(args.repeat)
    bench_synthetic(args.repeat)
    if args.ari:
        print_ari(results)
        print_fixture_agreement()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nprocess peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
