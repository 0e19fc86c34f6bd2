"""The social network: who talks to whom, generated once per run.

Both engines use the same generator and draw the same random numbers from it, so a seed gives
both the same network: the agents engine turns the edge list (:func:`edges`) into a networkx
graph for Mesa's network space; the vector engine keeps only an :class:`Adjacency` (each
person's contacts, int32), built by :func:`contacts`. Both come from one generator per kind,
which writes each edge as a sort key u * n + v (int64) into an array with room for as many
again, a block at a time: :func:`edges` turns the keys into pairs, and :func:`contacts` sorts
them in place into the adjacency without ever making the (m, 2) int64 edge list (except for a
dense Erdos-Renyi network, more than half of all pairs, which picks from all n^2/2 pairs), so
that building it needs little more memory than keeping it. Generation is vectorised so that a
million people take seconds. A well-mixed population has no edges: everyone meets a share of
everyone (mean-field).
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
    """Undirected edges as an (m, 2) int array, u < v, no self-loops or repeats, each edge
    where it was first drawn."""
    if spec.kind is NetworkKind.well_mixed:
        return NO_EDGES.copy()
    keys, count = _keys(spec, n, rng)
    _mark_repeats(keys, count)
    kept = keys[:count]
    kept = kept[kept >= 0]
    return np.column_stack(_ends(kept, n))


def _ends(keys: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) of keys u * n + v (v < n): one division by the constant n, which NumPy does as a
    multiplication, where % and divmod divide each element (some 3x and 7x the time at a
    million keys)."""
    u = keys // n
    v = u * n
    np.subtract(keys, v, out=v)
    return u, v


def contacts(spec: Network, n: int, rng: np.random.Generator) -> Adjacency | None:
    """The network's :class:`Adjacency` (None for a well-mixed population), the same network
    as :func:`edges` from the same generator state, and leaving the generator in the same
    state: the same keys, sorted in place instead of turned into pairs."""
    if spec.kind is NetworkKind.well_mixed:
        return None
    # A ring's keys come nearly in order (only rewired edges are out of place), which the
    # stable sort (Timsort) finds and uses: eight times faster than quicksort at a million.
    ordered = spec.kind in (NetworkKind.watts_strogatz, NetworkKind.ring)
    return _from_keys(*_keys(spec, n, rng), n, ordered)


def _keys(spec: Network, n: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """(keys, count): the network's edges as ``keys[:count]`` in the order they were made,
    each u * n + v with u < v, or -1 for none (a self-loop, or an Erdos-Renyi pair drawn
    again); later repeats of a pair may remain (:func:`_mark_repeats` and :func:`_from_keys`
    drop them). ``keys`` holds at least 2 x count: the rest is room for those two."""
    k = spec.mean_degree
    if n < 2 or k <= 0:
        return np.empty(0, dtype=np.int64), 0
    if spec.kind is NetworkKind.erdos_renyi:
        return _erdos_renyi(n, min(int(round(n * k / 2)), n * (n - 1) // 2), rng)
    if spec.kind is NetworkKind.barabasi_albert:
        return _barabasi_albert(n, max(1, int(round(k / 2))), rng)
    return _ring_keys(spec, n, rng)


def _erdos_renyi(n: int, m: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """m distinct uniformly random pairs (G(n, m)): the first m distinct pairs drawn.

    Random pairs with a 5% margin for self-loops and repeats are enough for sparse networks;
    when repeats eat the margin (small or dense networks) more pairs are drawn until m are
    distinct, and a network with more than half of all possible pairs picks them directly.
    """
    total = n * (n - 1) // 2
    if 2 * m > total:
        u, v = np.triu_indices(n, 1)
        pick = rng.choice(total, size=m, replace=False)
        keys = np.empty(2 * m, dtype=np.int64)
        keys[:m] = u[pick].astype(np.int64) * n + v[pick]
        return keys, m
    keys = np.empty(0, dtype=np.int64)
    drawn, more = 0, int(m * 1.05) + 16
    while more:
        grown = np.empty(2 * (drawn + more), dtype=np.int64)
        grown[:drawn] = keys[:drawn]
        keys = grown
        for lo in range(drawn, drawn + more, BLOCK):
            pairs = rng.integers(0, n, size=(min(BLOCK, drawn + more - lo), 2))
            keys[lo : lo + len(pairs)] = _pair_keys(pairs[:, 0], pairs[:, 1], n)
        drawn += more
        distinct = _mark_repeats(keys, drawn)
        more = 2 * (m - distinct) + 16 if distinct < m else 0
    # The draws up to the m-th distinct pair; the distinct pairs drawn after it are dropped.
    seen = 0
    for lo in range(0, drawn if m else 0, BLOCK):
        new = np.flatnonzero(keys[lo : lo + BLOCK] >= 0)
        if seen + len(new) >= m:
            return keys, lo + int(new[m - seen - 1]) + 1
        seen += len(new)
    return keys, 0


def _barabasi_albert(n: int, m: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Preferential attachment by the Batagelj-Brandes trick, resolved with pointer jumping.

    Node t >= m links to m earlier nodes, each picked by a uniform position in the list of all
    earlier edge ends: an even position is an edge's source node (known), an odd position is
    an edge's target, which is itself a pick made earlier and is found by following pointers.
    Edge e is node m + e // m's; the targets are found a block of edges at a time, in the
    second half of the keys (a node, or -1 - the earlier edge whose target it copies).
    """
    m = min(m, n - 1)
    count = (n - m) * m
    keys = np.empty(2 * count, dtype=np.int64)
    target = keys[count:]
    for lo in range(0, count, BLOCK):
        e = np.arange(lo, min(lo + BLOCK, count), dtype=np.int64)
        # Positions in the endpoint list [s_0, t_0, s_1, t_1, ...] before this edge's node's
        # edges; the first node's m edges go to the m seed nodes 0..m-1.
        start = 2 * (e - (e % m))
        pos = (rng.random(len(e)) * np.maximum(start, 1)).astype(np.int64)
        target[lo : lo + len(e)] = np.where(
            e < m, e, np.where(pos % 2 == 0, m + pos // 2 // m, -1 - pos // 2)
        )
        # Pointers lead to earlier edges: those before this block are known already.
        todo = np.flatnonzero(target[lo : lo + len(e)] < 0) + lo
        while len(todo):
            target[todo] = target[-1 - target[todo]]
            todo = todo[target[todo] < 0]
        keys[lo : lo + len(e)] = target[lo : lo + len(e)] * n + m + e // m
    return keys, count


def _ring_keys(spec: Network, n: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """(keys, m): the m edges of a ring lattice, rewired for Watts-Strogatz: each edge from
    person i to one of the k/2 next around the circle, a rewired edge keeping its first end and
    getting a new, uniformly chosen other end."""
    half = min(max(1, int(round(spec.mean_degree / 2))), (n - 1) // 2) or 1
    m = n * half
    # Which edges are rewired, in blocks (the stream of doubles does not depend on how it is
    # cut); then their new ends, all at once.
    rewired = new_ends = np.empty(0, dtype=np.int64)
    if spec.kind is NetworkKind.watts_strogatz and spec.rewiring > 0:
        rewired = np.concatenate([
            np.flatnonzero(rng.random(min(BLOCK, m - lo)) < spec.rewiring) + lo
            for lo in range(0, m, BLOCK)
        ])  # fmt: skip
        new_ends = rng.integers(0, n, size=len(rewired))
    keys = np.empty(2 * m, dtype=np.int64)
    for lo in range(0, m, BLOCK):
        edge = np.arange(lo, min(lo + BLOCK, m), dtype=np.int64)
        u = edge // half
        v = (u + 1 + edge % half) % n
        mine = slice(*np.searchsorted(rewired, [lo, lo + len(edge)]))
        v[rewired[mine] - lo] = new_ends[mine]
        keys[lo : lo + len(edge)] = _pair_keys(u, v, n)
    return keys, m


def _pair_keys(u: np.ndarray, v: np.ndarray, n: int) -> np.ndarray:
    """The keys of a block of int64 pairs (u, v), either way round: min * n + max, -1 if
    u == v."""
    key = np.minimum(u, v)
    key *= n
    key += np.maximum(u, v)
    key[u == v] = -1
    return key


def _mark_repeats(keys: np.ndarray, count: int) -> int:
    """Set every repeat of a key in ``keys[:count]`` after its first to -1, using
    ``keys[count : 2 * count]`` as room for a sorted copy; returns the number of distinct
    keys (other than -1) left."""
    ordered = keys[count : 2 * count]
    ordered[:] = keys[:count]
    ordered.sort()
    distinct = count - int(np.searchsorted(ordered, 0))
    repeated = [np.empty(0, dtype=np.int64)]
    for lo in range(1, count, BLOCK):
        block = ordered[lo : lo + BLOCK]
        again = block[(block == ordered[lo - 1 : lo - 1 + len(block)]) & (block >= 0)]
        distinct -= len(again)
        repeated.append(again)
    values = np.unique(np.concatenate(repeated))  # the keys drawn more than once
    if len(values):
        places = []
        for lo in range(0, count, BLOCK):
            block = keys[lo : min(lo + BLOCK, count)]
            found = values[np.searchsorted(values, block).clip(max=len(values) - 1)] == block
            places.append(np.flatnonzero(found) + lo)
        where = np.concatenate(places)
        _, first = np.unique(keys[where], return_index=True)
        later = np.ones(len(where), dtype=bool)
        later[first] = False
        keys[where[later]] = -1
    return distinct


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


def adjacency(edge_list: np.ndarray, n: int) -> Adjacency:
    """The :class:`Adjacency` of an (m, 2) edge list (repeats and self-loops dropped)."""
    m = len(edge_list)
    keys = np.empty(2 * m, dtype=np.int64)
    for lo in range(0, m, BLOCK):
        pairs = edge_list[lo : lo + BLOCK].astype(np.int64)
        keys[lo : lo + len(pairs)] = _pair_keys(pairs[:, 0], pairs[:, 1], n)
    return _from_keys(keys, m, n)


def _from_keys(keys: np.ndarray, m: int, n: int, ordered: bool = False) -> Adjacency:
    """The adjacency from ``keys[:m]``, each edge as u * n + v with u < v (-1: no edge), using
    the rest of ``keys`` (m more) for the edges' reverses: sorted in place, repeats dropped, so
    the temporaries are these keys (16 bytes an edge) and the result. ``ordered``: the keys
    come nearly in order (a ring's), so a stable sort is the faster.

    The sorts give the same arrays whatever their kind (equal keys are equal numbers); the
    edges and their reverses are sorted apart and then merged by the stable sort, which finds
    the two sorted runs (docs/SCALING.md has the times)."""
    edges_ = keys[:m]
    edges_.sort(kind="stable" if ordered else "quicksort")
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
        u, v = _ends(keys[lo : min(lo + BLOCK, kept)], n)
        v *= n
        v += u
        keys[kept + lo : kept + lo + len(v)] = v
    keys[kept : 2 * kept].sort(kind="stable" if ordered else "quicksort")
    both = keys[: 2 * kept]
    both.sort(kind="stable")  # two sorted runs: merged
    entries = len(both)
    indices = np.empty(entries, dtype=np.int32)
    for lo in range(0, entries, BLOCK):
        contact = _ends(both[lo : lo + BLOCK], n)[1]
        indices[lo : lo + len(contact)] = contact
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
