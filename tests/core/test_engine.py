"""The local engine's chunking, and the chunked stages against the plain library calls (no Ray here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semid_assets.core import fanout
from semid_assets.core.engine import LocalEngine, chunk_bounds
from semid_assets.core.evaluation.stability import knn_overlap
from semid_assets.core.features.multimodal import MultimodalFeatures
from semid_assets.core.tokenizers.rq_kmeans import RQKMeans


def test_chunk_bounds_cover_the_rows_in_order_and_merge_a_short_tail():
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_bounds(10, 4, min_rows=3) == [(0, 4), (4, 10)]
    assert chunk_bounds(3, 4, min_rows=20) == [(0, 3)]
    # A chunk never holds fewer than min_rows rows unless the whole input does.
    assert chunk_bounds(50, 5, min_rows=20) == [(0, 20), (20, 50)]
    assert chunk_bounds(0, 4) == []
    with pytest.raises(ValueError, match="chunk_rows must be >= 1"):
        chunk_bounds(10, 0)


def _rows_and_sum(x: np.ndarray, offset: float) -> tuple[np.ndarray, np.ndarray]:
    return x[:, 0] + offset, np.full(1, len(x))


def test_local_engine_keeps_row_order_and_joins_tuple_outputs():
    x = np.arange(20, dtype=np.float64).reshape(10, 2)
    firsts, sizes = LocalEngine().map_chunks(_rows_and_sum, [x], chunk_rows=4, shared=(0.5,))
    assert np.array_equal(firsts, x[:, 0] + 0.5) and sizes.tolist() == [4, 4, 2]
    with pytest.raises(ValueError, match="one row count"):
        LocalEngine().map_chunks(_rows_and_sum, [x, x[:3]], chunk_rows=4)


def _threads_seen(x: np.ndarray) -> np.ndarray:
    import faiss

    return np.array([[torch.get_num_threads(), faiss.omp_get_max_threads()]] * len(x))


def test_each_chunk_runs_with_the_engines_thread_counts_and_restores_them():
    before = torch.get_num_threads()
    seen = LocalEngine(threads=2).map_chunks(_threads_seen, [np.zeros(6)], chunk_rows=4)
    assert (seen == 2).all()
    assert torch.get_num_threads() == before


def test_feature_rows_keeps_each_items_tokens():
    tokens = np.arange(14, dtype=np.float32).reshape(7, 2)
    offsets = np.array([0, 2, 2, 5, 7])
    features = MultimodalFeatures(
        item_ids=np.array([10, 11, 12, 13]), text_columns=[], text_keys=np.zeros((4, 0), "<U64"),
        modality_names=["img"], pooled={"img": np.eye(4, 2, dtype=np.float32)}, dense_tokens={"img": (tokens, offsets)},
        store_root="/nowhere", encoder_name="none")
    part = fanout.feature_rows(features, np.array([3, 1, 2]))
    assert part.item_ids.tolist() == [13, 11, 12]
    sub_tokens, sub_offsets = part.dense_tokens["img"]
    assert sub_offsets.tolist() == [0, 2, 2, 5]
    assert np.array_equal(sub_tokens, np.concatenate([tokens[5:7], tokens[2:5]]))
    assert np.array_equal(part.pooled["img"], features.pooled["img"][[3, 1, 2]])


def test_chunked_sid_encoding_gives_the_single_calls_codes():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2 * fanout.SID_CHUNK_ALIGN + 777, 16)).astype(np.float32)
    tokenizer = RQKMeans(levels=3, codebook_size=32, seed=0, n_threads=1).fit(X[:5000])
    codes = fanout.encode_catalogue(LocalEngine(), tokenizer, X, chunk_rows=1000)
    assert codes.dtype == np.int32 and np.array_equal(codes, tokenizer.encode_catalogue(X))


def test_chunked_knn_overlap_gives_the_single_searchs_figure():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(600, 8)).astype(np.float32)
    b = a + rng.normal(scale=0.3, size=a.shape).astype(np.float32)
    expected = knn_overlap(a, b, sample=500, k=10, seed=3)
    assert 0.0 < expected < 1.0
    assert fanout.knn_overlap(LocalEngine(), a, b, sample=500, k=10, seed=3, chunk_rows=7) == expected


def test_sid_alignment_is_a_multiple_of_every_encode_block():
    from semid_assets.core.tokenizers import balanced_kmeans, residual, rq_vae

    for block in (residual._BLOCK, residual._ASSIGN_BLOCK, balanced_kmeans._BLOCK, rq_vae._ENCODE_BATCH):
        assert fanout.SID_CHUNK_ALIGN % block == 0


def test_compare_versions_fans_the_knn_out_through_the_function_it_is_given():
    from functools import partial

    from semid_assets.core.evaluation.stability import compare_versions

    rng = np.random.default_rng(2)
    ids = np.arange(300)
    emb_a = rng.normal(size=(300, 8)).astype(np.float32)
    emb_b = emb_a + rng.normal(scale=0.3, size=emb_a.shape).astype(np.float32)
    codes = rng.integers(0, 4, size=(300, 2))
    plain = compare_versions(ids, codes, ids, codes, emb_a=emb_a, emb_b=emb_b, knn_sample=200)[1]
    fanned = compare_versions(ids, codes, ids, codes, emb_a=emb_a, emb_b=emb_b, knn_sample=200,
                              knn=partial(fanout.knn_overlap, LocalEngine(), chunk_rows=64))[1]
    assert fanned == plain and 0.0 < plain["knn_overlap"] < 1.0
