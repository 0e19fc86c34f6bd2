"""The social network: who talks to whom, generated once per run.

Both engines use the same generator and draw the same random numbers from it, so a seed gives
both the same network: the agents engine turns the edge list (:func:`edges`) into a networkx
graph for Mesa's network space; the vector engine keeps only an :class:`Adjacency` (each
person's contacts, int32), built by :func:`contacts` without the int64 edge list for a
Watts-Strogatz or ring network, and for every kind a few blocks at a time, so that building it
needs little more memory than keeping it. Generation is vectorised so that a million people
take seconds. A well-mixed population has no edges: everyone meets a share of everyone
(mean-field).
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

from cxsim.scenario import Network, NetworkKind

NO_EDGES = np.empty((0, 2), dtype=np.int64)
"""The edge list of a network without edges."""
BLOCK = 1 << 20
"""Edges (or contact entries, or people) handled at a time while building and multiplying:
some tens of megabytes of temporaries whatever the size of the network."""


def edges(spec: Network, n: int, rng: np.random.Generator) -> np.ndarray:
    """Undirected edges as an (m, 2) int array, u < v, no self-loops or repeats."""
    k = spec.mean_degree
    if spec.kind is NetworkKind.well_mixed or n < 2 or k <= 0:
        return NO_EDGES.copy()
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


@dataclass(frozen=True, eq=False)
class Adjacency:
    """Who knows whom, as compressed sparse rows without values (every value would be 1):
    person i's contacts are ``indices[indptr[i]:indptr[i + 1]]``, in ascending order, and
    knowing is mutual. ``indices`` is int32, ``indptr`` int32 (int64 past 2**31 entries): the
    arrays of scipy's CSR matrix of the same network, without its data array."""

    indptr: np.ndarray  # (n + 1,)
    indices: np.ndarray  # (number of contact entries,) = 2 x edges

    @property
    def n(self) -> int:
        return len(self.indptr) - 1

    @property
    def shape(self) -> tuple[int, int]:
        return self.n, self.n

    def degree(self) -> np.ndarray:
        """Contacts per person, (n,)."""
        return np.diff(self.indptr)

    def contacts_of(self, person: int) -> np.ndarray:
        return self.indices[self.indptr[person] : self.indptr[person + 1]]

    def __matmul__(self, values: np.ndarray) -> np.ndarray:
        """Per person, the sum of ``values`` over their contacts, (n,) in ``values``' dtype
        (as the product with the 0/1 matrix: int32 in, int32 out), a block of rows at a time."""
        out = np.zeros(self.n, dtype=values.dtype)
        indptr = self.indptr
        for lo, hi in _row_blocks(indptr):
            first, last = int(indptr[lo]), int(indptr[hi])
            if first == last:
                continue
            starts = indptr[lo:hi] - first
            filled = np.flatnonzero(indptr[lo + 1 : hi + 1] > indptr[lo:hi])
            # reduceat sums each run up to the next start: empty rows must not start a run.
            sums = np.add.reduceat(values[self.indices[first:last]], starts[filled])
            out[lo + filled] = sums
        return out


def _row_blocks(indptr: np.ndarray) -> list[tuple[int, int]]:
    """Row ranges [lo, hi) of about BLOCK entries each (a row is never split)."""
    n = len(indptr) - 1
    targets = np.arange(BLOCK, int(indptr[-1]), BLOCK)
    cuts = np.unique(np.concatenate([[0], np.searchsorted(indptr, targets), [n]]))
    return list(zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True))


def contacts(spec: Network, n: int, rng: np.random.Generator) -> Adjacency | None:
    """The network's :class:`Adjacency` (None for a well-mixed population), the same network
    as :func:`edges` from the same generator state, and leaving the generator in the same
    state. A ring or Watts-Strogatz network is generated in blocks straight into sort keys;
    the other kinds come from their edge list."""
    if spec.kind is NetworkKind.well_mixed:
        return None
    k = spec.mean_degree
    if n < 2 or k <= 0:
        return adjacency(NO_EDGES, n)
    if spec.kind in (NetworkKind.erdos_renyi, NetworkKind.barabasi_albert):
        return adjacency(edges(spec, n, rng), n)
    return _from_keys(*_ring_keys(spec, n, rng), n)


def _ring_keys(spec: Network, n: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """(keys, m): the m edges of a ring lattice, rewired for Watts-Strogatz as :func:`edges`
    rewires them, as ``keys[:m]`` (u * n + v, u < v; -1 for a self-loop) in an array of 2m."""
    half = min(max(1, int(round(spec.mean_degree / 2))), (n - 1) // 2) or 1
    m = n * half
    # Which edges are rewired: the same draws as edges() makes, in blocks (the stream of
    # doubles does not depend on how it is cut); then their new ends, all at once, as there.
    rewired = new_ends = np.empty(0, dtype=np.int64)
    if spec.kind is NetworkKind.watts_strogatz and spec.rewiring > 0:
        rewired = np.concatenate([
            np.flatnonzero(rng.random(min(BLOCK, m - lo)) < spec.rewiring) + lo
            for lo in range(0, m, BLOCK)
        ])  # fmt: skip
        new_ends = rng.integers(0, n, size=len(rewired))
    keys = np.empty(2 * m, dtype=np.int64)  # the second half is for _from_keys
    for lo in range(0, m, BLOCK):
        edge = np.arange(lo, min(lo + BLOCK, m), dtype=np.int64)
        u = edge // half
        v = (u + 1 + edge % half) % n
        mine = slice(*np.searchsorted(rewired, [lo, lo + len(edge)]))
        v[rewired[mine] - lo] = new_ends[mine]
        keys[lo : lo + len(edge)] = np.where(u == v, -1, np.minimum(u, v) * n + np.maximum(u, v))
    return keys, m


def adjacency(edge_list: np.ndarray, n: int) -> Adjacency:
    """The :class:`Adjacency` of an (m, 2) edge list (repeats and self-loops dropped)."""
    m = len(edge_list)
    keys = np.empty(2 * m, dtype=np.int64)
    for lo in range(0, m, BLOCK):
        pair = edge_list[lo : lo + BLOCK].astype(np.int64)
        u, v = pair.min(axis=1), pair.max(axis=1)
        keys[lo : lo + len(pair)] = np.where(u == v, -1, u * n + v)
    return _from_keys(keys, m, n)


def _from_keys(keys: np.ndarray, m: int, n: int) -> Adjacency:
    """The adjacency from ``keys[:m]``, each edge as u * n + v with u < v (-1: no edge), using
    the rest of ``keys`` (m more) for the edges' reverses: sorted in place, repeats dropped, so
    the temporaries are these keys (16 bytes an edge) and the result."""
    edges_ = keys[:m]
    edges_.sort()
    # Keep the first of each run of equal keys and no -1, compacted in place block by block
    # (the write position never passes the read position).
    kept = 0
    for lo in range(0, m, BLOCK):
        block = edges_[lo : lo + BLOCK]
        before = edges_[lo - 1] if lo else -1
        new = (block != np.concatenate([[before], block[:-1]])) & (block >= 0)
        chosen = block[new]
        edges_[kept : kept + len(chosen)] = chosen
        kept += len(chosen)
    for lo in range(0, kept, BLOCK):
        block = keys[lo : min(lo + BLOCK, kept)]
        keys[kept + lo : kept + lo + len(block)] = (block % n) * n + block // n
    both = keys[: 2 * kept]
    both.sort()
    entries = len(both)
    indices = np.empty(entries, dtype=np.int32)
    for lo in range(0, entries, BLOCK):
        block = both[lo : lo + BLOCK]
        indices[lo : lo + len(block)] = block % n
    # Person i's contacts start at the first key of row i: i * n.
    indptr = np.empty(n + 1, dtype=np.int32 if entries < 2**31 else np.int64)
    for lo in range(0, n + 1, BLOCK):
        rows = np.arange(lo, min(lo + BLOCK, n + 1), dtype=np.int64)
        indptr[lo : lo + len(rows)] = np.searchsorted(both, rows * n)
    return Adjacency(indptr, indices)


def graph(edge_list: np.ndarray, n: int) -> nx.Graph:
    """networkx graph with nodes 0..n-1, for Mesa's network space."""
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(edge_list.tolist())
    return g
