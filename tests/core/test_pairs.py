from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from semid_assets.core.collaborative.pairs import PAIR_COLUMNS, PairConfig, build_item_pairs

T0 = pd.Timestamp("2024-03-01")
UNWEIGHTED = PairConfig(user_weight_power=0.0)


def _log(rows: list[tuple]) -> pd.DataFrame:
    """(user, item, minute[, label]) rows as an interaction table."""
    frame = pd.DataFrame([r if len(r) == 4 else (*r, 1) for r in rows],
                         columns=["user_id", "item_id", "minute", "label"])
    frame["ts"] = (T0 + pd.to_timedelta(frame.pop("minute"), unit="min")).astype("datetime64[us]")
    frame["label"] = frame["label"].astype(np.int8)
    return frame[["user_id", "item_id", "ts", "label"]]


def _rows(pairs: pd.DataFrame, source: str) -> dict[tuple, tuple]:
    part = pairs[pairs["source"] == source]
    return {(a, b): (s, c) for a, b, s, c in part[["item_a", "item_b", "score", "count"]].itertuples(index=False)}


CATALOGUE = np.array(["a", "b", "c", "d", "e", "f"], dtype=object)


def _planted() -> pd.DataFrame:
    # g1..g3 watch a then b; h1..h3 watch c then d; T watches c, a, b.
    # Swing (w = 1, alpha = 1):
    #   s(a,b): U_a∩U_b = {g1,g2,g3,T}; every pair shares exactly {a,b} → 4·3 ordered pairs × 1/3 = 4
    #   s(c,d): {h1,h2,h3}, pairs share {c,d} → 3·2 × 1/3 = 2
    #   s(a,c), s(b,c): the only common user is T → 0
    # u2i (all positives are targets):
    #   g_i: target b, candidate a → (a,b); target a has no history        → 3 × (a,b)
    #   h_i: target d, candidate c → (c,d)                                 → 3 × (c,d)
    #   T:   target a, candidate c: s = 0 → skipped; target b, candidates a (4) and c (0) → (a,b)
    rows = [(g, "a", 1) for g in ("g1", "g2", "g3")] + [(g, "b", 2) for g in ("g1", "g2", "g3")]
    rows += [(h, "c", 1) for h in ("h1", "h2", "h3")] + [(h, "d", 2) for h in ("h1", "h2", "h3")]
    rows += [("T", "c", 10), ("T", "a", 11), ("T", "b", 12)]
    rows += [("T", "e", 13, 0), ("g1", "f", 3, 0)]  # negatives play no part
    return _log(rows)


def test_planted_pairs() -> None:
    pairs, stats = build_item_pairs(_planted(), CATALOGUE, UNWEIGHTED)
    assert list(pairs.columns) == list(PAIR_COLUMNS)
    approx = pytest.approx
    assert _rows(pairs, "u2i") == {("a", "b"): (approx(4.0), 4), ("c", "d"): (approx(2.0), 3)}
    # Each item lists the other as its only neighbour: both directions, count 2.
    assert _rows(pairs, "swing") == {("a", "b"): (approx(4.0), 2), ("c", "d"): (approx(2.0), 2)}
    assert stats["n_positive_interactions"] == 15
    assert stats["n_users"] == 7
    assert stats["n_items_with_pairs"] == 4
    assert stats["pairs_u2i"] == 2 and stats["pairs_swing"] == 2 and stats["pairs_overlap"] == 2
    assert stats["swing_nnz"] == 4
    assert stats["n_targets"] == 15


def test_target_start_restricts_targets_not_history() -> None:
    # Only T's b (minute 12) is a target; its history (a, c) lies before target_start.
    pairs, stats = build_item_pairs(_planted(), CATALOGUE, UNWEIGHTED, target_start=T0 + pd.Timedelta(minutes=12))
    assert _rows(pairs, "u2i") == {("a", "b"): (pytest.approx(4.0), 1)}
    assert stats["n_targets"] == 1


def test_item_order_follows_catalogue_positions() -> None:
    catalogue = np.array(["d", "b", "f", "a", "c", "e"], dtype=object)
    pairs, _ = build_item_pairs(_planted(), catalogue, UNWEIGHTED)
    assert set(_rows(pairs, "u2i")) == {("b", "a"), ("d", "c")}
    # Sorted by catalogue position of item_a, then item_b, then source.
    assert pairs[["item_a", "item_b", "source"]].astype(str).values.tolist() == [
        ["d", "c", "swing"], ["d", "c", "u2i"], ["b", "a", "swing"], ["b", "a", "u2i"]]


def _window_log(extra_between: int) -> pd.DataFrame:
    # k1..k3 co-watch w and x → s(w,x) = 3·2 × 1/3 = 2. User R watches x, then `extra_between`
    # unrelated items (y0, y1, ...; nobody else watches them, so s(w, y_i) = 0), then w.
    rows = [(k, "w", 0) for k in ("k1", "k2", "k3")] + [(k, "x", 1) for k in ("k1", "k2", "k3")]
    rows += [("R", "x", 10)] + [("R", f"y{i}", 11 + i) for i in range(extra_between)]
    rows += [("R", "w", 100)]
    return _log(rows)


@pytest.mark.parametrize(("between", "history", "found"), [(2, 2, False), (2, 3, True), (1, 2, True), (0, 1, True)])
def test_recent_window(between: int, history: int, found: bool) -> None:
    frame = _window_log(between)
    catalogue = np.array(["w", "x"] + [f"y{i}" for i in range(between)], dtype=object)
    config = PairConfig(user_weight_power=0.0, u2i_history=history)
    pairs, _ = build_item_pairs(frame, catalogue, config, target_start=T0 + pd.Timedelta(minutes=100))
    assert (("w", "x") in _rows(pairs, "u2i")) is found
    assert len(_rows(pairs, "u2i")) == int(found)


def test_partner_ties_prefer_most_recent_candidate() -> None:
    # s(t,p) = s(t,q) = 2 (k-users co-watch t with p, m-users co-watch t with q).
    # R watches p, then q, then t: both score 2, the more recent (q) wins.
    rows = [(k, "t", 0) for k in ("k1", "k2", "k3")] + [(k, "p", 1) for k in ("k1", "k2", "k3")]
    rows += [(m, "t", 0) for m in ("m1", "m2", "m3")] + [(m, "q", 1) for m in ("m1", "m2", "m3")]
    rows += [("R", "p", 10), ("R", "q", 11), ("R", "t", 12)]
    catalogue = np.array(["t", "p", "q"], dtype=object)
    pairs, _ = build_item_pairs(_log(rows), catalogue, UNWEIGHTED, target_start=T0 + pd.Timedelta(minutes=12))
    assert set(_rows(pairs, "u2i")) == {("t", "q")}


def test_same_timestamp_breaks_ties_by_catalogue_order() -> None:
    # R watches a and b in the same minute: with a before b in the catalogue, a is history for b.
    rows = [(g, "a", 0) for g in ("g1", "g2")] + [(g, "b", 1) for g in ("g1", "g2")] + [("R", "b", 5), ("R", "a", 5)]
    start = T0 + pd.Timedelta(minutes=5)
    pairs, stats = build_item_pairs(_log(rows), np.array(["a", "b"], dtype=object), UNWEIGHTED, target_start=start)
    assert _rows(pairs, "u2i") == {("a", "b"): (pytest.approx(6 * 1 / 3), 1)}
    assert stats["n_targets"] == 2


def test_no_self_pairs_even_with_negative_min_score() -> None:
    # R re-watches a; with min_score < 0 a zero score would pass, but an item never pairs with itself.
    rows = [("R", "a", 1), ("R", "a", 2), ("S", "a", 1), ("S", "b", 2)]
    config = PairConfig(min_score=-1.0)
    pairs, _ = build_item_pairs(_log(rows), np.array(["a", "b"], dtype=object), config)
    assert not (pairs["item_a"] == pairs["item_b"]).any()
    # S: target b, candidate a with score 0 > -1 → kept; R's second a has only itself → skipped.
    assert _rows(pairs, "u2i") == {("a", "b"): (0.0, 1)}


def test_min_score_drops_weak_pairs() -> None:
    pairs, stats = build_item_pairs(_planted(), CATALOGUE, PairConfig(user_weight_power=0.0, min_score=3.0))
    assert set(_rows(pairs, "u2i")) == {("a", "b")}
    assert set(_rows(pairs, "swing")) == {("a", "b")}


def test_one_row_per_pair_and_source_on_random_log() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    catalogue = np.array([f"i{j:03d}" for j in range(150)], dtype=object)
    frame = pd.DataFrame({
        "user_id": rng.integers(0, 120, n),
        "item_id": catalogue[rng.zipf(1.5, n) % 150],
        "ts": (T0 + pd.to_timedelta(rng.integers(0, 10_000, n), unit="min")).astype("datetime64[us]"),
        "label": (rng.random(n) < 0.5).astype(np.int8),
    })
    config = PairConfig(swing_top_k=5, u2i_history=5)
    pairs, stats = build_item_pairs(frame, catalogue, config)
    assert not pairs.duplicated(["item_a", "item_b", "source"]).any()
    pos = pd.Index(catalogue)
    assert (pos.get_indexer(pairs["item_a"]) < pos.get_indexer(pairs["item_b"])).all()
    assert (pairs["score"] > 0).all() and (pairs["count"] >= 1).all()
    swing = pairs[pairs["source"] == "swing"]
    assert (swing["count"] <= 2).all()
    assert stats["pairs_swing"] + stats["pairs_u2i"] == len(pairs) == stats["pairs_total"]
    both = pairs.groupby(["item_a", "item_b"], observed=True)["source"].nunique()
    assert stats["pairs_overlap"] == int((both == 2).sum())
    assert pairs["score"].dtype == np.float64 and pairs["count"].dtype == np.int64

    # Deterministic, and independent of row order.
    again, _ = build_item_pairs(frame.sample(frac=1.0, random_state=1), catalogue, config)
    pd.testing.assert_frame_equal(pairs, again)


def test_empty_inputs() -> None:
    only_negatives = _log([("u", "a", 1, 0), ("v", "b", 2, 0)])
    for frame in (only_negatives, only_negatives.iloc[:0],
                  pd.DataFrame(columns=["user_id", "item_id", "ts", "label"])):
        pairs, stats = build_item_pairs(frame, CATALOGUE)
        assert list(pairs.columns) == list(PAIR_COLUMNS) and len(pairs) == 0
        assert pairs["item_a"].dtype == CATALOGUE.dtype
        assert isinstance(pairs["source"].dtype, pd.CategoricalDtype)
        assert pairs["score"].dtype == np.float64 and pairs["count"].dtype == np.int64
        assert stats["n_positive_interactions"] == 0 and stats["pairs_total"] == 0


def test_integer_catalogue_ids() -> None:
    frame = _planted()
    mapping = {k: v for v, k in enumerate(CATALOGUE)}
    frame["item_id"] = frame["item_id"].map(mapping).astype(np.int64) + 100
    pairs, _ = build_item_pairs(frame, np.arange(100, 106, dtype=np.int64), UNWEIGHTED)
    assert pairs["item_a"].dtype == np.int64
    assert set(_rows(pairs, "u2i")) == {(100, 101), (102, 103)}


def test_validation() -> None:
    frame = _planted()
    with pytest.raises(ValueError, match=r"2 interaction\(s\) of 17 reference item ids not in item_ids"):
        build_item_pairs(frame, CATALOGUE[CATALOGUE != "e"][:-1])
    with pytest.raises(ValueError, match="missing column"):
        build_item_pairs(frame.drop(columns="ts"), CATALOGUE)
    with pytest.raises(ValueError, match="duplicated"):
        build_item_pairs(frame, np.append(CATALOGUE, "a"))
    with pytest.raises(ValueError, match="numeric dtype"):
        build_item_pairs(frame.assign(ts=np.arange(len(frame))), CATALOGUE)
    with pytest.raises(ValueError, match="u2i_history"):
        PairConfig(u2i_history=-1)
    with pytest.raises(ValueError, match="alpha"):
        build_item_pairs(frame, CATALOGUE, PairConfig(swing_alpha=0.0))


def test_u2i_matches_reference_loop() -> None:
    from semid_assets.core.collaborative.swing import swing_similarity

    rng = np.random.default_rng(4)
    n, n_items = 1500, 60
    catalogue = np.array([f"i{j:02d}" for j in range(n_items)], dtype=object)
    frame = pd.DataFrame({
        "user_id": rng.integers(0, 40, n),
        "item_id": catalogue[rng.zipf(1.3, n) % n_items],
        "ts": (T0 + pd.to_timedelta(rng.integers(0, 300, n), unit="min")).astype("datetime64[us]"),
        "label": (rng.random(n) < 0.6).astype(np.int8),
    })
    config = PairConfig(u2i_history=4, min_score=0.05, swing_top_k=0)
    start = T0 + pd.Timedelta(minutes=150)
    pairs, _ = build_item_pairs(frame, catalogue, config, target_start=start)

    pos = frame[frame["label"] == 1].assign(item=lambda f: pd.Index(catalogue).get_indexer(f["item_id"]))
    users = pd.factorize(pos["user_id"], sort=True)[0]
    s = swing_similarity(users, pos["item"].to_numpy(), users.max() + 1, n_items,
                         recency=pos["ts"].to_numpy().view(np.int64)).toarray()
    expected: dict[tuple, int] = {}
    for _, hist in pos.sort_values(["user_id", "ts", "item"]).groupby("user_id"):
        items, times = hist["item"].tolist(), hist["ts"].tolist()
        for t in range(len(items)):
            if times[t] < start:
                continue
            best, partner = -np.inf, None
            for c in range(t - 1, max(t - 1 - config.u2i_history, -1), -1):  # most recent first
                if items[c] != items[t] and s[items[t], items[c]] > best:
                    best, partner = s[items[t], items[c]], items[c]
            if partner is not None and best > config.min_score:
                key = (catalogue[min(partner, items[t])], catalogue[max(partner, items[t])])
                expected[key] = expected.get(key, 0) + 1
    got = {k: c for k, (_, c) in _rows(pairs, "u2i").items()}
    assert len(expected) > 10
    assert got == expected
    assert _rows(pairs, "swing") == {}
