from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from semid_assets.core.features import token_store as token_store_mod
from semid_assets.core.artifact import Artifact, load_npz, save_npz
from semid_assets.core.features.multimodal import (
    MultimodalFeatures,
    build_multimodal_features,
    text_columns_of,
)
from semid_assets.core.features.text_encoder import TextEncoder
from semid_assets.core.features.token_store import TokenStore, content_key

D = 6


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder(batch_size=8)


def _random_entries(rng, n, d=D, offset=0):
    keys = [content_key("enc", f"text {offset + i}") for i in range(n)]
    tokens = [rng.standard_normal((int(rng.integers(0, 5)), d)).astype(np.float32) for _ in range(n)]
    pooled = rng.standard_normal((n, d)).astype(np.float32)
    return keys, tokens, pooled


# ---------------------------------------------------------------------- TokenStore
def test_content_key():
    assert content_key("enc", "abc") == content_key("enc", "abc")
    assert content_key("enc", "abc") != content_key("enc2", "abc")
    assert len(content_key("enc", "")) == 64


def test_open_store_shares_a_reader_until_a_shard_is_added(tmp_path):
    from semid_assets.core.features.token_store import open_store, release_readers

    rng = np.random.default_rng(1)
    writer = TokenStore(tmp_path, "enc")
    k1, t1, p1 = _random_entries(rng, 3)
    writer.put(k1, t1, p1)
    reader = open_store(tmp_path, "enc")
    assert open_store(tmp_path, "enc") is reader and len(reader) == 3
    k2, t2, p2 = _random_entries(rng, 2, offset=3)
    writer.put(k2, t2, p2)
    again = open_store(tmp_path, "enc")
    assert again is not reader and len(again) == 5 and np.array_equal(again.pooled(k2), p2)
    release_readers()
    assert open_store(tmp_path, "enc") is not again


def test_token_store_round_trip_and_reopen(tmp_path):
    rng = np.random.default_rng(0)
    store = TokenStore(tmp_path, "enc")
    assert len(store) == 0 and not store.contains(["x"]).any()
    k1, t1, p1 = _random_entries(rng, 5)
    k2, t2, p2 = _random_entries(rng, 4, offset=5)
    store.put(k1, t1, p1)
    store.put(k2, t2, p2)
    store.put([], [], np.zeros((0, D), np.float32))  # no-op
    assert len(store) == 9 and store.n_shards == 2

    for s in (store, TokenStore(tmp_path, "enc")):
        keys = k2[::-1] + k1
        assert s.contains(keys + ["missing"]).tolist() == [True] * 9 + [False]
        np.testing.assert_array_equal(s.pooled(keys), np.concatenate([p2[::-1], p1]))
        for got, want in zip(s.tokens(keys), t2[::-1] + t1):
            assert got.dtype == np.float16 and got.shape == want.shape
            np.testing.assert_array_equal(got, want.astype(np.float16))
        with pytest.raises(KeyError, match="1 of 2 keys"):
            s.pooled([k1[0], "missing"])
    assert TokenStore(tmp_path, "other").contains(k1).sum() == 0


def test_token_store_first_shard_wins(tmp_path):
    store = TokenStore(tmp_path, "enc")
    store.put(["a"], [np.ones((2, D), np.float32)], np.ones((1, D), np.float32))
    store.put(["a", "b"], [np.zeros((3, D)), np.zeros((1, D))], np.zeros((2, D), np.float32))
    for s in (store, TokenStore(tmp_path, "enc")):
        assert len(s) == 2
        assert s.pooled(["a"])[0, 0] == 1.0 and s.tokens(["a"])[0].shape == (2, D)


def test_token_store_rejects_bad_input(tmp_path):
    store = TokenStore(tmp_path, "enc")
    with pytest.raises(ValueError):
        store.put(["a"], [np.zeros((2, D + 1))], np.zeros((1, D)))
    store.put(["a"], [np.zeros((2, D))], np.zeros((1, D)))
    with pytest.raises(ValueError, match="dimension"):
        store.put(["b"], [np.zeros((2, D + 1))], np.zeros((1, D + 1)))
    with pytest.raises(ValueError, match="finite"):
        store.put(["c"], [np.full((1, D), 1e6)], np.zeros((1, D)))
    with pytest.raises(ValueError):
        TokenStore(tmp_path, "../escape")


def _put_stopped_before_its_index(store, monkeypatch, *entries) -> None:
    """``store.put(*entries)`` failing after its shard files are written and before its index is."""
    real_write = token_store_mod.atomic_write

    def crash_on_index(path, write):
        if path.name.endswith(".index.parquet"):
            raise OSError("simulated crash before the index was written")
        real_write(path, write)

    monkeypatch.setattr(token_store_mod, "atomic_write", crash_on_index)
    try:
        with pytest.raises(OSError, match="simulated"):
            store.put(*entries)
    finally:
        monkeypatch.setattr(token_store_mod, "atomic_write", real_write)


def test_token_store_crash_before_index_leaves_store_consistent(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    store = TokenStore(tmp_path, "enc")
    k1, t1, p1 = _random_entries(rng, 3)
    store.put(k1, t1, p1)

    k2, t2, p2 = _random_entries(rng, 3, offset=3)
    _put_stopped_before_its_index(store, monkeypatch, k2, t2, p2)

    reopened = TokenStore(tmp_path, "enc")
    assert len(reopened) == 3 and not reopened.contains(k2).any()
    np.testing.assert_array_equal(reopened.pooled(k1), p1)
    assert len(reopened.orphans()) == 2  # tokens + pooled of the interrupted shard
    assert not list((tmp_path / "enc").glob(".*.tmp"))
    # The next put neither reuses the orphan's name nor gets confused by it.
    reopened.put(k2, t2, p2)
    again = TokenStore(tmp_path, "enc")
    assert len(again) == 6 and again.n_shards == 2
    np.testing.assert_array_equal(again.pooled(k2), p2)


def test_token_store_sweep_removes_a_killed_writers_orphans_and_keeps_a_live_ones(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    rng = np.random.default_rng(2)
    store = TokenStore(tmp_path, "enc")
    k1, t1, p1 = _random_entries(rng, 3)
    store.put(k1, t1, p1)
    # This (live) process stops a put before its index: its orphans must survive a sweep.
    _put_stopped_before_its_index(store, monkeypatch, *_random_entries(rng, 2, offset=3))
    live_orphans = TokenStore(tmp_path, "enc").orphans()
    # Another process is SIGKILLed at the same point of its put.
    root = Path(__file__).resolve().parents[2]
    code = textwrap.dedent(f"""
        import os, signal
        import numpy as np
        from semid_assets.core.features import token_store as ts
        real = ts.atomic_write
        def die_on_index(path, write):
            if path.name.endswith(".index.parquet"):
                os.kill(os.getpid(), signal.SIGKILL)
            real(path, write)
        ts.atomic_write = die_on_index
        ts.TokenStore({str(tmp_path)!r}, "enc").put(["k"], [np.ones((2, {D}), np.float32)], np.ones((1, {D}), np.float32))
    """)
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == -9
    reopened = TokenStore(tmp_path, "enc")
    killed_orphans = sorted(set(reopened.orphans()) - set(live_orphans))
    assert len(live_orphans) == 2 and len(killed_orphans) == 2

    log = []
    assert sorted(reopened.sweep(log=log.append)) == killed_orphans and len(log) == 2
    assert sorted(TokenStore(tmp_path, "enc").orphans()) == sorted(live_orphans)
    np.testing.assert_array_equal(TokenStore(tmp_path, "enc").pooled(k1), p1)


# ---------------------------------------------------------------------- features
TITLES = [
    "Chocolate cake recipe with dark cocoa",
    "How to bake a chocolate cake at home",
    "Football league results and match highlights",
    "",
    "Chocolate cake recipe with dark cocoa",  # duplicate of item 0's title
]
TAGS = ["baking dessert", "baking dessert", None, "", "baking"]


def _items(emb=None, emb_type=None) -> pa.Table:
    rng = np.random.default_rng(7)
    if emb is None:
        emb = [rng.standard_normal((2, 8)).round(3).tolist() for _ in range(5)]
        emb[3] = None  # item 3 has no visual tokens (and no text)
    if emb_type is None:
        emb_type = pa.list_(pa.list_(pa.float32(), 8))
    return pa.table(
        {
            "item_id": pa.array(["i0", "i1", "i2", "i3", "i4"]),
            "created_at": pa.array(np.arange(5).astype("datetime64[us]")),
            "title": pa.array(TITLES),
            "tags": pa.array(TAGS),
            "truth_category": pa.array(["a", "a", "b", "c", "a"]),
            "emb_visual": pa.array(emb, emb_type),
        }
    )


def test_text_columns_of():
    assert text_columns_of(_items()) == ["title", "tags"]


def test_build_features_and_cache_hit(tmp_path, encoder, monkeypatch):
    items = _items()
    store = TokenStore(tmp_path, encoder.name)
    logs: list[str] = []
    f1, s1 = build_multimodal_features(items, encoder, store, log=logs.append)
    assert logs and s1["n_items"] == 5
    # distinct non-empty texts: 3 titles + "baking dessert" + "baking"
    assert s1["texts_total"] == 5 and s1["texts_encoded"] == 5 and s1["texts_cached"] == 0
    assert s1["text_cells"] == 7

    assert f1.modality_names == ["text", "visual"] and f1.text_columns == ["title", "tags"]
    assert f1.dims == {"text": 384, "visual": 8} and f1.n_items == 5
    assert list(f1.item_ids) == ["i0", "i1", "i2", "i3", "i4"]
    assert f1.text_keys[0, 0] == f1.text_keys[4, 0] != ""
    assert f1.text_keys[3].tolist() == ["", ""] and f1.text_keys[2, 1] == ""
    assert not f1.pooled["text"][3].any() and not f1.pooled["visual"][3].any()
    norms = {m: np.linalg.norm(p, axis=1) for m, p in f1.pooled.items()}
    np.testing.assert_allclose(norms["text"][[0, 1, 2, 4]], 1.0, atol=1e-5)
    np.testing.assert_allclose(norms["visual"][[0, 1, 2, 4]], 1.0, atol=1e-5)

    # text pooling: mean of the per-column sentence vectors, normalised
    _, sent = encoder.encode([TITLES[0], TAGS[0]])
    want = sent.mean(0) / np.linalg.norm(sent.mean(0))
    np.testing.assert_allclose(f1.pooled["text"][0], want, atol=1e-6)
    # item 2 has only a title
    np.testing.assert_allclose(f1.pooled["text"][2], encoder.encode([TITLES[2]])[1][0], atol=1e-6)

    # visual: mean of the two tokens, normalised; dense tokens kept flat with offsets
    tokens, offsets = f1.dense_tokens["visual"]
    assert offsets.tolist() == [0, 2, 4, 6, 6, 8] and tokens.shape == (8, 8)
    m = tokens[0:2].mean(0)
    np.testing.assert_allclose(f1.pooled["visual"][0], m / np.linalg.norm(m), atol=1e-6)

    # second build: everything cached, identical outputs
    f2, s2 = build_multimodal_features(items, encoder, TokenStore(tmp_path, encoder.name))
    assert s2["texts_encoded"] == 0 and s2["texts_cached"] == 5 and s2["texts_per_s"] == 0.0
    np.testing.assert_array_equal(f1.text_keys, f2.text_keys)
    for mod in f1.modality_names:
        np.testing.assert_array_equal(f1.pooled[mod], f2.pooled[mod])

    # content embedding: unit norm when there is any content, zero otherwise
    ce = f1.content_embedding()
    assert ce.shape == (5, 384 + 8) and ce.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ce[[0, 1, 2, 4]], axis=1), 1.0, atol=1e-5)
    assert not ce[3].any()
    # with both modalities present, each block carries 1/sqrt(2) of the norm
    np.testing.assert_allclose(np.linalg.norm(ce[0, :384]), 2**-0.5, atol=1e-5)
    # computed in row blocks, with the bits of the whole matrix at once
    import semid_assets.core.features.multimodal as multimodal

    whole = multimodal._l2_normalise(np.concatenate(
        [f1.pooled[m].astype(np.float64) * 2**-0.5 for m in f1.modality_names], axis=1))
    np.testing.assert_array_equal(ce, whole)
    monkeypatch.setattr(multimodal, "_CONTENT_BLOCK", 2)
    np.testing.assert_array_equal(f1.content_embedding(), whole)
    # some rows only (an engine's chunk, or new items), in any order: those rows' bits
    np.testing.assert_array_equal(f1.content_embedding(np.array([4, 0, 3])), whole[[4, 0, 3]])
    assert f1.content_embedding(np.array([], np.int64)).shape == (0, 384 + 8)

    # similar texts are closer than unrelated ones
    t = f1.pooled["text"]
    assert t[0] @ t[1] > t[0] @ t[2] + 0.2

    # token matrices for a future aligner
    mats = f1.token_matrices(np.array([0, 3, 2]))
    assert list(mats) == ["text", "visual"]
    text_tok, text_mask = mats["text"]
    n_title, n_tags = (len(x) for x in encoder.tokenize([TITLES[0], TAGS[0]]))
    assert text_tok.shape == (3, n_title + n_tags, 384) and text_tok.dtype == np.float32
    assert text_mask.sum(1).tolist() == [n_title + n_tags, 0, len(encoder.tokenize([TITLES[2]])[0])]
    assert not text_tok[1].any() and not text_tok[2, text_mask[2].sum() :].any()
    direct, _ = encoder.encode([TITLES[0], TAGS[0]])
    np.testing.assert_allclose(text_tok[0], np.concatenate(direct), atol=2e-3)  # float16 storage
    vis_tok, vis_mask = mats["visual"]
    assert vis_tok.shape == (3, 2, 8) and vis_mask.tolist() == [[True, True], [False, False], [True, True]]
    np.testing.assert_array_equal(vis_tok[2], tokens[4:6])
    with pytest.raises(IndexError):
        f1.token_matrices(np.array([-1]))
    # rows without text never touch the store; rows with text need it
    g = MultimodalFeatures.from_arrays(*f1.to_arrays())
    g.store_root = str(tmp_path / "nowhere")
    only_empty = g.token_matrices(np.array([3]))
    assert only_empty["text"][0].shape == (1, 1, 384) and not only_empty["text"][1].any()
    with pytest.raises(KeyError, match="not in the token store"):
        g.token_matrices(np.array([0]))


def test_features_artifact_round_trip(tmp_path, encoder):
    store = TokenStore(tmp_path / "store", encoder.name)
    f, _ = build_multimodal_features(_items(), encoder, store)
    assert isinstance(f, Artifact)
    arrays, meta = f.to_arrays()
    assert all(a.dtype != object for a in arrays.values())
    save_npz(tmp_path / "features.npz", arrays, meta)
    g = MultimodalFeatures.from_arrays(*load_npz(tmp_path / "features.npz"))
    assert g.modality_names == f.modality_names and g.text_columns == f.text_columns
    assert g.store_root == f.store_root and g.encoder_name == f.encoder_name
    np.testing.assert_array_equal(g.item_ids, f.item_ids)
    np.testing.assert_array_equal(g.text_keys, f.text_keys)
    for m in f.modality_names:
        np.testing.assert_array_equal(g.pooled[m], f.pooled[m])
    for a, b in zip(g.dense_tokens["visual"], f.dense_tokens["visual"]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(g.content_embedding(), f.content_embedding())
    # the reloaded bundle finds its text tokens through store_root
    for (a, am), (b, bm) in zip(g.token_matrices(np.arange(5)).values(), f.token_matrices(np.arange(5)).values()):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(am, bm)


def test_int_ids_and_one_token_embeddings(tmp_path, encoder):
    items = pa.table(
        {
            "item_id": pa.array([10, 20, 30], pa.int64()),
            "title": pa.array(["red apple", "", "green pear"]),
            "emb_audio": pa.array([[1.0, 0.0, 0.0], None, [0.0, 3.0, 4.0]], pa.list_(pa.float64(), 3)),
        }
    )
    f, stats = build_multimodal_features(items, encoder, TokenStore(tmp_path, encoder.name))
    assert f.item_ids.dtype == np.int64 and stats["texts_total"] == 2
    tokens, offsets = f.dense_tokens["audio"]
    assert offsets.tolist() == [0, 1, 1, 2] and tokens.dtype == np.float32
    np.testing.assert_allclose(f.pooled["audio"][2], [0.0, 0.6, 0.8], atol=1e-7)
    arrays, meta = f.to_arrays()
    assert MultimodalFeatures.from_arrays(arrays, meta).item_ids.dtype == np.int64


def test_nan_in_embedding_column_raises(tmp_path, encoder):
    emb = [np.ones((2, 8)).tolist() for _ in range(5)]
    emb[1][0][3] = float("nan")
    emb[4][1][0] = float("inf")
    with pytest.raises(ValueError, match=r"'emb_visual'.*2 rows.*NaN or inf.*fix"):
        build_multimodal_features(_items(emb), encoder, TokenStore(tmp_path, encoder.name))


def test_inconsistent_dimension_raises(tmp_path, encoder):
    emb = [np.ones((2, 8)).tolist() for _ in range(5)]
    emb[2] = np.ones((2, 7)).tolist()
    with pytest.raises(ValueError, match=r"'emb_visual'.*inconsistent.*dim 7: 2 vectors.*dim 8: 8 vectors"):
        build_multimodal_features(
            _items(emb, pa.list_(pa.list_(pa.float32()))), encoder, TokenStore(tmp_path, encoder.name)
        )


def test_store_encoder_mismatch_raises(tmp_path, encoder):
    with pytest.raises(ValueError, match="keyed for encoder"):
        build_multimodal_features(_items(), encoder, TokenStore(tmp_path, "some-other-encoder"))


def test_pooling_in_chunks_gives_the_bits_of_one_pass(monkeypatch):
    from semid_assets.core.features import multimodal

    rng = np.random.default_rng(0)
    counts = rng.integers(0, 4, 50)  # some items have no token
    offsets = np.concatenate([[0], np.cumsum(counts)])
    tokens = rng.standard_normal((int(offsets[-1]), 8)).astype(np.float32)
    whole = multimodal._mean_pool(tokens, offsets)
    monkeypatch.setattr(multimodal, "_POOL_CHUNK", 7)
    chunked = multimodal._mean_pool(tokens, offsets)
    assert chunked.dtype == np.float32 and np.array_equal(chunked, whole)
    assert not whole[counts == 0].any() and np.allclose(np.linalg.norm(whole[counts > 0], axis=1), 1, atol=1e-6)
