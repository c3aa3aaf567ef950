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
