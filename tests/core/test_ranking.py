"""The CTR ranker and the ranking experiment on planted data where preference follows content."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from semid_assets.core.evaluation.ranker import ItemInput, RankerConfig, predict, train_ranker
from semid_assets.core.evaluation.ranking import VARIANTS, EvalConfig, SidVersion, evaluate_month, positive_history

MONTH = "2025-03"


def planted(seed: int = 0, n_items: int = 600, n_users: int = 300, n_rows: int = 30_000):
    """Items of 8 topics (content vector and SID follow the topic); each user likes 2 topics.

    A fifth of the items are created in the evaluation month (cold); labels depend only
    on whether the item's topic is one the user likes.
    """
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, 8, n_items)
    centroids = rng.normal(size=(8, 16))
    vectors = (centroids[topic] + 0.3 * rng.normal(size=(n_items, 16))).astype(np.float32)
    codes = np.stack([topic, rng.integers(0, 8, n_items), rng.integers(0, 8, n_items)], axis=1)
    cold = np.arange(n_items) >= int(0.8 * n_items)
    created = np.where(cold, np.datetime64("2025-03-05"), np.datetime64("2024-12-01")).astype("datetime64[us]")
    likes = np.stack([rng.permutation(8)[:2] for _ in range(n_users)])
    user = rng.integers(0, n_users, n_rows)
    ts = np.datetime64("2025-01-01", "s") + rng.integers(0, 89 * 86400, n_rows).astype("timedelta64[s]")
    in_march = ts >= np.datetime64("2025-03-01")
    item = np.where(in_march & (rng.random(n_rows) < 0.5), rng.choice(np.flatnonzero(cold), n_rows),
                    rng.choice(np.flatnonzero(~cold), n_rows))
    liked = (likes[user] == topic[item, None]).any(axis=1)
    label = (rng.random(n_rows) < np.where(liked, 0.8, 0.1)).astype(np.int8)
    order = np.argsort(ts, kind="stable")
    interactions = pd.DataFrame({"user_id": [f"u{u}" for u in user[order]],
                                 "item_id": [f"v{i}" for i in item[order]],
                                 "ts": ts[order].astype("datetime64[us]"), "label": label[order]})
    item_ids = np.array([f"v{i}" for i in range(n_items)], dtype=object)
    return interactions, item_ids, created, codes, vectors


FAST = EvalConfig(n_boot=100, ranker=RankerConfig(max_epochs=4, batch_size=1024, lr=0.01))


@pytest.fixture(scope="module")
def report():
    interactions, item_ids, created, codes, vectors = planted()
    older = SidVersion("2025-01", np.roll(codes, 1, axis=0), 8)  # another version: codes of other items
    return evaluate_month(MONTH, interactions, item_ids, created, SidVersion(MONTH, codes, 8), vectors,
                          older, FAST)


def test_every_variant_trains_and_scores(report):
    table = report.table.set_index("model")
    assert set(VARIANTS) <= set(table.index)
    assert table["auc"].between(0, 1).all() and np.isfinite(table["log-loss"]).all()
    assert (table.loc[["dense", "sid_unigram", "sid_bigram", "sid_spm"], "auc"] > 0.7).all()
    assert report.counts["cold_items"] == 120 and report.counts["cold_eval_rows"] > 0


def test_sid_features_beat_hashing_on_cold_items_when_preference_follows_content(report):
    versus = report.versus_hash.set_index("model")
    assert versus.loc["sid_unigram", "beats hash on cold items"]
    assert versus.loc["dense", "beats hash on cold items"]
    cold = report.table.set_index("model")["cold auc"]
    assert cold["sid_unigram"] > 0.75 and cold["hash"] < 0.65


def test_stability_detects_an_unrelated_older_version(report):
    # The "older" SIDs give items the codes of other items: the ranker must lose AUC with them.
    stability = report.stability.set_index("model")
    assert stability.loc["sid_unigram", "cold auc old − current"] < -0.05
    assert not stability.loc["sid_unigram", "within 0.005"]


def test_same_seed_same_scores_and_a_different_seed_differs():
    interactions, item_ids, created, codes, vectors = planted(n_rows=8000)
    users = pd.factorize(interactions["user_id"])[0]
    items = pd.Index(item_ids).get_indexer(interactions["item_id"])
    labels = interactions["label"].to_numpy()
    item_input = ItemInput(bags=codes + np.array([0, 8, 16]), rows=24)
    n_users = users.max() + 1

    history = positive_history(users, items, labels, 5)

    def scores(seed):
        model = train_ranker(users, items, labels, n_users, item_input, RankerConfig(max_epochs=2, seed=seed),
                             history=history)
        return predict(model, users[:500], items[:500], history=history[:500])

    assert np.array_equal(scores(3), scores(3))
    assert not np.array_equal(scores(3), scores(4))


def test_bad_inputs_name_the_problem():
    interactions, item_ids, created, codes, vectors = planted(n_rows=2000)
    with pytest.raises(ValueError, match="no impressions before 2025-01"):
        evaluate_month("2025-01", interactions, item_ids, created, SidVersion("2025-01", codes, 8), vectors)
    with pytest.raises(ValueError, match="catalogue lacks"):
        evaluate_month(MONTH, interactions, item_ids[:-100], created[:-100], SidVersion(MONTH, codes[:-100], 8),
                       vectors[:-100])
    with pytest.raises(ValueError, match="unknown ranking variant"):
        EvalConfig(variants=("hash", "ids"))


def test_history_holds_each_users_earlier_clicks_only():
    users = np.array([0, 1, 0, 0, 1, 0])
    items = np.array([10, 20, 11, 12, 21, 13])
    labels = np.array([1, 1, 0, 1, 1, 1])
    assert positive_history(users, items, labels, 2).tolist() == [
        [-1, -1], [-1, -1], [-1, 10], [-1, 10], [-1, 20], [10, 12]]
