from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.sparse as sp

import semid_assets.core.collaborative.swing as swing_module
from semid_assets.core.collaborative.swing import swing_similarity, top_k_neighbours

# Hand-computed example: users A, B, C, D = 0..3; items 0..4.
#   I_A = {0, 1, 2}   I_B = {0, 1, 3}   I_C = {1, 2, 3}   I_D = {0, 1, 2, 4}
#   U_0 = {A, B, D}   U_1 = {A, B, C, D}   U_2 = {A, C, D}   U_3 = {B, C}   U_4 = {D}
#   |I_u ∩ I_v|: AB = |{0,1}| = 2, AC = |{1,2}| = 2, AD = |{0,1,2}| = 3,
#                BC = |{1,3}| = 2, BD = |{0,1}| = 2, CD = |{1,2}| = 2
# Ordered pairs, so each unordered user pair counts twice.
_EDGES = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 3), (2, 1), (2, 2), (2, 3),
          (3, 0), (3, 1), (3, 2), (3, 4)]


def _example() -> tuple[np.ndarray, np.ndarray]:
    users, items = np.array(_EDGES).T
    return users, items


def test_hand_computed_unweighted() -> None:
    # alpha = 1, w = 1:
    #   s(0,1): U_0∩U_1 = {A,B,D}: AB 1/3 + AD 1/4 + BD 1/3 = 11/12, ×2 = 11/6
    #   s(0,2): {A,D}: AD 1/4, ×2 = 1/2
    #   s(1,2): {A,C,D}: AC 1/3 + AD 1/4 + CD 1/3 = 11/12, ×2 = 11/6
    #   s(1,3): {B,C}: BC 1/3, ×2 = 2/3
    #   every pair with item 4, and (0,3), (2,3), share at most one user → 0
    users, items = _example()
    s = swing_similarity(users, items, 4, 5, alpha=1.0, user_weight_power=0.0).toarray()
    expected = np.zeros((5, 5))
    for (i, j), value in {(0, 1): 11 / 6, (0, 2): 1 / 2, (1, 2): 11 / 6, (1, 3): 2 / 3}.items():
        expected[i, j] = expected[j, i] = value
    np.testing.assert_allclose(s, expected, rtol=1e-12, atol=0)


def test_hand_computed_weighted() -> None:
    # power 0.5: w_A = w_B = w_C = 1/√3 (3 items), w_D = 1/2 (4 items)
    #   w_A w_B = w_A w_C = w_B w_C = 1/3;  w_x w_D = 1/(2√3)
    #   s(0,1): AB (1/3)/3 + AD (1/(2√3))/4 + BD (1/(2√3))/3 = 1/9 + 7/(24√3), ×2 = 2/9 + 7/(12√3)
    #   s(0,2): AD (1/(2√3))/4 = 1/(8√3), ×2 = 1/(4√3)
    #   s(1,2): AC 1/9 + AD 1/(8√3) + CD 1/(6√3) = same as s(0,1)
    #   s(1,3): BC (1/3)/3 = 1/9, ×2 = 2/9
    users, items = _example()
    s = swing_similarity(users, items, 4, 5, alpha=1.0, user_weight_power=0.5).toarray()
    r3 = math.sqrt(3)
    expected = np.zeros((5, 5))
    for (i, j), value in {(0, 1): 2 / 9 + 7 / (12 * r3), (0, 2): 1 / (4 * r3),
                          (1, 2): 2 / 9 + 7 / (12 * r3), (1, 3): 2 / 9}.items():
        expected[i, j] = expected[j, i] = value
    np.testing.assert_allclose(s, expected, rtol=1e-12, atol=0)


def test_alpha_enters_denominator() -> None:
    # alpha = 2, w = 1: s(1,3) = 2 × 1/(2 + 2) = 1/2; s(0,2) = 2 × 1/(2 + 3) = 2/5
    users, items = _example()
    s = swing_similarity(users, items, 4, 5, alpha=2.0, user_weight_power=0.0)
    assert s[1, 3] == pytest.approx(0.5)
    assert s[0, 2] == pytest.approx(0.4)


def test_duplicates_count_once_and_unused_indices_are_fine() -> None:
    users, items = _example()
    base = swing_similarity(users, items, 4, 5)
    dup = swing_similarity(np.concatenate((users, users[:5])), np.concatenate((items, items[:5])), 10, 8)
    assert dup.shape == (8, 8)
    np.testing.assert_array_equal(dup[:5, :5].toarray(), base.toarray())
    assert dup[5:].nnz == 0


def _brute_force(users, items, n_items, alpha, power, cap, recency):
    latest: dict[tuple[int, int], float] = {}
    for row, edge in enumerate(zip(users.tolist(), items.tolist())):
        r = row if recency is None else recency[row]
        latest[edge] = max(latest.get(edge, r), r)
    by_item: dict[int, list[tuple[float, int]]] = {}
    for (u, i), r in latest.items():
        by_item.setdefault(i, []).append((r, u))
    u_sets = {i: {u for _, u in sorted(lst, key=lambda t: (-t[0], t[1]))[:cap]} for i, lst in by_item.items()}
    i_sets: dict[int, set[int]] = {}
    for i, us in u_sets.items():
        for u in us:
            i_sets.setdefault(u, set()).add(i)
    w = {u: len(s) ** -power for u, s in i_sets.items()}
    out = np.zeros((n_items, n_items))
    for i, j in itertools.permutations(u_sets, 2):
        common = u_sets[i] & u_sets[j]
        for u, v in itertools.permutations(common, 2):
            out[i, j] += w[u] * w[v] / (alpha + len(i_sets[u] & i_sets[v]))
    return out


def test_matches_brute_force_symmetric_zero_diagonal() -> None:
    rng = np.random.default_rng(7)
    for trial in range(40):
        n_users, n_items, n = int(rng.integers(2, 12)), int(rng.integers(2, 9)), int(rng.integers(1, 60))
        users, items = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
        recency = rng.integers(0, 4, n) if trial % 2 else None
        alpha, power, cap = [0.5, 1.0, 3.0][trial % 3], [0.0, 0.5, 1.0][trial % 3], int(rng.integers(1, 7))
        s = swing_similarity(users, items, n_users, n_items, alpha=alpha, user_weight_power=power,
                             max_users_per_item=cap, recency=recency)
        assert isinstance(s, sp.csr_matrix) and s.dtype == np.float64
        np.testing.assert_allclose(s.toarray(), _brute_force(users, items, n_items, alpha, power, cap, recency),
                                   rtol=1e-12, atol=1e-15)
        assert (s != s.T).nnz == 0  # bitwise symmetric
        assert not s.diagonal().any()
        assert np.all(s.data != 0)
        assert s.has_sorted_indices


def test_chunked_work_gives_the_same_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    n = 5000
    users, items = rng.integers(0, 300, n), rng.zipf(1.4, n) % 200
    whole = swing_similarity(users, items, 300, 200, max_users_per_item=40)
    monkeypatch.setattr(swing_module, "_PAIR_ENTRY_BUDGET", 500)
    chunked = swing_similarity(users, items, 300, 200, max_users_per_item=40)
    assert whole.nnz == chunked.nnz > 0
    np.testing.assert_array_equal(whole.indices, chunked.indices)
    np.testing.assert_allclose(whole.data, chunked.data, rtol=1e-12)
    assert (chunked != chunked.T).nnz == 0


# Cap example, p = 0, alpha = 1. Users u0, u1, u2; items X = 0, Y = 1, Z = 2.
#   X: u0 @10, u1 @20, u2 @30;  Y: u0, u1 @5;  Z: u1, u2 @5.
# cap = 2 keeps the two most recent users of X, {u1, u2}:
#   I_u0 = {Y}, I_u1 = {X, Y, Z}, I_u2 = {X, Z}
#   s(X,Z): U_X∩U_Z = {u1,u2}, |I_u1∩I_u2| = 2 → 2 × 1/3 = 2/3;  s(X,Y): {u1} → 0
# Keeping the oldest {u0, u1} instead would give s(X,Y) = 2/3 and s(X,Z) = 0.
_CAP_USERS = np.array([0, 1, 2, 0, 1, 1, 2])
_CAP_ITEMS = np.array([0, 0, 0, 1, 1, 2, 2])


def test_cap_keeps_most_recent_users() -> None:
    recency = np.array([10, 20, 30, 5, 5, 5, 5])
    s = swing_similarity(_CAP_USERS, _CAP_ITEMS, 3, 3, user_weight_power=0.0, max_users_per_item=2,
                         recency=recency)
    assert s[0, 2] == pytest.approx(2 / 3)
    assert s[0, 1] == 0
    # Reverse the times of X: u0 and u1 are now the most recent.
    reverse = np.array([30, 20, 10, 5, 5, 5, 5])
    s = swing_similarity(_CAP_USERS, _CAP_ITEMS, 3, 3, user_weight_power=0.0, max_users_per_item=2,
                         recency=reverse)
    assert s[0, 1] == pytest.approx(2 / 3)
    assert s[0, 2] == 0
    # Datetimes work as recency too.
    as_dates = (np.datetime64("2024-01-01", "s") + recency).astype("datetime64[us]")
    s_dates = swing_similarity(_CAP_USERS, _CAP_ITEMS, 3, 3, user_weight_power=0.0, max_users_per_item=2,
                               recency=as_dates)
    assert s_dates[0, 2] == pytest.approx(2 / 3)


def test_cap_uses_latest_duplicate_row_order_and_ties() -> None:
    # A repeated (u0, X) at 40 makes u0 X's most recent user: X keeps {u0, u2}.
    users = np.append(_CAP_USERS, 0)
    items = np.append(_CAP_ITEMS, 0)
    s = swing_similarity(users, items, 3, 3, user_weight_power=0.0, max_users_per_item=2,
                         recency=np.array([10, 20, 30, 5, 5, 5, 5, 40]))
    #   I_u0 = {X,Y}, I_u1 = {Y,Z}, I_u2 = {X,Z}: every user pair shares one item → all zero
    assert s.nnz == 0
    # Without recency, later rows are more recent: X's rows in order u2, u1, u0 keep {u1, u0}.
    order = np.array([2, 1, 0, 3, 4, 5, 6])
    s = swing_similarity(_CAP_USERS[order], _CAP_ITEMS[order], 3, 3, user_weight_power=0.0,
                         max_users_per_item=2)
    assert s[0, 1] == pytest.approx(2 / 3) and s[0, 2] == 0
    # Equal times: the lower user indices win ({u0, u1}).
    s = swing_similarity(_CAP_USERS, _CAP_ITEMS, 3, 3, user_weight_power=0.0, max_users_per_item=2,
                         recency=np.zeros(7, dtype=np.int64))
    assert s[0, 1] == pytest.approx(2 / 3) and s[0, 2] == 0


def test_empty_input() -> None:
    s = swing_similarity(np.zeros(0, np.int64), np.zeros(0, np.int64), 0, 4)
    assert s.shape == (4, 4) and s.nnz == 0
    assert all(a.size == 0 for a in top_k_neighbours(s, 3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(user_index=np.array([0, 1]), item_index=np.array([0])), "same length"),
        (dict(user_index=np.array([0, -1]), item_index=np.array([0, 1])), "user_index has 1 value"),
        (dict(user_index=np.array([0, 1]), item_index=np.array([0, 5])), r"item_index .*n_items=3"),
        (dict(user_index=np.array([0.0, 1.0]), item_index=np.array([0, 1])), "integer indices"),
        (dict(alpha=0.0), "alpha must be"),
        (dict(alpha=-1.0), "alpha must be"),
        (dict(user_weight_power=-0.5), "user_weight_power"),
        (dict(max_users_per_item=0), "max_users_per_item"),
        (dict(recency=np.array([1, 2, 3])), "recency must be"),
        (dict(n_users=-1), "n_users"),
    ],
)
def test_input_validation(kwargs: dict, message: str) -> None:
    args = dict(user_index=np.array([0, 1]), item_index=np.array([0, 1]), n_users=2, n_items=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        swing_similarity(args.pop("user_index"), args.pop("item_index"), args.pop("n_users"),
                         args.pop("n_items"), **args)


def test_top_k_ordering_and_ties() -> None:
    m = sp.csr_matrix(np.array([
        [0.0, 3.0, 1.0, 3.0, 2.0],
        [2.0, 0.0, 0.0, 0.0, 0.0],
        [5.0, 5.0, 5.0, 0.0, 7.0],
        [0.0, 0.0, 0.0, 0.0, 0.0],
        [1.0, 0.0, 9.0, 0.0, 0.0],
    ]))
    rows, cols, scores = top_k_neighbours(m, 2)
    assert rows.tolist() == [0, 0, 1, 2, 2, 4, 4]
    assert cols.tolist() == [1, 3, 0, 4, 0, 2, 0]  # equal scores: lower column first
    assert scores.tolist() == [3.0, 3.0, 2.0, 7.0, 5.0, 9.0, 1.0]
    rows, cols, _ = top_k_neighbours(m, 3)
    assert cols[rows == 0].tolist() == [1, 3, 4]
    assert cols[rows == 2].tolist() == [4, 0, 1]
    assert top_k_neighbours(m, 0)[0].size == 0
    with pytest.raises(ValueError, match="k must be"):
        top_k_neighbours(m, -1)


def test_top_k_matches_reference_sort() -> None:
    rng = np.random.default_rng(11)
    dense = rng.integers(-2, 4, (40, 30)).astype(float) * (rng.random((40, 30)) < 0.4)
    rows, cols, scores = top_k_neighbours(sp.csr_matrix(dense), 4)
    expected = []
    for i in range(dense.shape[0]):
        entries = sorted((-dense[i, j], j) for j in range(dense.shape[1]) if dense[i, j] != 0)[:4]
        expected += [(i, j, -neg) for neg, j in entries]
    assert list(zip(rows.tolist(), cols.tolist(), scores.tolist())) == expected


def test_deterministic() -> None:
    rng = np.random.default_rng(5)
    n = 20_000
    users, items = rng.integers(0, 500, n), rng.zipf(1.3, n) % 400
    recency = rng.integers(0, 1000, n)
    a = swing_similarity(users, items, 500, 400, max_users_per_item=30, recency=recency)
    b = swing_similarity(users, items, 500, 400, max_users_per_item=30, recency=recency)
    for name in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    ta, tb = top_k_neighbours(a, 5), top_k_neighbours(b, 5)
    for x, y in zip(ta, tb):
        np.testing.assert_array_equal(x, y)
