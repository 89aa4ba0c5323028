"""Active-learning strategies on hand-made probabilities and embeddings: the picks are the uncertain ones,
diversity spreads them over clusters, near-duplicates are passed over, the cold start covers the pool."""

from __future__ import annotations

import numpy as np
import pytest

from tunesmith.labels.select import choose, entropies, margins

LABELS = ["a", "b", "c"]


def three_clusters(per: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points around three orthogonal directions in 8 dimensions; cluster ids alongside."""
    rng = np.random.default_rng(seed)
    centres = np.eye(8)[:3] * 10
    ids = np.repeat(np.arange(3), per)
    return centres[ids] + rng.normal(0, 1.5, size=(3 * per, 8)), ids


def probs_with_margins(gaps: np.ndarray) -> np.ndarray:
    """Three-class probabilities whose top-two gap is ``gaps`` (at most 0.7)."""
    return np.stack([(0.9 + gaps) / 2, (0.9 - gaps) / 2, np.full(len(gaps), 0.1)], axis=1)


def test_margin_picks_the_smallest_gaps_first():
    emb, _ = three_clusters(20)
    gaps = np.random.default_rng(1).uniform(0.05, 0.65, size=60)
    probs = probs_with_margins(gaps)
    assert np.allclose(margins(probs), gaps)
    picks = choose("margin", 5, emb, probs, LABELS, 0)
    assert [p.index for p in picks] == list(np.argsort(gaps)[:5])
    assert [p.score for p in picks] == pytest.approx(sorted(gaps)[:5])
    assert picks[0].reason.startswith(f"margin {sorted(gaps)[0]:.3f}: a ")


def test_entropy_picks_the_most_spread_probabilities():
    emb, _ = three_clusters(10)
    rng = np.random.default_rng(2)
    probs = rng.dirichlet([0.5, 0.5, 0.5], size=30)
    picks = choose("entropy", 4, emb, probs, LABELS, 0)
    assert [p.index for p in picks] == list(np.argsort(-entropies(probs))[:4])
    assert entropies(probs)[picks[0].index] == pytest.approx(entropies(probs).max())


def test_diverse_spreads_the_picks_over_clusters_where_margin_does_not():
    emb, ids = three_clusters(20)
    gaps = np.where(ids == 0, 0.01, 0.3) + np.random.default_rng(3).uniform(0, 0.05, size=60)
    probs = probs_with_margins(gaps)
    by_margin = choose("margin", 3, emb, probs, LABELS, 0)
    assert {ids[p.index] for p in by_margin} == {0}, "the 3 smallest gaps all lie in cluster 0"
    diverse = choose("diverse", 3, emb, probs, LABELS, 0)
    assert {ids[p.index] for p in diverse} == {0, 1, 2}
    for p in diverse:  # each is the most uncertain member of its cluster
        assert gaps[p.index] == pytest.approx(gaps[ids == ids[p.index]].min())
        assert "the most uncertain of a cluster of" in p.reason


def test_near_duplicates_are_not_picked_twice():
    emb, _ = three_clusters(10)
    emb[1] = emb[0] * 1.001  # a near-twin of row 0
    gaps = np.linspace(0.3, 0.6, 30)
    gaps[0], gaps[1] = 0.01, 0.02  # the two most uncertain rows are twins
    picks = choose("margin", 3, emb, probs_with_margins(gaps), LABELS, 0)
    assert [p.index for p in picks] == [0, 2, 3]


def test_cold_start_covers_every_cluster_and_random_is_seeded():
    emb, ids = three_clusters(15)
    cold = choose("margin", 3, emb, None, None, 0)
    assert sorted(ids[p.index] for p in cold) == [0, 1, 2]
    assert all(p.reason.startswith("cold start: nearest the centre of a cluster of 15") for p in cold)
    probs = probs_with_margins(np.full(45, 0.5))
    one = [p.index for p in choose("random", 10, emb, probs, LABELS, 0)]
    assert one == [p.index for p in choose("random", 10, emb, probs, LABELS, 0)]
    assert one != [p.index for p in choose("random", 10, emb, probs, LABELS, 1)]
    assert len(set(one)) == 10


def test_an_unknown_strategy_is_refused():
    emb, _ = three_clusters(3)
    with pytest.raises(ValueError, match="allowed: margin, entropy, diverse, random"):
        choose("smallest", 2, emb, None, None, 0)
