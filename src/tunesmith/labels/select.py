"""Which unlabelled examples to label next (active learning), from class probabilities and embeddings.

Strategies, each returning the k picks with a score and a reason a person can read:

- ``margin``: the smallest gap between the two most likely classes (the model cannot tell them apart);
- ``entropy``: the most spread-out probabilities over all classes;
- ``diverse``: the uncertain examples (by margin) clustered with k-means on their embeddings, the most uncertain
  of each cluster: a batch of 50 is not 50 variants of one confusing ticket;
- ``random``: a seeded sample (the baseline every strategy is measured against);
- cold start (no model yet, no probabilities): k-means on the embeddings, the example nearest each centre, so
  the first labels cover what the pool holds.

Near-duplicates (cosine similarity of the embeddings at least ``NEAR``) of an earlier pick are passed over, so a
batch never asks for the same label twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STRATEGIES = ("margin", "entropy", "diverse", "random")
NEAR = 0.95  # cosine similarity of the mean-pooled embeddings from which two texts count as near-duplicates
UNCERTAIN_SHARE = 10  # diverse: the k clusters are drawn over the k * this most uncertain candidates


@dataclass
class Pick:
    index: int  # into the candidates given
    score: float  # the strategy's own figure (margin, entropy, distance, random draw)
    reason: str


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (cosine similarity is then a dot product)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def margins(probs: np.ndarray) -> np.ndarray:
    """The most likely class's probability minus the second's: 0 is a coin toss between two classes."""
    top = np.sort(probs, axis=1)[:, ::-1]
    second = top[:, 1] if probs.shape[1] > 1 else np.zeros(len(probs))
    return top[:, 0] - second


def entropies(probs: np.ndarray) -> np.ndarray:
    p = np.clip(probs, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1)


def choose(
    strategy: str,
    k: int,
    embeddings: np.ndarray,
    probs: np.ndarray | None,
    labels: list[str] | None,
    seed: int,
    near: float = NEAR,
) -> list[Pick]:
    """The k candidates to label next, best first. ``probs`` None means no model yet: the cold start. Two
    candidates whose embeddings' cosine similarity is at least ``near`` are not both picked."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy {strategy!r}; allowed: {', '.join(STRATEGIES)}")
    emb = unit(embeddings)
    if probs is None or labels is None:
        return _representative(emb, k, seed)
    if strategy == "random":
        order = np.random.default_rng(seed).permutation(len(emb))
        rank = {int(i): r for r, i in enumerate(order, 1)}
        return _distinct(
            emb, order, k, near, lambda i: (float(rank[i]), f"drawn at random (draw {rank[i]}; the baseline)")
        )
    names = labels

    def gap(i: int) -> tuple[float, str]:
        a, b = np.argsort(probs[i])[::-1][:2] if probs.shape[1] > 1 else (0, 0)
        m = float(probs[i, a] - probs[i, b])
        return m, f"margin {m:.3f}: {names[a]} {probs[i, a]:.2f} against {names[b]} {probs[i, b]:.2f}"

    if strategy == "margin":
        return _distinct(emb, np.argsort(margins(probs), kind="stable"), k, near, gap)
    if strategy == "entropy":
        ent = entropies(probs)

        def spread(i: int) -> tuple[float, str]:
            top = np.argsort(probs[i])[::-1][:3]
            shown = ", ".join(f"{names[j]} {probs[i, j]:.2f}" for j in top)
            return float(ent[i]), f"entropy {ent[i]:.3f} nats: {shown}"

        return _distinct(emb, np.argsort(-ent, kind="stable"), k, near, spread)
    return _diverse(emb, margins(probs), k, seed, near, gap)


def _distinct(emb: np.ndarray, order: np.ndarray, k: int, near: float, describe) -> list[Pick]:  # noqa: ANN001
    """The first k of ``order`` that are not near-duplicates of an earlier pick."""
    picks: list[Pick] = []
    chosen: list[int] = []
    for i in order:
        i = int(i)
        if chosen and float((emb[chosen] @ emb[i]).max()) >= near - 1e-6:
            continue
        score, reason = describe(i)
        picks.append(Pick(i, score, reason))
        chosen.append(i)
        if len(picks) == k:
            break
    return picks


def _kmeans(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(x)
    return km.labels_, km.cluster_centers_


def _diverse(emb: np.ndarray, margin: np.ndarray, k: int, seed: int, near: float, gap) -> list[Pick]:  # noqa: ANN001
    """k-means over the most uncertain candidates; the most uncertain of each cluster, clusters in order of
    their most uncertain member."""
    pool = np.argsort(margin, kind="stable")[: min(len(emb), k * UNCERTAIN_SHARE)]
    if len(pool) <= k:
        return _distinct(emb, pool, k, near, gap)
    assign, _ = _kmeans(emb[pool], k, seed)
    best: dict[int, int] = {}
    for rank, c in enumerate(assign):  # pool is sorted by margin: the first member seen is the most uncertain
        best.setdefault(int(c), rank)
    sizes = np.bincount(assign, minlength=k)
    picks = []
    for c, rank in sorted(best.items(), key=lambda kv: kv[1]):
        i = int(pool[rank])
        score, reason = gap(i)
        picks.append(Pick(i, score, f"{reason}; the most uncertain of a cluster of {sizes[c]} uncertain examples"))
    if len(picks) < k:  # k-means left clusters empty (identical points): fill by margin
        taken = {p.index for p in picks}
        rest = [int(i) for i in pool if int(i) not in taken]
        picks += _distinct(emb, np.array(rest, dtype=int), k - len(picks), near, gap)
    return picks[:k]


def _representative(emb: np.ndarray, k: int, seed: int) -> list[Pick]:
    """Cold start: the example nearest the centre of each of k clusters, larger clusters first."""
    if len(emb) <= k:
        return [Pick(i, 0.0, "the pool holds no more than k examples") for i in range(len(emb))]
    assign, centres = _kmeans(emb, k, seed)
    sizes = np.bincount(assign, minlength=k)
    picks = []
    for c in np.argsort(-sizes, kind="stable"):
        members = np.flatnonzero(assign == c)
        if not len(members):
            continue
        sims = emb[members] @ unit(centres[c : c + 1])[0]
        i = int(members[int(np.argmax(sims))])
        picks.append(
            Pick(i, float(sizes[c]), f"cold start: nearest the centre of a cluster of {sizes[c]} pool examples")
        )
    return picks[:k]
