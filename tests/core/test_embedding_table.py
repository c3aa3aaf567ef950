from __future__ import annotations

import numpy as np
import pytest

from semid_assets.core.data.embedding_table import embeddings_to_arrow, vectors_of


def _table():
    vectors = np.arange(12, dtype=np.float32).reshape(4, 3)
    return embeddings_to_arrow(np.array(["a", "b", "c", "d"]), vectors), vectors


def test_vectors_in_the_tables_order():
    table, vectors = _table()
    got = vectors_of(table, np.array(["a", "b", "c", "d"]))
    assert np.array_equal(got, vectors)


def test_vectors_follow_the_asked_order_and_a_missing_item_is_named():
    table, vectors = _table()
    assert np.array_equal(vectors_of(table, ["d", "a"]), vectors[[3, 0]])
    with pytest.raises(ValueError, match="'zz'"):
        vectors_of(table, ["a", "zz"])


def _batched(n=300, d=8, rows_per_batch=64, seed=0):
    """A table of ``n`` items in several record batches (as a Parquet file's row groups read back)."""
    import pyarrow as pa

    vectors = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    ids = np.array([f"item{i}" for i in range(n)])
    whole = embeddings_to_arrow(ids, vectors)
    table = pa.concat_tables([whole.slice(s, rows_per_batch) for s in range(0, n, rows_per_batch)])
    return table, ids, vectors


def test_gathering_batch_by_batch_gives_the_whole_matrix_rows_bit_for_bit():
    from semid_assets.core.data.embedding_table import embeddings_from_arrow, gather_vectors

    table, ids, vectors = _batched()
    assert table.column("embedding").num_chunks > 1
    wanted = np.random.default_rng(1).permutation(ids)[:200]
    rows = np.array([int(x.removeprefix("item")) for x in wanted])
    _, whole = embeddings_from_arrow(table)
    got = gather_vectors(table.to_batches(), wanted)
    assert got.dtype == np.float32 and np.array_equal(got, whole[rows])
    assert np.array_equal(vectors_of(table, wanted), vectors[rows])


def test_gathering_reports_a_missing_item_and_refuses_a_repeated_one():
    import pyarrow as pa

    from semid_assets.core.data.embedding_table import gather_vectors

    table, ids, _ = _batched()
    assert gather_vectors(table.to_batches(), np.append(ids[:5], "not-there")) is None
    repeated = pa.concat_tables([table, table.slice(7, 1)])
    with pytest.raises(ValueError, match="more than once"):
        gather_vectors(repeated.to_batches(), ids)
    with pytest.raises(ValueError, match="more than once"):
        gather_vectors(table.to_batches(), np.array(["item1", "item1"]))
