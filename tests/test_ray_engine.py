"""Each data-parallel stage through a local Ray cluster gives the plain library call's bits.

The cluster (2 CPUs, no dashboard, on 127.0.0.1) is started through ``ComputeEngineResource``
(``ray_engine.connect``) and shut down at the end, whatever happens.
"""

from __future__ import annotations

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest

from semid_assets.compute import ComputeEngineResource
from semid_assets.core import fanout
from semid_assets.core.data.embedding_table import embeddings_from_arrow
from semid_assets.core.engine import LocalEngine
from semid_assets.core.evaluation.stability import align_common, knn_overlap, nearest_neighbours
from semid_assets.core.features.multimodal import text_columns_of
from semid_assets.core.features.text_encoder import TextEncoder
from semid_assets.io_manager import load_artifact
from semid_assets.settings import METHODS

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def engines():
    import ray

    assert not ray.is_initialized()
    try:
        # The resource's own lifecycle: it connects (here: starts the private cluster) on the
        # first get_engine() and shuts down what it started when its step ends.
        with dg.build_resources({"compute_engine": ComputeEngineResource(engine="ray", num_cpus=2)}) as resources:
            ray_engine = resources.compute_engine.get_engine()
            assert ray.is_initialized() and ray.cluster_resources()["CPU"] == 2
            yield {"local": LocalEngine(threads=1), "ray": ray_engine}
        assert not ray.is_initialized(), "the resource left the Ray cluster it started running"
    finally:
        ray.shutdown()


def _asset(settings, asset: str, partition: str, suffix: str):
    return settings.assets_dir(settings.source().name) / asset / f"{partition}{suffix}"


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_text_encoding_is_bit_identical(engines, tiny_run, tiny_settings):
    _, _, _, months = tiny_run
    items = pq.read_table(_asset(tiny_settings, "raw_items", months[-1], ".parquet"))
    # A small batch keeps the filler rows that top up each token length's last batch cheap.
    encoder = TextEncoder(batch_size=8)
    texts = sorted({t for c in text_columns_of(items) for t in items.column(c).to_pylist() if t})[:96]
    texts = [t for _, t in sorted(zip(map(len, encoder.tokenize(texts)), texts))]
    tokens, pooled = encoder.encode(texts)
    for name, engine in engines.items():
        # 37 is no multiple of the encoder's batch: chunking must not matter at all.
        got_tokens, got_pooled = fanout.encode_texts(engine, encoder, texts, chunk_rows=37)
        assert _same_bits(got_pooled, pooled), name
        assert len(got_tokens) == len(tokens) and all(_same_bits(g, t) for g, t in zip(got_tokens, tokens)), name


def test_aligner_inference_is_bit_identical(engines, tiny_run, tiny_settings):
    _, _, _, months = tiny_run
    features = load_artifact(_asset(tiny_settings, "multimodal_features", months[-1], ".npz"))
    aligner = load_artifact(_asset(tiny_settings, "aligner", months[-1], ".npz"))
    stored_ids, stored = embeddings_from_arrow(pq.read_table(_asset(tiny_settings, "aligned_embeddings",
                                                                    months[-1], ".parquet")))
    expected = aligner.embed(features)
    assert _same_bits(expected, stored) and list(stored_ids) == list(features.item_ids)
    # A shuffled subset of rows, several chunks of EMBED_BATCH rows each.
    rows = np.random.default_rng(0).permutation(features.n_items)
    assert features.n_items > 256
    for name, engine in engines.items():
        assert _same_bits(fanout.embed_items(engine, aligner, features, chunk_rows=1), expected), name
        assert _same_bits(fanout.embed_items(engine, aligner, features, rows, chunk_rows=256), expected[rows]), name


def test_sid_encoding_is_bit_identical_for_every_method(engines, tiny_run, tiny_settings):
    _, _, _, months = tiny_run
    _, vectors = embeddings_from_arrow(pq.read_table(_asset(tiny_settings, "aligned_embeddings", months[-1],
                                                            ".parquet")))
    # A catalogue of two chunks, the second short: the tiny vectors, jittered, past the chunk alignment.
    rng = np.random.default_rng(0)
    large = np.resize(vectors, (fanout.SID_CHUNK_ALIGN + 999, vectors.shape[1]))
    large = large + rng.normal(scale=0.01, size=large.shape).astype(np.float32)
    for method in METHODS:
        tokenizer = load_artifact(_asset(tiny_settings, "tokenizer", f"month={months[-1]}/method={method}", ".npz"))
        expected = tokenizer.encode_catalogue(vectors)
        inputs = [(vectors, expected)]
        if not tokenizer.population_codes:
            inputs.append((large, tokenizer.encode_catalogue(large)))
        for name, engine in engines.items():
            for X, codes in inputs:
                assert _same_bits(fanout.encode_catalogue(engine, tokenizer, X, chunk_rows=1), codes), (method, name)


def test_stability_knn_is_bit_identical(engines, tiny_run, tiny_settings):
    _, _, _, months = tiny_run
    tables = [embeddings_from_arrow(pq.read_table(_asset(tiny_settings, "aligned_embeddings", m, ".parquet")))
              for m in months]
    (ids_a, emb_a), (ids_b, emb_b) = tables
    rows_a, rows_b = align_common(ids_a, ids_b)
    a, b = emb_a[rows_a], emb_b[rows_b]
    expected = knn_overlap(a, b, sample=1000, k=10, seed=0)
    queries = np.arange(len(a))
    for name, engine in engines.items():
        assert fanout.knn_overlap(engine, a, b, sample=1000, k=10, seed=0, chunk_rows=45) == expected, name
        found = engine.map_chunks(nearest_neighbours, [queries], chunk_rows=45, shared=(a, 10), min_rows=20)
        assert _same_bits(found, nearest_neighbours(queries, a, 10)), name


def test_the_resource_hands_out_the_configured_engine(engines):
    import ray

    seen = {}

    @dg.asset
    def doubled(compute_engine: ComputeEngineResource) -> None:
        engine = compute_engine.get_engine()
        seen[compute_engine.engine] = (type(engine).__name__,
                                       engine.map_chunks(np.multiply, [np.arange(10)], chunk_rows=3, shared=(2,)))

    for choice in ("local", "ray"):
        dg.materialize([doubled], resources={"compute_engine": ComputeEngineResource(engine=choice)})
    assert seen["local"][0] == "LocalEngine" and seen["ray"][0] == "RayEngine"
    assert all(np.array_equal(out, np.arange(10) * 2) for _, out in seen.values())
    # The connection this module made was reused and left open.
    assert ray.is_initialized()
    with pytest.raises(ValueError, match="one of local, ray"):
        ComputeEngineResource(engine="dask").get_engine()
