"""Hashed ids, SID n-grams and SentencePiece pieces as embedding-bag features."""

from __future__ import annotations

import numpy as np
import pytest

from semid_assets.core.evaluation.sid_features import SidPieces, hash_bags, ngram_bags, sid_strings


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
