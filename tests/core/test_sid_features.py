"""Hashed ids, SID n-grams and SentencePiece pieces as embedding-bag features."""

from __future__ import annotations

import numpy as np
import pytest

from semid_assets.core.evaluation.ranking_features import Unbuildable, item_input
from semid_assets.core.evaluation.sid_features import SidPieces, fold_rare_rows, hash_bags, ngram_bags, sid_strings


def _codes(n=400, k=8, seed=0):
    rng = np.random.default_rng(seed)
    c1 = rng.integers(0, k, n)
    # c2 follows c1 most of the time, so some bigrams are frequent enough to become pieces.
    c2 = np.where(rng.random(n) < 0.8, (c1 * 3) % k, rng.integers(0, k, n))
    return np.stack([c1, c2, rng.integers(0, k, n)], axis=1)


def test_hash_bags_are_stable_and_within_the_table():
    ids = np.array([f"v{i}" for i in range(1000)], dtype=object)
    bags, rows = hash_bags(ids, 64)
    assert bags.shape == (1000, 1) and rows == 64 and 0 <= bags.min() and bags.max() < 64
    assert np.array_equal(bags, hash_bags(ids.copy(), 64)[0])
    assert len(np.unique(bags)) > 50  # spread over the table


def test_ngrams_one_vocabulary_per_position_and_hashed_past_the_budget():
    codes = np.array([[1, 2, 3], [1, 2, 4]])
    uni, rows = ngram_bags(codes, 1, 8, 1000)
    assert rows == 24 and uni.tolist() == [[1, 10, 19], [1, 10, 20]]
    bi, rows = ngram_bags(codes, 2, 8, 1000)
    assert rows == 128 and bi.tolist() == [[1 * 8 + 2, 64 + 2 * 8 + 3], [10, 64 + 20]]
    hashed, rows = ngram_bags(codes, 2, 8, 50)
    assert rows == 50 and hashed.max() < 50 and hashed[0, 0] == hashed[1, 0]  # same bigram, same row
    with pytest.raises(ValueError, match="codebook size"):
        ngram_bags(np.array([[9, 0, 0]]), 1, 8, 100)


def test_spm_pieces_decode_back_to_the_sid_sequence():
    codes = _codes()
    model = SidPieces.fit(codes, 8, vocab_size=60)
    assert 24 < model.rows <= 60
    pieces = model.pieces(codes)
    for row, sid in zip(pieces, codes.tolist()):
        assert [code for piece in row for code in piece] == sid
    # Frequent runs of codes became multi-code pieces: fewer pieces than codes on average.
    assert np.mean([len(p) for p in pieces]) < 3
    bags, rows = model.bags(codes)
    assert bags.shape[0] == len(codes) and bags.max() < rows


def test_spm_is_deterministic_and_maps_unseen_codes_to_unknown():
    codes = _codes()
    a, b = SidPieces.fit(codes, 8, 60), SidPieces.fit(codes, 8, 60)
    assert a.proto == b.proto
    unseen = SidPieces.fit(codes[codes[:, 0] != 0], 8, 60).encode(np.array([[0, 0, 0]]))
    assert 0 in unseen[0]
    with pytest.raises(ValueError, match="raise it above"):
        SidPieces.fit(codes, 8, vocab_size=10)


def test_sid_strings_keep_levels_apart():
    a, b = sid_strings(np.array([[1, 2], [2, 1]]), 4)
    assert a != b and len(set(a) | set(b)) == 4


def test_unseen_and_rare_features_share_one_oov_row():
    # Rows 0..5; items 0-2 trained. Row 4 is carried by one trained item, row 5 by none.
    bags = np.array([[0, 2], [0, 3], [1, 4], [1, 5], [0, -1]])
    trained = np.array([True, True, True, False, False])
    folded = fold_rare_rows(bags, 6, trained, min_items=1)
    # Kept rows 0..4 keep their order; row 5 (no trained item) goes to the OOV row 5.
    assert folded.rows == 6 and folded.oov_row == 5 and folded.folded_rows == 1
    assert folded.bags.tolist() == [[0, 2], [0, 3], [1, 4], [1, 5], [0, -1]]
    folded = fold_rare_rows(bags, 6, trained, min_items=2)
    # Only row 0 is carried by two trained items; every other row shares the OOV row, now row 1.
    assert folded.rows == 2 and folded.oov_row == 1 and folded.kept_rows == 1 and folded.folded_rows == 5
    assert folded.bags.tolist() == [[0, 1], [0, 1], [1, 1], [1, 1], [0, -1]]
    # An item repeating a row counts once for it.
    assert fold_rare_rows(np.array([[0, 0], [1, 1]]), 2, np.array([True, False]), min_items=2).kept_rows == 0


def test_an_unseen_bigram_falls_back_to_the_shared_oov_row_and_never_to_its_own_row():
    # Bigram c2c3 = (1, 1) is never carried by a trained item: the new item's bag ends on the OOV row.
    codes = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 1], [0, 0, 1], [0, 1, 1]])
    trained = np.array([True, True, True, True, False])
    features = item_input("sid_bigram", np.arange(5), trained, budget=1000, min_items=2, codes=codes, codebook_size=4)
    assert features.rows == 4 and features.oov_row == 3  # bigrams 00, 00 (second window), 01, and OOV
    assert features.bags[4].tolist() == [features.oov_row, features.oov_row]
    assert features.oov_share(np.array([4])) == 1.0 and features.oov_share(np.array([0, 1])) == 0.0


def test_budgeted_tables_hold_the_budget_and_spm_says_when_it_cannot():
    codes = _codes()
    ids = np.array([f"v{i}" for i in range(len(codes))], dtype=object)
    trained = np.ones(len(codes), bool)
    for variant in ("hash", "sid_unigram", "sid_bigram", "sid_spm"):
        assert item_input(variant, ids, trained, budget=40, min_items=1, codes=codes, codebook_size=8).rows <= 40
    assert item_input("item_id", ids, trained, budget=40, min_items=2, codes=codes).rows == len(codes) + 1
    with pytest.raises(Unbuildable, match="SentencePiece needs more than the 24"):
        item_input("sid_spm", ids, trained, budget=20, min_items=1, codes=codes, codebook_size=8)


def test_the_oov_row_is_trained_by_rare_features_and_stays_zero_when_none_reach_it():
    import torch

    from semid_assets.core.evaluation.ranker import RankerOptions, train_ranker

    rng = np.random.default_rng(0)
    codes = _codes(n=200)
    items = rng.integers(0, 150, 3000)  # items 150..199 are never shown: strictly cold
    users = rng.integers(0, 50, 3000)
    labels = (rng.random(3000) < 0.3).astype(np.int8)
    trained = np.zeros(200, bool)
    trained[items] = True
    for min_items, moved in ((1, False), (3, True)):
        features = item_input("sid_bigram", np.arange(200), trained, 10_000, min_items, codes=codes, codebook_size=8)
        model = train_ranker(users, items, labels, 50, features, RankerOptions(max_epochs=1, validation_share=0))
        oov = model.table.weight[features.oov_row].detach()
        assert bool(torch.any(oov != 0)) == moved
