"""The social network generator: a valid simple graph of the requested kind and mean degree."""

from __future__ import annotations

import hashlib

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

from cxsim import network
from cxsim.network import adjacency, edges, graph
from cxsim.scenario import Network, NetworkKind

KINDS = list(NetworkKind)
LINKED = [k for k in KINDS if k is not NetworkKind.well_mixed]
N, K = 2000, 10


def make(kind: NetworkKind, n: int = N, k: float = K, seed: int = 7, **extra) -> np.ndarray:
    return edges(Network(kind=kind, mean_degree=k, **extra), n, np.random.default_rng(seed))


def degrees(e: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(e.ravel(), minlength=n)


def assert_simple_graph(e: np.ndarray, n: int) -> None:
    """(m, 2) integers, u < v, ids in 0..n-1, no self-loops, no edge twice."""
    assert e.ndim == 2 and e.shape[1] == 2
    assert np.issubdtype(e.dtype, np.integer)
    if len(e) == 0:
        return
    assert e.min() >= 0 and e.max() < n
    assert np.all(e[:, 0] < e[:, 1])  # also rules out self-loops
    assert len(np.unique(e[:, 0] * n + e[:, 1])) == len(e)


def lattice_edges(n: int, half: int) -> set[tuple[int, int]]:
    out = set()
    for i in range(n):
        for d in range(1, half + 1):
            j = (i + d) % n
            out.add((min(i, j), max(i, j)))
    return out


# --- every kind: a simple graph ---------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.value)
def test_edges_form_a_simple_graph_with_u_below_v(kind):
    assert_simple_graph(make(kind), N)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    n=st.integers(0, 300),
    k=st.floats(0, 40, allow_nan=False),
    rewiring=st.floats(0, 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_size_and_degree_gives_a_simple_graph(kind, n, k, rewiring, seed):
    e = make(kind, n, k, seed, rewiring=rewiring)
    assert_simple_graph(e, n)
    assert len(e) <= n * (n - 1) // 2


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.value)
@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_people_have_no_edges(kind, n):
    e = make(kind, n)
    assert e.shape == (0, 2)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.value)
def test_zero_mean_degree_has_no_edges(kind):
    assert make(kind, k=0).shape == (0, 2)


# --- mean degree ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", LINKED, ids=lambda k: k.value)
def test_mean_degree_within_10_percent_of_requested(kind):
    e = make(kind)
    mean = 2 * len(e) / N
    assert mean == pytest.approx(K, rel=0.10)


def test_well_mixed_has_no_edges():
    assert make(NetworkKind.well_mixed).shape == (0, 2)


def test_erdos_renyi_has_exactly_n_k_over_2_edges():
    assert len(make(NetworkKind.erdos_renyi)) == N * K // 2
    assert len(make(NetworkKind.erdos_renyi, n=1001, k=3)) == round(1001 * 3 / 2)


@pytest.mark.parametrize(("n", "k"), [(20, 10), (50, 10), (10, 8), (30, 25)])
def test_erdos_renyi_keeps_the_mean_degree_in_small_dense_networks(n, k):
    e = make(NetworkKind.erdos_renyi, n, k)
    assert_simple_graph(e, n)
    assert len(e) == round(n * k / 2)


def test_erdos_renyi_asking_for_more_than_everyone_gives_the_complete_graph():
    e = make(NetworkKind.erdos_renyi, n=12, k=50)
    assert len(e) == 12 * 11 // 2


def test_erdos_renyi_degrees_are_poisson_like():
    d = degrees(make(NetworkKind.erdos_renyi), N)
    assert d.var() == pytest.approx(K, rel=0.15)  # Poisson: variance = mean
    assert d.max() < 3 * K


def test_ring_and_barabasi_albert_honour_another_even_degree():
    for kind in (NetworkKind.ring, NetworkKind.barabasi_albert):
        mean = 2 * len(make(kind, k=6)) / N
        assert mean == pytest.approx(6, rel=0.05), kind


# --- ring and Watts-Strogatz ------------------------------------------------------------------


def test_ring_is_regular_with_the_requested_degree():
    d = degrees(make(NetworkKind.ring), N)
    assert np.all(d == K)


def test_ring_links_each_person_to_the_k_nearest_around_the_circle():
    e = make(NetworkKind.ring)
    assert set(map(tuple, e.tolist())) == lattice_edges(N, K // 2)


def test_ring_smaller_than_its_degree_is_the_complete_graph():
    e = make(NetworkKind.ring, n=7, k=10)
    assert len(e) == 7 * 6 // 2


def test_ring_ignores_the_seed():
    assert np.array_equal(make(NetworkKind.ring, seed=1), make(NetworkKind.ring, seed=2))


def test_watts_strogatz_without_rewiring_is_the_ring():
    ws = make(NetworkKind.watts_strogatz, rewiring=0.0, seed=3)
    assert np.array_equal(ws, make(NetworkKind.ring, seed=4))


def test_watts_strogatz_rewires_about_the_requested_share_of_edges():
    e = make(NetworkKind.watts_strogatz, rewiring=0.1)
    lattice = lattice_edges(N, K // 2)
    shortcuts = sum(1 for pair in map(tuple, e.tolist()) if pair not in lattice)
    assert shortcuts / len(e) == pytest.approx(0.1, abs=0.02)


@pytest.mark.parametrize("rewiring", [0.5, 1.0])
def test_watts_strogatz_rewiring_keeps_each_persons_own_half_of_contacts(rewiring):
    # A rewired edge keeps its first end, so each person keeps the k/2 edges it started, bar
    # the rare rewiring onto itself or onto an existing contact.
    d = degrees(make(NetworkKind.watts_strogatz, rewiring=rewiring), N)
    assert d.min() >= K // 2 - 1
    assert d.mean() == pytest.approx(K, rel=0.10)


# --- Barabasi-Albert --------------------------------------------------------------------------


def test_barabasi_albert_degrees_are_heavy_tailed():
    d = degrees(make(NetworkKind.barabasi_albert), N)
    er = degrees(make(NetworkKind.erdos_renyi), N)
    assert d.max() > 10 * d.mean()  # hubs
    assert d.max() > 5 * er.max()  # far beyond a random graph of the same size
    assert d.var() > 5 * er.var()


def test_barabasi_albert_early_nodes_become_hubs():
    d = degrees(make(NetworkKind.barabasi_albert), N)
    assert d[: N // 100].mean() > 5 * d[N // 2 :].mean()


def test_barabasi_albert_everyone_has_a_contact():
    d = degrees(make(NetworkKind.barabasi_albert), N)
    assert d.min() >= 1


def test_barabasi_albert_is_connected():
    g = graph(make(NetworkKind.barabasi_albert), N)
    assert nx.is_connected(g)


# --- randomness -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.value)
def test_same_seed_gives_the_same_edges(kind):
    assert np.array_equal(make(kind, seed=11), make(kind, seed=11))


@pytest.mark.parametrize(
    "kind",
    [NetworkKind.watts_strogatz, NetworkKind.barabasi_albert, NetworkKind.erdos_renyi],
    ids=lambda k: k.value,
)
def test_different_seeds_give_different_edges(kind):
    a, b = make(kind, seed=11), make(kind, seed=12)
    assert not np.array_equal(a, b)
    shared = set(map(tuple, a.tolist())) & set(map(tuple, b.tolist()))
    if kind is NetworkKind.erdos_renyi:
        assert len(shared) < 0.05 * len(a)


# --- adjacency and graph ----------------------------------------------------------------------


def as_scipy(a: network.Adjacency) -> sparse.csr_matrix:
    return sparse.csr_matrix((np.ones(len(a.indices), np.int32), a.indices, a.indptr), a.shape)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.value)
def test_adjacency_is_symmetric_with_two_entries_per_edge(kind):
    e = make(kind)
    a = adjacency(e, N)
    assert a.shape == (N, N)
    assert a.indptr.dtype == np.int32 and a.indices.dtype == np.int32
    assert len(a.indices) == 2 * len(e)
    m = as_scipy(a)
    assert m.has_sorted_indices  # each person's contacts in ascending order
    assert (m != m.T).nnz == 0
    assert m.diagonal().sum() == 0
    assert np.array_equal(a.degree(), degrees(e, N))


def test_adjacency_times_a_vector_counts_neighbours():
    e = np.array([[0, 1], [0, 2], [2, 3]])
    a = adjacency(e, 5)
    flags = np.array([0, 1, 1, 0, 0], dtype=np.float32)
    assert (a @ flags).tolist() == [2.0, 0.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("block", [7, 1 << 22], ids=["small blocks", "one block"])
@pytest.mark.parametrize("kind", LINKED, ids=lambda k: k.value)
def test_contacts_are_the_edge_lists_network_from_the_same_draws(kind, block, monkeypatch):
    """The vector engine's adjacency, built without the edge list, is the same network and
    leaves the generator where the edge list does (the people drawn next are the same); and its
    product is scipy's, also where blocks of rows end and rows are empty."""
    monkeypatch.setattr(network, "BLOCK", block)
    for n, k, extra in [(N, K, {}), (3, 4, {}), (301, 30, {"rewiring": 0.9}), (50, 0, {})]:
        if extra and kind is not NetworkKind.watts_strogatz:
            continue
        spec = Network(kind=kind, mean_degree=k, **extra)
        via_edges, direct = np.random.default_rng(3), np.random.default_rng(3)
        want = as_scipy(adjacency(edges(spec, n, via_edges), n))
        got = network.contacts(spec, n, direct)
        assert np.array_equal(got.indptr, want.indptr)
        assert np.array_equal(got.indices, want.indices)
        assert direct.random() == via_edges.random()
        voices = np.random.default_rng(4).integers(-(2**20), 2**20, n).astype(np.int32)
        product = got @ voices
        assert product.dtype == np.int32 and np.array_equal(product, want @ voices)


RANDOM = [NetworkKind.erdos_renyi, NetworkKind.barabasi_albert]


@pytest.mark.parametrize("block", [5, 1 << 22], ids=["small blocks", "one block"])
@pytest.mark.parametrize("kind", RANDOM, ids=lambda k: k.value)
def test_random_kinds_contacts_are_the_edge_lists_network_and_leave_the_same_state(
    kind, block, monkeypatch
):
    """Erdos-Renyi and Barabasi-Albert contacts, built from sort keys, are the edge list's
    network from the same draws, leaving the generator in the same state: tiny and two-person
    networks, small dense ones where the pairs are drawn again until m are distinct, more than
    half of all pairs (picked directly), a mean degree beyond the population, a degree under
    one edge, and blocks ending inside the draws."""
    monkeypatch.setattr(network, "BLOCK", block)
    sizes = [(2, 1), (2, 10), (3, 2), (5, 3), (12, 50), (20, 10), (50, 10), (60, 30),
             (100, 45), (301, 6.5), (1000, 0.0004), (N, K)]  # fmt: skip
    for n, k in sizes:
        for seed in (0, 1, 2, 3):
            spec = Network(kind=kind, mean_degree=k)
            via_edges, direct = np.random.default_rng(seed), np.random.default_rng(seed)
            want = adjacency(edges(spec, n, via_edges), n)
            got = network.contacts(spec, n, direct)
            assert np.array_equal(got.indptr, want.indptr), (n, k, seed)
            assert np.array_equal(got.indices, want.indices), (n, k, seed)
            assert direct.bit_generator.state == via_edges.bit_generator.state, (n, k, seed)


EDGES_BEFORE = {  # commit b11dd9cd, before the random kinds were built from sort keys
    ("erdos_renyi", 2000, 10): "dd3889b082233136",
    ("erdos_renyi", 50, 10): "dbf7f7968b93f32c",  # pairs drawn again until 250 are distinct
    ("erdos_renyi", 12, 50): "ea76fc3713dcd72f",  # the complete graph, picked directly
    ("barabasi_albert", 2000, 10): "7eaa5d7c49f3ea69",
    ("barabasi_albert", 3, 4): "2f788123f3d0d739",
    ("watts_strogatz", 2000, 10): "b63331a0a4a3f723",
}


@pytest.mark.parametrize(("kind", "n", "k"), list(EDGES_BEFORE))
def test_the_edge_lists_and_the_draws_after_them_are_those_of_before(kind, n, k):
    """Every result is bit-identical from a seed: the edges, in their order, and the numbers
    drawn after them are those the generators made before (a sha256 of both)."""
    rng = np.random.default_rng(11)
    extra = {"rewiring": 0.1} if kind == "watts_strogatz" else {}
    e = edges(Network(kind=NetworkKind(kind), mean_degree=k, **extra), n, rng)
    after = rng.integers(0, 2**62, 4)
    digest = hashlib.sha256(e.astype("<i8").tobytes() + after.astype("<i8").tobytes())
    assert digest.hexdigest()[:16] == EDGES_BEFORE[kind, n, k]


def test_well_mixed_has_no_contacts_to_keep():
    spec = Network(kind=NetworkKind.well_mixed)
    assert network.contacts(spec, N, np.random.default_rng(0)) is None


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.value)
def test_graph_has_all_n_people_and_the_same_edges(kind):
    e = make(kind)
    g = graph(e, N)
    assert g.number_of_nodes() == N
    assert set(g.nodes) == set(range(N))
    assert g.number_of_edges() == len(e)
    assert {(min(u, v), max(u, v)) for u, v in g.edges} == set(map(tuple, e.tolist()))


# --- scale ------------------------------------------------------------------------------------


def test_two_hundred_thousand_people_barabasi_albert_generates():
    n = 200_000
    e = make(NetworkKind.barabasi_albert, n=n, seed=1)
    assert_simple_graph(e, n)
    assert 2 * len(e) / n == pytest.approx(K, rel=0.05)
