"""Consensus math: opinion groups, representative statements and consensus, after Polis.

A re-implementation of the method Polis (compdemocracy.org/polis) describes, written from that
description and checked against Polis's own math output. Votes: +1 agree, -1 disagree, 0 pass,
missing = no vote. Notation: ``V`` is the participants × comments matrix, ``m`` its number of
comments, ``M`` the comments moderated out, ``z90 = 1.2816`` (one-sided 90% normal quantile).

1. Vote matrix. Sparse ``(participant, comment, value)`` triples are folded into ``V``; when a
   participant votes twice on a comment the later triple wins.
2. Participants in the conversation ("in-conv"): those with at least ``min(7, m)`` votes; if that
   leaves fewer than 15, the participants with the most votes are added until there are 15
   (Polis's rule for small conversations).
3. PCA. Columns of ``M`` are set to 0 (pass) for everyone, so they carry no signal. With
   ``c_j`` the mean of the votes cast on comment ``j`` (0 if none), missing votes are filled with
   ``c_j`` and the matrix centred: ``X_ij = V_ij - c_j``. The two principal components
   ``w_1, w_2`` are the top eigenvectors of ``X^T X`` over *all* participants (sign fixed so each
   component's largest entry is positive). A participant's position is
   ``p_i = (X_i · w_1, X_i · w_2) · sqrt(m / n_i)``, where ``n_i`` counts the non-missing entries
   of row ``i`` after step 3's zeroing (votes on kept comments + |M|): the sparsity scaling pulls
   people who voted on few comments out of the centre, where mean-filling put them.
4. Base clusters: k-means with ``min(100, distinct positions)`` centres on the in-conv positions
   (with 100 or fewer distinct positions every distinct position is its own base cluster).
5. Opinion groups: weighted k-means over the base-cluster centres (weights = sizes), for
   ``k = 2 .. min(5, n_base - 1)``. For each ``k``, Lloyd's algorithm runs from 100 random
   starts (k distinct base centres, seeded) and the partition reached from the most starts wins
   (ties: lower inertia), not the lowest-inertia one: Polis's own k-means is warm-started from
   its previous run, so it sits in a wide basin, while the global optimum often splits off a
   handful of outliers. The ``k`` with the highest weighted silhouette wins (ties go to the
   smaller ``k``). The silhouette is computed as if every participant sat at their base
   centre: for a base cluster ``i`` in group ``A``, ``a_i = Σ_{j∈A} s_j d_ij / (S_A - 1)``,
   ``b_i = min_{B≠A} Σ_{j∈B} s_j d_ij / S_B``, ``sil_i = (b_i - a_i) / max(a_i, b_i)`` (0 when
   ``S_A = 1``), overall ``Σ s_i sil_i / Σ s_i`` (``s`` sizes, ``S`` group sizes, ``d`` Euclidean
   distance). Groups are numbered by size, largest first. With fewer than 3 base clusters each
   base cluster is its own group (one position: one group).
6. Per group ``g`` and comment ``t`` (in-conv votes only; "rest" = in-conv participants outside
   ``g``): ``na, nd, ns`` = agrees, disagrees and votes cast (passes included).
   - smoothed probabilities ``pa = (na + 1) / (ns + 2)``, ``pd = (nd + 1) / (ns + 2)``;
   - one-proportion test against 1/2: ``pat = 2 sqrt(ns + 1) ((na + 1) / (ns + 1) - 1/2)``
     (``pdt`` likewise with ``nd``);
   - representativeness ``ra = pa / pa_rest``, ``rd = pd / pd_rest``;
   - two-proportion test ``rat = two_prop(na, na_rest, ns, ns_rest)`` (``rdt`` likewise) with
     ``two_prop(s1, s2, n1, n2)``: add 1 to each of ``s1, s2, n1, n2``, then
     ``(s1/n1 - s2/n2) / sqrt(p (1 - p) (1/n1 + 1/n2))`` with ``p = (s1 + s2) / (n1 + n2)``
     (0 when ``p = 1``).
   A comment is "repful for" agree when ``rat > rdt``, otherwise for disagree; its figures are
   then that side's ``(n, p, p-test, r, r-test)``; its metric is ``r · r_test · p · p_test``.
7. Representative statements of a group (comments in ``M`` are skipped):
   - sufficient: ``p_test > z90`` and ``r_test > z90`` on the repful side;
   - best agree: scanning comments in order, a comment with ``na + nd > 0`` becomes the first
     candidate when ``pat > z90`` or (``ra > 1`` and ``pa > 1/2``); it replaces the current
     candidate when ``ra·rat·pa·pat`` is larger, or, if the candidate has ``ra <= 1``, when
     ``pa·pat`` is larger;
   - the list: the best agree first (marked ``best_agree``, finalised like any other comment),
     then the sufficient comments with the highest metric, 5 in all, agrees before disagrees;
     a group with no sufficient comment and no best agree gets the comment with the highest
     ``max(rat, rdt)``.
8. Consensus statements: over all participants (not only in-conv), per comment ``pa``, ``pat``
   (and ``pd``, ``pdt``) as in 6; agree consensus = comments not in ``M`` with ``pa > 1/2`` and
   ``pat > z90``, the 5 highest by ``pa · pat``; disagree consensus likewise with ``pd``, ``pdt``.
9. Group-informed consensus of comment ``t`` (every comment, ``M`` included):
   ``Π_g (na_g + 1) / (ns_g + 2)`` over the groups, the smoothed chance that a member of every
   group agrees; high only when all groups agree.

Everything is vectorised over comments and groups; k-means uses fixed seeds, so a result is a
pure function of its input.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.sparse.linalg import LinearOperator, eigsh
from sklearn.cluster import kmeans_plusplus

Z_90 = 1.2816
MIN_VOTES = 7
GREEDY_PARTICIPANTS = 15
MAX_BASE_CLUSTERS = 100
MAX_GROUPS = 5
REPNESS_PER_GROUP = 5
CONSENSUS_PER_SIDE = 5
DENSE_EIGH_LIMIT = 64  # below this size a dense eigendecomposition is the quicker route
N_STARTS = 100  # random starts per k when looking for the most stable grouping

Side = Literal["agree", "disagree"]


@dataclass(frozen=True)
class Vote:
    """One vote: +1 agree, -1 disagree, 0 pass."""

    participant: Hashable
    comment: Hashable
    value: float


@dataclass
class VoteMatrix:
    """Participants × comments votes: +1 agree, -1 disagree, 0 pass, NaN no vote."""

    values: np.ndarray
    participants: Sequence[Hashable]
    comments: Sequence[Hashable]

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.values.ndim != 2 or self.values.shape != (
            len(self.participants),
            len(self.comments),
        ):
            raise ValueError(
                f"values shape {self.values.shape} does not match "
                f"{len(self.participants)} participants × {len(self.comments)} comments"
            )
        cast = self.values[~np.isnan(self.values)]
        if cast.size and not np.isin(cast, (-1.0, 0.0, 1.0)).all():
            raise ValueError("votes must be +1 (agree), -1 (disagree), 0 (pass) or NaN")

    @classmethod
    def from_votes(
        cls,
        votes: Iterable[Vote | tuple[Hashable, Hashable, float]],
        *,
        comments: Sequence[Hashable] | None = None,
    ) -> VoteMatrix:
        """Fold (participant, comment, value) triples into a matrix; a later vote wins."""
        latest: dict[tuple[Hashable, Hashable], float] = {}
        p_index: dict[Hashable, int] = {}
        c_index: dict[Hashable, int] = {c: i for i, c in enumerate(comments or ())}
        for vote in votes:
            p, c, v = (
                (vote.participant, vote.comment, vote.value) if isinstance(vote, Vote) else vote
            )
            p_index.setdefault(p, len(p_index))
            c_index.setdefault(c, len(c_index))
            latest[(p, c)] = float(v)
        values = np.full((len(p_index), len(c_index)), np.nan)
        if latest:
            keys = list(latest)
            rows = np.fromiter((p_index[p] for p, _ in keys), dtype=np.int64, count=len(keys))
            cols = np.fromiter((c_index[c] for _, c in keys), dtype=np.int64, count=len(keys))
            values[rows, cols] = np.fromiter(latest.values(), dtype=np.float64, count=len(keys))
        return cls(values=values, participants=list(p_index), comments=list(c_index))


@dataclass(frozen=True)
class CommentStats:
    """Vote totals of one comment over all participants, and its group-informed consensus."""

    id: Hashable
    agree: int
    disagree: int
    passes: int
    group_informed_consensus: float


@dataclass(frozen=True)
class ConsensusStatement:
    """A comment most in-conv participants agree (or disagree) with."""

    comment: Hashable
    side: Side
    n_success: int
    n_trials: int
    p_success: float
    p_test: float


@dataclass(frozen=True)
class RepresentativeStatement:
    """A comment that sets a group apart from the rest (Polis's repness)."""

    comment: Hashable
    repful_for: Side
    n_success: int
    n_trials: int
    p_success: float
    p_test: float
    repness: float
    repness_test: float
    best_agree: bool = False
    n_agree: int | None = None


@dataclass
class ConsensusResult:
    """Everything the consensus math produces for one conversation."""

    participants: list[Hashable]  # in-conv participants, in matrix order
    groups: dict[Hashable, Hashable]  # in-conv participant -> group id
    k: int
    comments: list[CommentStats]
    consensus: list[ConsensusStatement]
    repness: dict[Hashable, list[RepresentativeStatement]]
    center: np.ndarray  # per comment
    components: np.ndarray  # 2 × comments
    projections: np.ndarray  # in-conv participants × 2
    base_labels: np.ndarray  # in-conv participants -> base cluster index
    base_centers: np.ndarray  # base clusters × 2
    silhouettes: dict[int, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: groups, k, comment figures, consensus and repness."""
        return {
            "groups": {str(p): _json_id(g) for p, g in self.groups.items()},
            "k": self.k,
            "silhouettes": {str(k): v for k, v in self.silhouettes.items()},
            "comments": [
                {
                    "id": _json_id(c.id),
                    "group_informed_consensus": c.group_informed_consensus,
                    "agree": c.agree,
                    "disagree": c.disagree,
                    "pass": c.passes,
                }
                for c in self.comments
            ],
            "consensus": [
                {
                    "id": _json_id(s.comment),
                    "side": s.side,
                    "n_success": s.n_success,
                    "n_trials": s.n_trials,
                    "p_success": s.p_success,
                    "p_test": s.p_test,
                }
                for s in self.consensus
            ],
            "repness": {
                str(g): [
                    {
                        "id": _json_id(r.comment),
                        "repful_for": r.repful_for,
                        "n_success": r.n_success,
                        "n_trials": r.n_trials,
                        "p_success": r.p_success,
                        "p_test": r.p_test,
                        "repness": r.repness,
                        "repness_test": r.repness_test,
                        "best_agree": r.best_agree,
                    }
                    for r in reps
                ]
                for g, reps in self.repness.items()
            },
        }


def _json_id(value: Hashable) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    return value if isinstance(value, int | str | float) else str(value)


def _as_matrix(votes: VoteMatrix | Iterable[Vote | tuple[Hashable, Hashable, float]]) -> VoteMatrix:
    return votes if isinstance(votes, VoteMatrix) else VoteMatrix.from_votes(votes)


def _mod_out_mask(matrix: VoteMatrix, mod_out: Iterable[Hashable]) -> np.ndarray:
    wanted = set(mod_out)
    n = len(matrix.comments)
    return np.fromiter((c in wanted for c in matrix.comments), dtype=bool, count=n)


# --- statistics --------------------------------------------------------------------------------


def prop_test(successes: np.ndarray, trials: np.ndarray) -> np.ndarray:
    """One-proportion z-test against 1/2 with a pseudo-count: 2√(n+1)((s+1)/(n+1) - 1/2)."""
    n1 = np.asarray(trials, dtype=np.float64) + 1.0
    return 2.0 * np.sqrt(n1) * ((np.asarray(successes, dtype=np.float64) + 1.0) / n1 - 0.5)


def two_prop_test(
    succ_in: np.ndarray, succ_out: np.ndarray, pop_in: np.ndarray, pop_out: np.ndarray
) -> np.ndarray:
    """Two-proportion z-test, each count plus one; 0 where the pooled proportion is 1."""
    s1 = np.asarray(succ_in, dtype=np.float64) + 1.0
    s2 = np.asarray(succ_out, dtype=np.float64) + 1.0
    n1 = np.asarray(pop_in, dtype=np.float64) + 1.0
    n2 = np.asarray(pop_out, dtype=np.float64) + 1.0
    pooled = (s1 + s2) / (n1 + n2)
    denom = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (s1 / n1 - s2 / n2) / denom
    return np.where((pooled >= 1.0) | (denom == 0), 0.0, z)


@dataclass
class _Counts:
    """Agree / disagree / seen counts per group (rows) and comment (columns)."""

    agree: np.ndarray
    disagree: np.ndarray
    seen: np.ndarray


def _group_counts(values: np.ndarray, labels: np.ndarray, k: int) -> _Counts:
    m = values.shape[1]
    agree, disagree, seen = (np.zeros((k, m), dtype=np.int64) for _ in range(3))
    for g in range(k):
        block = values[labels == g]
        agree[g] = np.count_nonzero(block == 1, axis=0)
        disagree[g] = np.count_nonzero(block == -1, axis=0)
        seen[g] = len(block) - np.count_nonzero(np.isnan(block), axis=0)
    return _Counts(agree=agree, disagree=disagree, seen=seen)


def _gac(counts: _Counts) -> np.ndarray:
    return np.prod((counts.agree + 1.0) / (counts.seen + 2.0), axis=0)


def _labels_for(
    matrix: VoteMatrix, groups: Mapping[Any, Any]
) -> tuple[np.ndarray, np.ndarray, list[Hashable]]:
    """Rows of the grouped participants, their group index, and the group ids in index order."""
    group_ids = sorted({groups[p] for p in matrix.participants if p in groups}, key=_sort_key)
    g_index = {g: i for i, g in enumerate(group_ids)}
    rows = [i for i, p in enumerate(matrix.participants) if p in groups]
    labels = np.array([g_index[groups[matrix.participants[i]]] for i in rows], dtype=np.int64)
    return np.array(rows, dtype=np.int64), labels, group_ids


def _sort_key(value: Hashable) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) else (1, str(value))


def group_informed_consensus(
    votes: VoteMatrix | Iterable[Vote | tuple[Hashable, Hashable, float]],
    groups: Mapping[Any, Any],
) -> dict[Hashable, float]:
    """Per comment, Π over groups of (agrees_g + 1) / (votes_g + 2)."""
    matrix = _as_matrix(votes)
    rows, labels, group_ids = _labels_for(matrix, groups)
    counts = _group_counts(matrix.values[rows], labels, len(group_ids))
    return dict(zip(matrix.comments, _gac(counts).tolist(), strict=True))


def _repness_from_counts(
    counts: _Counts, comments: Sequence[Hashable], excluded: np.ndarray
) -> list[list[RepresentativeStatement]]:
    totals = [x.sum(axis=0) for x in (counts.agree, counts.disagree, counts.seen)]
    out: list[list[RepresentativeStatement]] = []
    for g in range(counts.agree.shape[0]):
        own = (counts.agree[g], counts.disagree[g], counts.seen[g])
        rest = (totals[0] - own[0], totals[1] - own[1], totals[2] - own[2])
        out.append(_group_repness(own, rest, comments, excluded))
    return out


def _group_repness(
    own: tuple[np.ndarray, np.ndarray, np.ndarray],
    rest: tuple[np.ndarray, np.ndarray, np.ndarray],
    comments: Sequence[Hashable],
    excluded: np.ndarray,
) -> list[RepresentativeStatement]:
    """Representative statements of one group from its and the rest's (agree, disagree, seen)."""
    na, nd, ns = own
    rest_a, rest_d, rest_s = rest
    pa, pd = (na + 1.0) / (ns + 2.0), (nd + 1.0) / (ns + 2.0)
    pat, pdt = prop_test(na, ns), prop_test(nd, ns)
    ra = pa / ((rest_a + 1.0) / (rest_s + 2.0))
    rd = pd / ((rest_d + 1.0) / (rest_s + 2.0))
    rat, rdt = two_prop_test(na, rest_a, ns, rest_s), two_prop_test(nd, rest_d, ns, rest_s)
    agree_side = rat > rdt
    n_s = np.where(agree_side, na, nd)
    p_s, p_t = np.where(agree_side, pa, pd), np.where(agree_side, pat, pdt)
    r, r_t = np.where(agree_side, ra, rd), np.where(agree_side, rat, rdt)
    metric = r * r_t * p_s * p_t
    eligible = ~excluded

    def statement(t: int, *, best: bool = False) -> RepresentativeStatement:
        return RepresentativeStatement(
            comment=comments[t],
            repful_for="agree" if agree_side[t] else "disagree",
            n_success=int(n_s[t]),
            n_trials=int(ns[t]),
            p_success=float(p_s[t]),
            p_test=float(p_t[t]),
            repness=float(r[t]),
            repness_test=float(r_t[t]),
            best_agree=best,
            n_agree=int(na[t]) if best else None,
        )

    best_agree: int | None = None
    for t in np.flatnonzero(eligible & ((na + nd) > 0)):
        if best_agree is None:
            if pat[t] > Z_90 or (ra[t] > 1.0 and pa[t] > 0.5):
                best_agree = int(t)
        elif ra[best_agree] > 1.0:
            b = best_agree
            if ra[t] * rat[t] * pa[t] * pat[t] > ra[b] * rat[b] * pa[b] * pat[b]:
                best_agree = int(t)
        elif pa[t] * pat[t] > pa[best_agree] * pat[best_agree]:
            best_agree = int(t)

    chosen: list[RepresentativeStatement] = []
    sufficient = np.flatnonzero(eligible & (p_t > Z_90) & (r_t > Z_90))
    if best_agree is not None:
        chosen.append(statement(best_agree, best=True))
        sufficient = sufficient[sufficient != best_agree]
    ranked = sufficient[np.argsort(-metric[sufficient], kind="stable")]
    ranked = ranked[: REPNESS_PER_GROUP - len(chosen)]
    ranked = np.concatenate([ranked[agree_side[ranked]], ranked[~agree_side[ranked]]])
    chosen.extend(statement(int(t)) for t in ranked)
    if not chosen and eligible.any():
        best_z = np.where(eligible, np.maximum(rat, rdt), -np.inf)
        chosen.append(statement(int(np.argmax(best_z))))
    return chosen


def repness(
    votes: VoteMatrix | Iterable[Vote | tuple[Hashable, Hashable, float]],
    groups: Mapping[Any, Any],
    *,
    mod_out: Iterable[Hashable] = (),
) -> dict[Hashable, list[RepresentativeStatement]]:
    """Representative statements of each group against the other grouped participants."""
    matrix = _as_matrix(votes)
    rows, labels, group_ids = _labels_for(matrix, groups)
    counts = _group_counts(matrix.values[rows], labels, len(group_ids))
    reps = _repness_from_counts(counts, matrix.comments, _mod_out_mask(matrix, mod_out))
    return dict(zip(group_ids, reps, strict=True))


def _consensus_from_counts(
    agree: np.ndarray,
    disagree: np.ndarray,
    seen: np.ndarray,
    comments: Sequence[Hashable],
    excluded: np.ndarray,
) -> list[ConsensusStatement]:
    out: list[ConsensusStatement] = []
    for side, n in (("agree", agree), ("disagree", disagree)):
        p = (n + 1.0) / (seen + 2.0)
        z = prop_test(n, seen)
        ok = np.flatnonzero(~excluded & (p > 0.5) & (z > Z_90))
        top = ok[np.argsort(-(p[ok] * z[ok]), kind="stable")][:CONSENSUS_PER_SIDE]
        out.extend(
            ConsensusStatement(
                comment=comments[t],
                side=side,  # type: ignore[arg-type]
                n_success=int(n[t]),
                n_trials=int(seen[t]),
                p_success=float(p[t]),
                p_test=float(z[t]),
            )
            for t in top
        )
    return out


def consensus_statements(
    votes: VoteMatrix | Iterable[Vote | tuple[Hashable, Hashable, float]],
    participants: Iterable[Hashable] | None = None,
    *,
    mod_out: Iterable[Hashable] = (),
) -> list[ConsensusStatement]:
    """Comments that most of `participants` (default: everyone) agree or disagree with."""
    matrix = _as_matrix(votes)
    if participants is None:
        values = matrix.values
    else:
        wanted = set(participants)
        values = matrix.values[[i for i, p in enumerate(matrix.participants) if p in wanted]]
    return _consensus_from_counts(
        (values == 1).sum(axis=0),
        (values == -1).sum(axis=0),
        (~np.isnan(values)).sum(axis=0),
        matrix.comments,
        _mod_out_mask(matrix, mod_out),
    )


# --- projection and clustering -----------------------------------------------------------------


def _pca(values: np.ndarray, excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre, 2 components and scaled projections of every participant (see step 3)."""
    x = values.copy()
    x[:, excluded] = 0.0
    missing = np.isnan(x)
    n_cast = x.shape[0] - missing.sum(axis=0)
    center = np.where(n_cast > 0, np.nansum(x, axis=0) / np.maximum(n_cast, 1), 0.0)
    x[missing] = 0.0
    x -= center
    x[missing] = 0.0  # mean-filled entries are exactly the centre: zero after centring
    n, m = x.shape
    components = np.zeros((2, m))
    n_comp = min(2, n, m)
    if n_comp > 0:
        comps = _top_components(x, n_comp)
        signs = np.sign(comps[np.arange(n_comp), np.abs(comps).argmax(axis=1)])
        components[:n_comp] = comps * np.where(signs == 0, 1.0, signs)[:, None]
    n_votes = m - missing.sum(axis=1)
    scale = np.sqrt(m / np.maximum(n_votes, 1))
    projections = (x @ components.T) * scale[:, None]
    return center, components, projections


def _top_components(x: np.ndarray, n_comp: int) -> np.ndarray:
    """The top `n_comp` right singular vectors of `x` (rows), unit length."""
    n, m = x.shape
    if min(n, m) <= DENSE_EIGH_LIMIT:
        if m <= n:
            _, vecs = np.linalg.eigh(x.T @ x)
            return vecs[:, ::-1][:, :n_comp].T.copy()
        _, uvecs = np.linalg.eigh(x @ x.T)
        comps = (x.T @ uvecs[:, ::-1][:, :n_comp]).T
    else:
        # Lanczos on v -> X^T X v never forms the Gram matrix; a fixed start keeps it deterministic.
        gram = LinearOperator((m, m), matvec=lambda v: x.T @ (x @ v), dtype=np.float64)
        start = np.random.default_rng(0).standard_normal(m)
        _, vecs = eigsh(gram, k=n_comp, which="LA", v0=start, tol=0)
        comps = vecs[:, ::-1].T
    norms = np.linalg.norm(comps, axis=1, keepdims=True)
    return np.divide(comps, norms, out=np.zeros_like(comps), where=norms > 0)


def _in_conv(values: np.ndarray) -> np.ndarray:
    """Rows of participants in the conversation (step 2)."""
    n_votes = (~np.isnan(values)).sum(axis=1)
    threshold = min(MIN_VOTES, values.shape[1])
    chosen = n_votes >= threshold
    short = GREEDY_PARTICIPANTS - int(chosen.sum())
    if short > 0:
        rest = np.flatnonzero(~chosen & (n_votes > 0))
        rest = rest[np.argsort(-n_votes[rest], kind="stable")][:short]
        chosen[rest] = True
    return np.flatnonzero(chosen)


def _base_clusters(points: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Base cluster index of every point, and the base centres."""
    if len(points) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 2))
    unique, inverse = np.unique(points, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    if len(unique) <= MAX_BASE_CLUSTERS:
        return inverse.astype(np.int64), unique
    counts = np.bincount(inverse).astype(np.float64)
    init, _ = kmeans_plusplus(unique, MAX_BASE_CLUSTERS, sample_weight=counts, random_state=seed)
    base, _ = _lloyd_many(unique, counts, init[None])
    # Drop centres that lost all their members; recompute the rest as member means.
    _, labels = np.unique(base[0][inverse], return_inverse=True)
    labels = labels.reshape(-1)
    sizes = np.bincount(labels).astype(np.float64)
    centers = np.stack([np.bincount(labels, weights=points[:, d]) / sizes for d in range(2)], 1)
    return labels.astype(np.int64), centers


def weighted_silhouette(points: np.ndarray, weights: np.ndarray, labels: np.ndarray) -> float:
    """Silhouette of `labels` as if `weights[i]` participants sat at `points[i]` (see step 5)."""
    k = int(labels.max()) + 1
    dist = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=-1))
    onehot = np.zeros((len(points), k))
    onehot[np.arange(len(points)), labels] = 1.0
    sums = dist @ (onehot * weights[:, None])  # weighted distance from each point to each group
    sizes = onehot.T @ weights
    own = sizes[labels]
    with np.errstate(divide="ignore", invalid="ignore"):
        a = sums[np.arange(len(points)), labels] / (own - 1.0)
        other = sums / sizes[None, :]
    other[np.arange(len(points)), labels] = np.inf
    b = other.min(axis=1)
    denom = np.maximum(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where((own > 1) & (denom > 0), (b - a) / denom, 0.0)
    return float((weights * s).sum() / weights.sum())


def _sq_dist(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Squared distances, starts × points × centres, for 2-D points and starts × k × 2 centres."""
    dx = points[None, :, None, 0] - centers[:, None, :, 0]
    dy = points[None, :, None, 1] - centers[:, None, :, 1]
    return dx * dx + dy * dy


def _lloyd_many(
    points: np.ndarray, weights: np.ndarray, init: np.ndarray, max_iter: int = 300
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted Lloyd iterations from many starts at once: labels (starts × n), inertias."""
    centers = init.astype(np.float64).copy()  # starts × k × 2
    n_starts, k = centers.shape[:2]
    labels = np.full((n_starts, len(points)), -1, dtype=np.int64)
    offsets = (np.arange(n_starts) * k)[:, None]
    for _ in range(max_iter):
        new_labels = _sq_dist(points, centers).argmin(axis=-1)
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
        flat = (labels + offsets).ravel()
        w = np.tile(weights, n_starts)
        mass = np.bincount(flat, weights=w, minlength=n_starts * k).reshape(n_starts, k)
        sums = np.stack(
            [
                np.bincount(flat, weights=w * np.tile(points[:, d], n_starts),
                            minlength=n_starts * k).reshape(n_starts, k)
                for d in range(2)
            ],
            axis=-1,
        )
        centers = np.where(
            mass[..., None] > 0, sums / np.maximum(mass, 1e-300)[..., None], centers
        )
    dist = _sq_dist(points, centers)
    labels = dist.argmin(axis=-1)
    inertia = (np.take_along_axis(dist, labels[..., None], axis=-1)[..., 0] * weights).sum(axis=1)
    return labels, inertia


def _canonical(labels: np.ndarray, k: int) -> np.ndarray:
    """Relabel each row (all k labels present) so groups number in order of first appearance."""
    first = (labels[:, :, None] == np.arange(k)).argmax(axis=1)  # rows × k
    rank = np.argsort(np.argsort(first, axis=1), axis=1)
    return np.take_along_axis(rank, labels, axis=1)


def _stable_kmeans(
    points: np.ndarray, weights: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray | None:
    """The k-means partition reached from the most random starts (ties: lower inertia)."""
    starts = np.stack([rng.choice(len(points), size=k, replace=False) for _ in range(N_STARTS)])
    labels, inertia = _lloyd_many(points, weights, points[starts])
    full = np.array([len(np.unique(row)) == k for row in labels])
    if not full.any():
        return None
    labels, inertia = _canonical(labels[full], k), inertia[full]
    parts, index, counts = np.unique(labels, axis=0, return_inverse=True, return_counts=True)
    index = index.reshape(-1)
    best_inertia = np.full(len(parts), np.inf)
    np.minimum.at(best_inertia, index, inertia)
    winner = min(range(len(parts)), key=lambda i: (-counts[i], best_inertia[i]))
    return parts[winner]


def _group_clusters(
    centers: np.ndarray, sizes: np.ndarray, seed: int, max_groups: int
) -> tuple[np.ndarray, dict[int, float]]:
    """Group index of every base cluster, chosen by silhouette over k = 2..max_groups."""
    n_base = len(centers)
    if n_base <= 2:
        return np.arange(n_base, dtype=np.int64), {}
    rng = np.random.default_rng(seed)
    best: tuple[float, np.ndarray] | None = None
    scores: dict[int, float] = {}
    for k in range(2, min(max_groups, n_base - 1) + 1):
        labels = _stable_kmeans(centers, sizes, k, rng)
        if labels is None:
            continue
        scores[k] = weighted_silhouette(centers, sizes, labels)
        if best is None or scores[k] > best[0] + 1e-12:
            best = (scores[k], labels)
    if best is None:
        return np.zeros(n_base, dtype=np.int64), scores
    labels = best[1]
    # Number groups by size, largest first, ties by first base cluster.
    weight = np.bincount(labels, weights=sizes)
    order = sorted(range(len(weight)), key=lambda g: (-weight[g], int(np.argmax(labels == g))))
    remap = np.empty(len(order), dtype=np.int64)
    remap[order] = np.arange(len(order))
    return remap[labels], scores


# --- the whole pipeline ------------------------------------------------------------------------


def compute(
    votes: VoteMatrix | Iterable[Vote | tuple[Hashable, Hashable, float]],
    *,
    groups: Mapping[Any, Any] | None = None,
    mod_out: Iterable[Hashable] = (),
    seed: int = 0,
    max_groups: int = MAX_GROUPS,
) -> ConsensusResult:
    """Run the Polis method; with `groups`, use those groups instead of clustering."""
    matrix = _as_matrix(votes)
    excluded = _mod_out_mask(matrix, mod_out)
    values = matrix.values
    center, components, all_proj = _pca(values, excluded)
    silhouettes: dict[int, float] = {}

    if groups is None:
        rows = _in_conv(values)
        base_labels, base_centers = _base_clusters(all_proj[rows], seed)
        sizes = np.bincount(base_labels, minlength=len(base_centers)).astype(np.float64)
        group_of_base, silhouettes = _group_clusters(base_centers, sizes, seed, max_groups)
        labels = group_of_base[base_labels] if len(rows) else np.zeros(0, dtype=np.int64)
        group_ids: list[Hashable] = list(range(int(labels.max()) + 1 if len(labels) else 0))
    else:
        rows, labels, group_ids = _labels_for(matrix, groups)
        base_labels = np.arange(len(rows), dtype=np.int64)
        base_centers = all_proj[rows]

    in_values = values[rows]
    k = len(group_ids)
    counts = _group_counts(in_values, labels, k)
    gac = _gac(counts) if k else np.zeros(len(matrix.comments))
    agree_all = (values == 1).sum(axis=0)
    disagree_all = (values == -1).sum(axis=0)
    pass_all = (values == 0).sum(axis=0)
    comments = [
        CommentStats(
            id=c,
            agree=int(agree_all[j]),
            disagree=int(disagree_all[j]),
            passes=int(pass_all[j]),
            group_informed_consensus=float(gac[j]),
        )
        for j, c in enumerate(matrix.comments)
    ]
    cons = _consensus_from_counts(
        agree_all, disagree_all, agree_all + disagree_all + pass_all, matrix.comments, excluded
    )
    reps = _repness_from_counts(counts, matrix.comments, excluded) if k else []
    participants = [matrix.participants[i] for i in rows]
    return ConsensusResult(
        participants=participants,
        groups={p: group_ids[g] for p, g in zip(participants, labels.tolist(), strict=True)},
        k=k,
        comments=comments,
        consensus=cons,
        repness=dict(zip(group_ids, reps, strict=True)),
        center=center,
        components=components,
        projections=all_proj[rows],
        base_labels=base_labels,
        base_centers=base_centers,
        silhouettes=silhouettes,
    )



# --- what is shown to people --------------------------------------------------------------------

# Polis's own guidance: the method is meant for conversations of 50 or more participants.
POLIS_INTENDED_PARTICIPANTS = 50
MIN_SHOWN_GROUP = 5
# A grouping is shown only when its silhouette clearly beats "one group": a weighted silhouette
# below this means the groups overlap about as much as they differ.
MIN_SHOWN_SILHOUETTE = 0.35


@dataclass
class ShownGroups:
    """The grouping people see: every group at least `min_group` strong, or none with a note."""

    groups: dict[Hashable, int]  # participant -> shown group index (largest first)
    note: str = ""  # why there are no (or few) groups, in plain words


def shown_groups(
    result: ConsensusResult,
    votes: VoteMatrix | Iterable[Vote | tuple[Hashable, Hashable, float]],
    *,
    min_group: int = MIN_SHOWN_GROUP,
    min_silhouette: float = MIN_SHOWN_SILHOUETTE,
) -> ShownGroups:
    """Merge groups smaller than `min_group` into their nearest group and drop weak groupings.

    The raw `result` (Polis parity) is left as it is; only participants with at least
    `min(MIN_VOTES, statements)` votes are grouped.
    """
    matrix = _as_matrix(votes)
    voted = (~np.isnan(matrix.values)).sum(axis=1)
    need = min(MIN_VOTES, len(matrix.comments))
    enough = {p for p, n in zip(matrix.participants, voted.tolist(), strict=True) if n >= need}
    members = [p for p in result.participants if p in enough]
    n_total = len(matrix.participants)
    small = n_total < POLIS_INTENDED_PARTICIPANTS
    caveat = (
        f"本议题 {n_total} 人参与，分组方法面向 50 人以上的讨论，分组仅供参考。" if small else ""
    )
    if len(members) < 2 * min_group:
        return ShownGroups(
            {},
            f"投票达到 {need} 条的居民只有 {len(members)} 位，人数太少，不分组"
            f"（每组至少 {min_group} 人）。",
        )
    best = max(result.silhouettes.values(), default=0.0)
    if result.k < 2 or best < min_silhouette:
        return ShownGroups({}, "居民的意见没有明显分成几派，不分组。")
    position = {p: result.projections[i] for i, p in enumerate(result.participants)}
    label = {p: result.groups[p] for p in members}
    while True:
        sizes: dict[Hashable, int] = {}
        for g in label.values():
            sizes[g] = sizes.get(g, 0) + 1
        if len(sizes) < 2:
            break
        smallest = min(sizes, key=lambda g: (sizes[g], str(g)))
        if sizes[smallest] >= min_group:
            break
        centre = {
            g: np.mean([position[p] for p in members if label[p] == g], axis=0) for g in sizes
        }
        nearest = min(
            (g for g in sizes if g != smallest),
            key=lambda g: float(np.linalg.norm(centre[g] - centre[smallest])),
        )
        label = {p: nearest if g == smallest else g for p, g in label.items()}
    counts: dict[Hashable, int] = {}
    for g in label.values():
        counts[g] = counts.get(g, 0) + 1
    if len(counts) < 2:
        return ShownGroups({}, "较小的意见组并入相近的组后只剩一组，不分组。")
    order = sorted(counts, key=lambda g: (-counts[g], str(g)))
    index = {g: i for i, g in enumerate(order)}
    return ShownGroups({p: index[g] for p, g in label.items()}, caveat)
