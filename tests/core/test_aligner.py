"""The QFormer aligner alone: shapes and masks, training on a planted structure, determinism, storage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from semid_assets.core.alignment.aligner import Aligner
from semid_assets.core.alignment.config import AlignerTrainConfig
from semid_assets.core.alignment.training import train_aligner
from semid_assets.core.alignment.monthly import align_month
from semid_assets.core.alignment.evaluation import (content_similarity, hash_fraction, judged_items, judged_pairs,
                                                    pair_recall, split_pairs, unique_pairs)
from semid_assets.core.artifact import load_npz, save_npz
from semid_assets.core.alignment.captions import build_vocabulary, caption_column, encode_captions, prepare_captions
from semid_assets.core.features.multimodal import MultimodalFeatures
from semid_assets.core.alignment.qformer import PAD, UNK, AlignerNet, QFormer, QFormerConfig

D = 16


def _config(**kw) -> QFormerConfig:
    base = dict(modalities=("a", "b"), modality_dims=(D, 8), max_tokens=(5, 3), width=32, heads=4, n_blocks=2)
    return QFormerConfig(**{**base, **kw})


@pytest.mark.parametrize("pool, dim", [("mean", 32), ("concat", 4 * 32)])
def test_qformer_shapes_masks_and_missing_modalities(pool, dim):
    torch.manual_seed(0)
    net = QFormer(_config(pool=pool)).eval()
    b = 4
    tokens = [torch.randn(b, 5, D), torch.randn(b, 3, 8)]
    masks = [torch.ones(b, 5, dtype=torch.bool), torch.ones(b, 3, dtype=torch.bool)]
    masks[0][1, 2:] = False  # a shorter item
    masks[1][2] = False  # an item without modality b
    masks[0][3] = False
    masks[1][3] = False  # an item with no content at all: only the null token is attended
    with torch.no_grad():
        q, z = net(tokens, masks)
        assert q.shape == (b, 4, 32) and z.shape == (b, dim)
        assert torch.isfinite(z).all() and torch.allclose(z.norm(dim=1), torch.ones(b), atol=1e-5)
        # Masked positions are never read: garbage there changes nothing.
        noisy = [tokens[0].clone(), tokens[1].clone()]
        noisy[0][1, 2:] = 1e3
        noisy[1][2] = -1e3
        noisy[0][3] = 7.0
        _, z2 = net(noisy, masks)
        assert torch.allclose(z, z2, atol=1e-6)
        # Extra padding columns change nothing either.
        padded = [torch.cat([tokens[0], torch.randn(b, 2, D)], 1), tokens[1]]
        padded_masks = [torch.cat([masks[0], torch.zeros(b, 2, dtype=torch.bool)], 1), masks[1]]
        _, z3 = net(padded, padded_masks)
        assert torch.allclose(z, z3, atol=1e-5)


def test_config_refuses_bad_shapes():
    with pytest.raises(ValueError, match="at least one modality"):
        QFormerConfig(modalities=(), modality_dims=(), max_tokens=())
    with pytest.raises(ValueError, match="multiple of heads"):
        _config(width=30)
    with pytest.raises(ValueError, match="pool"):
        _config(pool="max")


def test_caption_decoder_is_causal():
    torch.manual_seed(0)
    net = AlignerNet(_config(vocab_size=20, caption_max_tokens=6)).eval()
    prefix = torch.randn(2, 4, 32)
    ids = torch.tensor([[2, 5, 7, 9, 0, 0], [2, 3, 4, 5, 6, 8]])
    mask = ids != PAD
    with torch.no_grad():
        logits = net.caption(prefix, ids, mask)
        changed = ids.clone()
        changed[:, 3] = 11
        later = net.caption(prefix, changed, changed != PAD)
    assert logits.shape == (2, 6, 20)
    assert torch.allclose(logits[:, :3], later[:, :3], atol=1e-6)  # positions before 3 cannot see token 3
    assert not torch.allclose(logits[:, 3:], later[:, 3:])


# ---------------------------------------------------------------------- planted data
def planted(n: int = 480, n_topics: int = 8, n_groups: int = 8, seed: int = 0):
    """Items whose tokens mostly say their topic and faintly their group; pairs join items of one group.

    Content alone ranks same-topic items first; only the pairs reveal the groups.
    """
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, n_topics, n)
    group = rng.integers(0, n_groups, n)
    topic_latent = rng.standard_normal((n_topics, D))
    group_latent = rng.standard_normal((n_groups, D))
    counts = rng.integers(1, 5, n)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    owner = np.repeat(np.arange(n), counts)
    tokens = (topic_latent[topic[owner]] + 0.35 * group_latent[group[owner]]
              + 0.6 * rng.standard_normal((len(owner), D))).astype(np.float32)
    means = np.add.reduceat(tokens, offsets[:-1], axis=0) / counts[:, None]
    pooled = (means / np.linalg.norm(means, axis=1, keepdims=True)).astype(np.float32)
    ids = np.array([f"i{i:04d}" for i in range(n)])
    features = MultimodalFeatures(item_ids=ids, text_columns=[], text_keys=np.zeros((n, 0), "<U64"),
                                  modality_names=["x"], pooled={"x": pooled}, dense_tokens={"x": (tokens, offsets)},
                                  store_root="", encoder_name="none")
    a = rng.integers(0, n, 6000)
    b = rng.integers(0, n, 6000)
    keep = (group[a] == group[b]) & (a != b)
    pairs = pd.DataFrame({"item_a": ids[a[keep]], "item_b": ids[b[keep]], "source": "swing", "score": 1.0})
    return features, pairs, topic, group


TINY = AlignerTrainConfig(width=32, heads=4, n_blocks=2, pool="mean", batch_pairs=64, epochs=3, lr=3e-3,
                          warmup_steps=5, threads=1, log_every=1000)


def test_training_lowers_the_loss_and_beats_content_on_held_out_pairs():
    features, pairs, topic, group = planted()
    result = align_month(features, pairs, AlignerTrainConfig(**{**TINY.__dict__, "epochs": 8}), topics=topic,
                         holdout=0.2)
    losses = result.history["contrastive"].to_numpy()
    assert losses[-10:].mean() < 0.7 * losses[:10].mean()
    table = result.retrieval.set_index("aligner")
    # A group has ~60 items, so even a perfect group detector finds a given partner in the top 10
    # only ~1 time in 6: the margin shows at 50.
    assert table.loc["qformer", "heldout_recall@50"] > table.loc["none", "heldout_recall@50"] + 0.15
    assert table.loc["qformer", "heldout_recall@10"] >= table.loc["none", "heldout_recall@10"]
    # The pairs are cross-topic, so the baseline is the one that keeps topics together.
    assert table.loc["none", "same_topic_cos"] > table.loc["none", "random_cos"]
    assert result.vectors.shape == (features.n_items, 32) and result.vectors.dtype == np.float32


def test_same_seed_same_weights_and_embeddings():
    features, pairs, _, _ = planted(n=200)
    a, b, _ = unique_pairs(pairs, features.item_ids)
    config = AlignerTrainConfig(**{**TINY.__dict__, "steps": 15})
    first, _ = train_aligner(features, a, b, config)
    second, _ = train_aligner(features, a, b, config)
    assert first.state.keys() == second.state.keys()
    for k in first.state:
        assert np.array_equal(first.state[k], second.state[k]), k
    assert np.array_equal(first.embed(features), second.embed(features))
    other, _ = train_aligner(features, a, b, AlignerTrainConfig(**{**config.__dict__, "seed": 1}))
    assert not np.array_equal(first.embed(features), other.embed(features))


def test_embedding_does_not_depend_on_batch_neighbours():
    features, pairs, _, _ = planted(n=300)
    a, b, _ = unique_pairs(pairs, features.item_ids)
    model, _ = train_aligner(features, a, b, AlignerTrainConfig(**{**TINY.__dict__, "steps": 3}))
    everything = model.embed(features)
    some = np.array([299, 5, 17, 256, 3])
    assert np.array_equal(model.embed(features, rows=some), everything[some])


def test_storage_round_trips_npz_and_torch(tmp_path):
    features, pairs, _, _ = planted(n=200)
    a, b, _ = unique_pairs(pairs, features.item_ids)
    model, _ = train_aligner(features, a, b, AlignerTrainConfig(**{**TINY.__dict__, "steps": 3}))
    save_npz(tmp_path / "a.npz", *model.to_arrays())
    again = Aligner.from_arrays(*load_npz(tmp_path / "a.npz"))
    model.save_torch(tmp_path / "a.pt")
    loaded = Aligner.load_torch(tmp_path / "a.pt")
    want = model.embed(features)
    assert np.array_equal(again.embed(features), want) and np.array_equal(loaded.embed(features), want)
    assert loaded.config == model.config and loaded.info["steps"] == 3


def test_warm_start_copies_the_previous_weights():
    features, pairs, _, _ = planted(n=200)
    a, b, _ = unique_pairs(pairs, features.item_ids)
    config = AlignerTrainConfig(**{**TINY.__dict__, "steps": 2, "lr": 1e-9, "warmup_steps": 0})
    previous, _ = train_aligner(features, a, b, AlignerTrainConfig(**{**TINY.__dict__, "steps": 5}))
    warm, _ = train_aligner(features, a, b, AlignerTrainConfig(**{**config.__dict__, "seed": 3}), warm_start=previous)
    cold, _ = train_aligner(features, a, b, AlignerTrainConfig(**{**config.__dict__, "seed": 3}))
    assert warm.info["warm_started"] and warm.info["warm_start_tensors"] == len(previous.state)
    w = "qformer.queries"
    assert np.allclose(warm.state[w], previous.state[w], atol=1e-5)
    assert not np.allclose(cold.state[w], previous.state[w], atol=1e-3)


def test_stability_term_keeps_a_warm_started_aligner_near_the_previous_space():
    features, pairs, _, _ = planted(n=300)
    a, b, _ = unique_pairs(pairs, features.item_ids)
    previous, _ = train_aligner(features, a, b, AlignerTrainConfig(**{**TINY.__dict__, "steps": 20}))
    before = previous.embed(features)
    moved = {}
    for weight in (0.0, 100.0):
        config = AlignerTrainConfig(**{**TINY.__dict__, "steps": 20, "seed": 1, "stability_weight": weight})
        model, history = train_aligner(features, a, b, config, warm_start=previous)
        assert model.info["stability_anchored"] == (weight > 0)
        moved[weight] = float(np.square(model.embed(features) - before).sum(axis=1).mean())
        assert (np.array([h["stability"] for h in history]) > 0).any() == (weight > 0)
    # Fine-tuning without the term moves the space; with it the vectors stay close.
    assert moved[100.0] < 0.25 * moved[0.0]


def test_stability_term_needs_a_warm_start_of_the_same_width():
    features, pairs, _, _ = planted(n=200)
    a, b, _ = unique_pairs(pairs, features.item_ids)
    config = AlignerTrainConfig(**{**TINY.__dict__, "steps": 3})
    cold, _ = train_aligner(features, a, b, config)
    assert not cold.info["stability_anchored"]  # nothing to stay near when training from scratch
    wider = AlignerTrainConfig(**{**config.__dict__, "width": 64})
    other, _ = train_aligner(features, a, b, wider, warm_start=cold)
    assert not other.info["stability_anchored"]
    with pytest.raises(ValueError, match="stability_targets has shape"):
        train_aligner(features, a, b, config, warm_start=cold, stability_targets=np.zeros((5, 32), np.float32))
    with pytest.raises(ValueError, match="stability_weight"):
        AlignerTrainConfig(stability_weight=-1.0)


def test_features_of_another_shape_are_refused():
    features, pairs, _, _ = planted(n=100)
    a, b, _ = unique_pairs(pairs, features.item_ids)
    model, _ = train_aligner(features, a, b, AlignerTrainConfig(**{**TINY.__dict__, "steps": 1}))
    other = MultimodalFeatures(item_ids=features.item_ids, text_columns=[], text_keys=features.text_keys,
                               modality_names=["y"], pooled={"y": features.pooled["x"]},
                               dense_tokens={"y": features.dense_tokens["x"]}, store_root="", encoder_name="none")
    with pytest.raises(ValueError, match="same text and emb_"):
        model.embed(other)


# ---------------------------------------------------------------------- captions
def test_caption_column_choice():
    assert caption_column(["title", "caption", "tags"]) == "caption"
    assert caption_column(["title", "genres"]) == "title"
    assert caption_column([]) is None
    assert caption_column(["title", "genres"], "genres") == "genres"
    with pytest.raises(ValueError, match="not a text column"):
        caption_column(["title"], "caption")


def test_vocabulary_and_encoding():
    rows = [[101, 7, 7, 9, 102], [101, 9, 3, 102], []]
    vocab = build_vocabulary(rows, 5)
    assert vocab.tolist() == [7, 9, 101]  # by frequency, ties by smaller id; 102 does not fit
    ids, mask = encode_captions(rows, vocab, 4)
    assert ids.tolist() == [[4, 2, 2, 3], [4, 3, UNK, UNK], [PAD] * 4]
    assert mask.sum() == 8


def test_caption_loss_falls_and_beats_unigram_on_planted_captions():
    features, pairs, topic, _ = planted()
    rng = np.random.default_rng(1)
    # Each caption names its topic's word then two filler words: only the content can predict the topic word.
    token_ids = [[101, 1000 + int(t), int(rng.integers(2000, 2004)), 102] for t in topic]
    captions_on = AlignerTrainConfig(**{**TINY.__dict__, "caption_weight": 1.0, "epochs": 4})
    result = align_month(features, pairs, captions_on, caption_token_ids=token_ids, caption_column="c",
                         caption_holdout=0.2)
    caption_curve = result.history["caption"].to_numpy()
    assert caption_curve[-10:].mean() < 0.7 * caption_curve[:10].mean()
    table = result.captions.set_index(["model", "items"])
    held = table.loc[("qformer decoder", "held-out items")]
    unigram = table.loc[("unigram (content-blind)", "held-out items")]
    assert held["caption_loss"] < unigram["caption_loss"]
    assert held["token_accuracy"] > unigram["token_accuracy"]


def test_prepare_captions_vocabulary_comes_from_training_items_only():
    captions = prepare_captions([[101, 5, 102], [101, 6, 102]], np.array([True, False]), "c", vocab_size=10)
    assert 6 not in captions.vocabulary.tolist() and 5 in captions.vocabulary.tolist()


# ---------------------------------------------------------------------- evaluation helpers
def test_split_is_by_pair_and_stable():
    ids = np.array([f"i{i}" for i in range(50)])
    a, b = np.arange(0, 40), np.arange(10, 50)
    held = split_pairs(a, b, ids, 0.3)
    assert np.array_equal(held, split_pairs(a, b, ids, 0.3))
    # The same pair keeps its side when the catalogue grows or is reordered.
    bigger = np.concatenate([ids[::-1], ["new1", "new2"]])
    pos = {v: i for i, v in enumerate(bigger)}
    held2 = split_pairs(np.array([pos[ids[i]] for i in a]), np.array([pos[ids[i]] for i in b]), bigger, 0.3)
    assert np.array_equal(held, held2)
    assert 0 < held.sum() < len(held)


def test_judged_pairs_are_a_stable_sample_of_the_held_out_pairs():
    ids = np.array([f"i{i}" for i in range(400)])
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 400, 3000), rng.integers(0, 400, 3000)
    keep = a < b
    a, b = a[keep], b[keep]
    held = split_pairs(a, b, ids, 0.3)
    assert np.array_equal(judged_pairs(a, b, ids, 0.3), np.flatnonzero(held))
    some = judged_pairs(a, b, ids, 0.3, sample=50)
    assert len(some) == 50 and held[some].all() and np.all(np.diff(some) > 0)
    assert np.array_equal(judged_pairs(a, b, ids, 0.3, sample=10 ** 6), np.flatnonzero(held))
    # The same pairs whatever the catalogue's order, and with a larger sample a superset.
    order = rng.permutation(400)
    pos = np.empty(400, np.int64)
    pos[order] = np.arange(400)
    again = judged_pairs(pos[a], pos[b], ids[order], 0.3, sample=50)
    assert {(ids[order][x], ids[order][y]) for x, y in zip(pos[a][again], pos[b][again])} == \
        {(ids[x], ids[y]) for x, y in zip(a[some], b[some])}
    assert set(some) <= set(judged_pairs(a, b, ids, 0.3, sample=80))
    with pytest.raises(ValueError, match="sample"):
        judged_pairs(a, b, ids, 0.3, sample=0)


def test_judged_items_are_a_stable_sample_of_the_held_out_items():
    ids = np.array([f"i{i}" for i in range(1000)])
    held = hash_fraction(ids, 0.2)
    assert np.array_equal(judged_items(ids, 0.2), np.flatnonzero(held))
    some = judged_items(ids, 0.2, sample=30)
    assert len(some) == 30 and held[some].all()
    assert set(ids[some]) == set(ids[::-1][judged_items(ids[::-1], 0.2, sample=30)])


def test_a_held_out_sample_judges_on_fewer_pairs_and_trains_the_same():
    features, pairs, _, _ = planted(n=300)
    config = AlignerTrainConfig(**{**TINY.__dict__, "steps": 10})
    whole = align_month(features, pairs, config, holdout=0.2)
    sampled = align_month(features, pairs, config, holdout=0.2, heldout_sample=40)
    assert sampled.metrics["pairs_judged"] == 40 == len(sampled.heldout_hits["qformer"])
    assert whole.metrics["pairs_judged"] == whole.metrics["pairs_heldout"] > 40
    assert np.array_equal(whole.vectors, sampled.vectors)


def test_pair_recall_and_content_similarity_on_known_geometry():
    x = np.eye(6, dtype=np.float32)
    x[1] = x[0] * 0.9 + x[1] * 0.1  # item 1 is item 0's nearest neighbour
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    recall = pair_recall(x, np.array([0, 2]), np.array([1, 3]), ks=(1, 5))
    assert recall[1] == 0.5 and recall[5] == 1.0
    sim = content_similarity(x, np.array(["t", "t", "u", "v", "w", "z"]), n_pairs=200)
    assert sim["same_topic_cos"] > sim["random_cos"]


def test_content_similarity_of_raw_rows_matches_the_matrix_normalised_up_front():
    # The sampled rows are normalised one by one; the figures are those of a matrix normalised
    # whole beforehand (up to the rounding of normalising an already unit row again).
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 24)).astype(np.float32)
    x[7] = 0  # a zero row stays zero
    labels = rng.integers(0, 40, size=3000).astype(str)
    whole = x.astype(np.float64)
    norms = np.linalg.norm(whole, axis=1, keepdims=True)
    whole = np.divide(whole, norms, out=np.zeros_like(whole), where=norms > 0)
    sim, reference = content_similarity(x, labels, n_pairs=5000, seed=2), content_similarity(whole, labels, 5000, 2)
    for key in ("same_topic_cos", "random_cos"):
        assert sim[key] == pytest.approx(reference[key], rel=1e-12, abs=1e-15)


def test_pair_recall_searches_as_an_exact_index_does():
    import faiss

    rng = np.random.default_rng(4)
    x = rng.normal(size=(5000, 32)).astype(np.float32)
    a, b = rng.choice(5000, 300, replace=False), rng.choice(5000, 300, replace=False)
    index = faiss.IndexFlatIP(32)
    index.add(x)
    queries, targets = np.concatenate([a, b]), np.concatenate([b, a])
    _, found = index.search(x[queries], 11)
    found = np.where(found == queries[:, None], -1, found)
    rank_ok = (found >= 0).cumsum(axis=1) <= 10
    hits = ((found == targets[:, None]) & rank_ok).any(axis=1)
    assert pair_recall(x, a, b, ks=(10,))[10] == float(((hits[:300] + hits[300:]) / 2.0).mean())


def test_pairs_outside_the_catalogue_are_refused():
    pairs = pd.DataFrame({"item_a": ["a"], "item_b": ["zzz"]})
    with pytest.raises(ValueError, match="missing from the catalogue"):
        unique_pairs(pairs, np.array(["a", "b"]))


def test_a_warm_start_from_other_modalities_trains_without_the_stability_term():
    features, pairs, _, _ = planted(n=100)
    a, b, _ = unique_pairs(pairs, features.item_ids)
    config = AlignerTrainConfig(**{**TINY.__dict__, "steps": 2})
    previous, _ = train_aligner(features, a, b, config)
    other = MultimodalFeatures(item_ids=features.item_ids, text_columns=[], text_keys=features.text_keys,
                               modality_names=["y"], pooled={"y": features.pooled["x"]},
                               dense_tokens={"y": features.dense_tokens["x"]}, store_root="", encoder_name="none")
    logged = []
    model, _ = train_aligner(other, a, b, config, warm_start=previous, log=logged.append)
    assert model.info["warm_started"] and not model.info["stability_anchored"]
    assert any("stability term off" in line for line in logged)
