"""The social network: who talks to whom, generated once per run as an edge list.

Both engines use the same generator, so they see the same distribution of networks: the agents
engine turns the edges into a networkx graph for Mesa's network space, the vector engine into a
sparse adjacency matrix. Generation is vectorised so that a million people take seconds.
A well-mixed population has no edges: everyone meets a share of everyone (mean-field).
"""

from __future__ import annotations

import networkx as nx
import numpy as np
from scipy import sparse

from cxsim.scenario import Network, NetworkKind


def edges(spec: Network, n: int, rng: np.random.Generator) -> np.ndarray:
    """Undirected edges as an (m, 2) int array, u < v, no self-loops or repeats."""
    k = spec.mean_degree
    if spec.kind is NetworkKind.well_mixed or n < 2 or k <= 0:
        return np.empty((0, 2), dtype=np.int64)
    if spec.kind is NetworkKind.erdos_renyi:
        return _erdos_renyi(n, min(int(round(n * k / 2)), n * (n - 1) // 2), rng)
    if spec.kind is NetworkKind.barabasi_albert:
        return _barabasi_albert(n, max(1, int(round(k / 2))), rng)
    pairs = _ring_lattice(n, max(1, int(round(k / 2))))
    if spec.kind is NetworkKind.watts_strogatz and spec.rewiring > 0:
        rewire = rng.random(len(pairs)) < spec.rewiring
        # A rewired edge keeps its first end and gets a new, uniformly chosen other end.
        pairs[rewire, 1] = rng.integers(0, n, size=int(rewire.sum()))
    return _tidy(pairs, n)


def _erdos_renyi(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """m distinct uniformly random pairs (G(n, m)).

    Random pairs with a 5% margin for self-loops and repeats are enough for sparse networks;
    when repeats eat the margin (small or dense networks) more pairs are drawn until m are
    distinct, and a network with more than half of all possible pairs picks them directly.
    """
    total = n * (n - 1) // 2
    if 2 * m > total:
        u, v = np.triu_indices(n, 1)
        pick = rng.choice(total, size=m, replace=False)
        return np.column_stack([u[pick], v[pick]]).astype(np.int64)
    pairs = _tidy(rng.integers(0, n, size=(int(m * 1.05) + 16, 2)), n)
    while len(pairs) < m:
        more = rng.integers(0, n, size=(2 * (m - len(pairs)) + 16, 2))
        pairs = _tidy(np.concatenate([pairs, more]), n)
    return pairs[:m]


def _ring_lattice(n: int, half: int) -> np.ndarray:
    half = min(half, (n - 1) // 2) or 1
    u = np.repeat(np.arange(n), half)
    v = (u + np.tile(np.arange(1, half + 1), n)) % n
    return np.column_stack([u, v])


def _barabasi_albert(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """Preferential attachment by the Batagelj-Brandes trick, resolved with pointer jumping.

    Node t >= m links to m earlier nodes, each picked by a uniform position in the list of all
    earlier edge ends: an even position is an edge's source node (known), an odd position is
    an edge's target, which is itself a pick made earlier and is found by following pointers.
    """
    m = min(m, n - 1)
    sources = np.repeat(np.arange(m, n), m)
    e = np.arange(len(sources))
    # The first node's m edges go to the m seed nodes 0..m-1.
    first = e < m
    # Positions in the endpoint list [s_0, t_0, s_1, t_1, ...] before this edge's node's edges.
    start = 2 * (e - (e % m))
    pos = np.where(first, -1, (rng.random(len(e)) * np.maximum(start, 1)).astype(np.int64))
    target = np.where(first, e % m, -1)
    even = (pos % 2 == 0) & ~first
    target[even] = sources[pos[even] // 2]
    pointer = np.where(target < 0, pos // 2, -1)  # edge whose target we copy
    todo = np.flatnonzero(target < 0)
    while len(todo):
        ptr = pointer[todo]
        known = target[ptr] >= 0
        target[todo[known]] = target[ptr[known]]
        pointer[todo[~known]] = pointer[ptr[~known]]
        todo = todo[~known]
    return _tidy(np.column_stack([sources, target]), n)


def _tidy(pairs: np.ndarray, n: int, limit: int | None = None) -> np.ndarray:
    pairs = np.sort(pairs, axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    keys = pairs[:, 0].astype(np.int64) * n + pairs[:, 1]
    _, first = np.unique(keys, return_index=True)
    pairs = pairs[np.sort(first)]
    return pairs[:limit] if limit is not None else pairs


def adjacency(edge_list: np.ndarray, n: int) -> sparse.csr_matrix:
    """Symmetric n x n CSR adjacency (int32 ones) for neighbour counts as a product."""
    u, v = edge_list[:, 0], edge_list[:, 1]
    rows = np.concatenate([u, v]).astype(np.int32)
    cols = np.concatenate([v, u]).astype(np.int32)
    data = np.ones(len(rows), dtype=np.int32)
    return sparse.csr_matrix((data, (rows, cols)), shape=(n, n))


def graph(edge_list: np.ndarray, n: int) -> nx.Graph:
    """networkx graph with nodes 0..n-1, for Mesa's network space."""
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(edge_list.tolist())
    return g
