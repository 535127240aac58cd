"""Consensus math: the formulas on small hand-made cases, and behaviour on planted structure."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from yishi.deliberation import consensus
from yishi.deliberation.consensus import Vote, VoteMatrix


def _planted(
    n_per_group: int = 60, n_comments: int = 40, density: float = 0.6, seed: int = 1
) -> tuple[VoteMatrix, np.ndarray]:
    """Two camps that vote opposite on the first half of the comments and agree on the rest."""
    rng = np.random.default_rng(seed)
    truth = np.repeat([0, 1], n_per_group)
    stance = np.ones((2, n_comments))
    stance[1, : n_comments // 2] = -1
    values = stance[truth].copy()
    noise = rng.random(values.shape) < 0.1
    values[noise] = rng.choice([-1.0, 0.0, 1.0], size=int(noise.sum()))
    values[rng.random(values.shape) > density] = np.nan
    participants = [f"p{i}" for i in range(len(truth))]
    return VoteMatrix(values, participants, list(range(n_comments))), truth


def test_statistical_tests_match_their_formulas() -> None:
    assert consensus.prop_test(np.array(6), np.array(6)) == pytest.approx(np.sqrt(7))
    # no votes: 2·√1·(1/1 - 1/2) = 1, the pseudo-count's pull, not a significant result
    assert consensus.prop_test(np.array(0), np.array(0)) == pytest.approx(1.0)
    # two_prop with +1 pseudo-counts: (4/5 - 2/6) / sqrt(p(1-p)(1/5 + 1/6)), p = 6/11
    p = 6 / 11
    want = (4 / 5 - 2 / 6) / np.sqrt(p * (1 - p) * (1 / 5 + 1 / 6))
    assert consensus.two_prop_test(np.array(3), np.array(1), np.array(4), np.array(5)) == (
        pytest.approx(want)
    )
    # pooled proportion 1 (nobody outside voted, all inside agreed) gives 0, not NaN
    assert consensus.two_prop_test(np.array(2), np.array(0), np.array(2), np.array(0)) == 0.0


def test_group_informed_consensus_is_the_product_over_groups() -> None:
    votes = [
        ("a", "c1", 1), ("b", "c1", 1), ("c", "c1", 0),  # group x: 2 agree of 3 votes
        ("d", "c1", 1), ("e", "c1", -1),  # group y: 1 agree of 2 votes
        ("a", "c2", -1), ("d", "c2", 1),
    ]
    groups = {"a": "x", "b": "x", "c": "x", "d": "y", "e": "y"}
    gac = consensus.group_informed_consensus(votes, groups)
    assert gac["c1"] == pytest.approx((2 + 1) / (3 + 2) * (1 + 1) / (2 + 2))
    assert gac["c2"] == pytest.approx((0 + 1) / (1 + 2) * (1 + 1) / (1 + 2))


def test_from_votes_keeps_the_latest_vote_and_accepts_dataclasses() -> None:
    matrix = VoteMatrix.from_votes(
        [Vote("p1", "c1", 1), ("p1", "c2", 0), Vote("p1", "c1", -1), ("p2", "c2", 1)]
    )
    assert matrix.participants == ["p1", "p2"]
    assert matrix.comments == ["c1", "c2"]
    assert matrix.values[0].tolist() == [-1.0, 0.0]
    assert np.isnan(matrix.values[1, 0])


def test_vote_matrix_rejects_values_other_than_agree_disagree_pass() -> None:
    with pytest.raises(ValueError, match="votes must be"):
        VoteMatrix(np.array([[2.0]]), ["p"], ["c"])
    with pytest.raises(ValueError, match="does not match"):
        VoteMatrix(np.zeros((2, 2)), ["p"], ["c", "d"])


def test_planted_camps_are_recovered_with_their_divisive_statements() -> None:
    matrix, truth = _planted()
    result = consensus.compute(matrix)
    assert result.k == 2
    labels = [result.groups[p] for p in matrix.participants]
    assert adjusted_rand_score(truth, labels) == pytest.approx(1.0)
    divisive = set(range(20))
    for reps in result.repness.values():
        assert reps, "every group gets representative statements"
        # the best-agree slot may hold a statement everyone agrees with; the rest must divide
        assert {r.comment for r in reps if not r.best_agree} <= divisive
        assert any(r.comment in divisive for r in reps)
    agreed = {s.comment for s in result.consensus if s.side == "agree"}
    assert agreed and agreed.isdisjoint(divisive)
    gac = {c.id: c.group_informed_consensus for c in result.comments}
    assert min(gac[c] for c in range(20, 40)) > max(gac[c] for c in range(20))


def test_sparse_triples_and_matrix_give_the_same_result() -> None:
    matrix, _ = _planted(n_per_group=30, n_comments=20)
    triples = [
        (matrix.participants[i], matrix.comments[j], matrix.values[i, j])
        for i, j in zip(*np.nonzero(~np.isnan(matrix.values)), strict=True)
    ]
    a, b = consensus.compute(matrix).to_dict(), consensus.compute(triples).to_dict()
    assert a["groups"] == b["groups"]
    a_comments = sorted(a["comments"], key=lambda c: c["id"])
    b_comments = sorted(b["comments"], key=lambda c: c["id"])
    assert [(c["id"], c["agree"], c["pass"]) for c in a_comments] == [
        (c["id"], c["agree"], c["pass"]) for c in b_comments
    ]
    assert [c["group_informed_consensus"] for c in a_comments] == pytest.approx(
        [c["group_informed_consensus"] for c in b_comments]
    )


def test_compute_is_deterministic() -> None:
    matrix, _ = _planted(n_per_group=80, density=0.3, seed=7)
    assert consensus.compute(matrix).to_dict() == consensus.compute(matrix).to_dict()


def test_only_participants_with_enough_votes_are_grouped() -> None:
    matrix, _ = _planted(n_per_group=20, n_comments=30, density=1.0)
    values = matrix.values.copy()
    values[0, 6:] = np.nan  # six votes: below min(7, 30)
    values[1, 7:] = np.nan  # seven votes: enough
    result = consensus.compute(VoteMatrix(values, matrix.participants, matrix.comments))
    assert "p0" not in result.groups
    assert "p1" in result.groups
    assert len(result.groups) == 39


def test_small_conversations_are_topped_up_to_fifteen_participants() -> None:
    rng = np.random.default_rng(3)
    values = rng.choice([-1.0, 1.0], size=(20, 10))
    values[:, 3:] = np.nan  # everyone has 3 votes, below min(7, 10)
    values[:5, 3] = 1.0  # the first five have 4 votes
    result = consensus.compute(VoteMatrix(values, list(range(20)), list(range(10))))
    assert len(result.participants) == 15
    assert set(range(5)) <= set(result.participants)


def test_moderated_out_comments_are_never_consensus_or_representative() -> None:
    matrix, _ = _planted()
    plain = consensus.compute(matrix)
    banned = {s.comment for s in plain.consensus} | {
        r.comment for reps in plain.repness.values() for r in reps
    }
    result = consensus.compute(matrix, mod_out=banned)
    chosen = {s.comment for s in result.consensus} | {
        r.comment for reps in result.repness.values() for r in reps
    }
    assert chosen and chosen.isdisjoint(banned)


def test_given_groups_are_used_instead_of_clustering() -> None:
    matrix, _ = _planted(n_per_group=10)
    groups = {p: ("odd" if i % 2 else "even") for i, p in enumerate(matrix.participants)}
    result = consensus.compute(matrix, groups=groups)
    assert result.k == 2
    assert result.groups == groups
    assert set(result.repness) == {"even", "odd"}


def test_weighted_silhouette_equals_sklearn_on_expanded_points() -> None:
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(0)
    points = rng.normal(size=(12, 2))
    weights = rng.integers(1, 4, size=12).astype(float)
    labels = np.array([0, 1, 2] * 4)
    expanded = np.repeat(points, weights.astype(int), axis=0)
    expanded_labels = np.repeat(labels, weights.astype(int))
    assert consensus.weighted_silhouette(points, weights, labels) == pytest.approx(
        silhouette_score(expanded, expanded_labels)
    )


@pytest.mark.parametrize(
    ("values", "k"),
    [
        (np.zeros((0, 0)), 0),
        (np.full((5, 3), np.nan), 0),  # nobody voted
        (np.ones((30, 10)), 1),  # everyone in the same place
    ],
)
def test_degenerate_conversations_do_not_crash(values: np.ndarray, k: int) -> None:
    n, m = values.shape
    result = consensus.compute(VoteMatrix(values, list(range(n)), list(range(m))))
    assert result.k == k
    assert len(result.comments) == m
    assert len(result.groups) == (n if k else 0)
