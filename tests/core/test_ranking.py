"""The CTR ranker and the ranking experiment on planted data where preference follows content."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from semid_assets.core.evaluation.ranker import ItemInput, RankerOptions, predict, train_ranker
from semid_assets.core.evaluation.ranking import (VARIANTS, RankingOptions, SidVersion, evaluate_month,
                                                  older_version)
from semid_assets.core.evaluation.ranking_data import positive_history
from semid_assets.core.evaluation.ranking_tables import shown

MONTH = "2025-03"
NEW, DORMANT = 120, 40


def planted(seed: int = 0, n_items: int = 600, n_users: int = 300, n_rows: int = 30_000, invert_new: bool = False,
            n_new: int = NEW, n_dormant: int = DORMANT):
    """Items of 8 topics (content vector and SID follow the topic); each user likes 2 topics.

    The last ``n_new`` items are created in the evaluation month; the ``n_dormant`` before them
    are old but shown only from the evaluation month on (strictly cold, not new). Labels
    depend only on whether the item's topic is one the user likes (inverted on new items
    with ``invert_new``: a planted anomaly).
    """
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, 8, n_items)
    centroids = rng.normal(size=(8, 16))
    vectors = (centroids[topic] + 0.3 * rng.normal(size=(n_items, 16))).astype(np.float32)
    codes = np.stack([topic, rng.integers(0, 8, n_items), rng.integers(0, 8, n_items)], axis=1)
    new = np.arange(n_items) >= n_items - n_new
    dormant = ~new & (np.arange(n_items) >= n_items - n_new - n_dormant)
    created = np.where(new, np.datetime64("2025-03-05"), np.datetime64("2024-12-01")).astype("datetime64[us]")
    likes = np.stack([rng.permutation(8)[:2] for _ in range(n_users)])
    user = rng.integers(0, n_users, n_rows)
    ts = np.datetime64("2025-01-01", "s") + rng.integers(0, 89 * 86400, n_rows).astype("timedelta64[s]")
    in_march = ts >= np.datetime64("2025-03-01")
    draw = rng.random(n_rows)
    item = np.where(in_march & (draw < 0.5), rng.choice(np.flatnonzero(new), n_rows),
                    np.where(in_march & (draw < 0.6), rng.choice(np.flatnonzero(dormant), n_rows),
                             rng.choice(np.flatnonzero(~new & ~dormant), n_rows)))
    liked = (likes[user] == topic[item, None]).any(axis=1)
    if invert_new:
        liked = np.where(new[item], ~liked, liked)
    label = (rng.random(n_rows) < np.where(liked, 0.8, 0.1)).astype(np.int8)
    order = np.argsort(ts, kind="stable")
    interactions = pd.DataFrame({"user_id": [f"u{u}" for u in user[order]],
                                 "item_id": [f"v{i}" for i in item[order]],
                                 "ts": ts[order].astype("datetime64[us]"), "label": label[order]})
    item_ids = np.array([f"v{i}" for i in range(n_items)], dtype=object)
    return interactions, item_ids, created, codes, vectors


FAST = RankingOptions(n_boot=100, ranker=RankerOptions(max_epochs=4, batch_size=1024, lr=0.01))


@pytest.fixture(scope="module")
def report():
    interactions, item_ids, created, codes, vectors = planted()
    older = SidVersion("2025-01", np.roll(codes, 1, axis=0), 8)  # another version: codes of other items
    return evaluate_month(MONTH, interactions, item_ids, created, SidVersion(MONTH, codes, 8), vectors,
                          older, FAST)


def test_every_variant_trains_within_the_budget_the_catalogue_sets(report):
    models = report.models.set_index("model")
    assert set(VARIANTS) <= set(models.index)
    assert report.budget["budget_rows"] == 600 // 8 and report.budget["budget_parameters"] == 75 * 32
    budgeted = models.loc[["hash", "sid_unigram", "sid_bigram", "sid_spm"], "table rows"]
    assert (budgeted <= 75).all()
    # The unconstrained reference: a row per item it trained on, and the OOV row.
    assert models.loc["item_id", "table rows"] == 600 - NEW - DORMANT + 1
    assert pd.isna(models.loc["dense", "table rows"]) and models.loc["dense", "item parameters"] == 16 * 32 + 32
    auc = report.auc
    assert set(auc["slice"]) == {"all", "strictly cold", "new this month"}
    assert auc["auc"].between(0, 1).all()


def test_two_cold_slices_with_their_counts(report):
    slices = report.slices.set_index("slice")
    assert slices.loc["new this month", "items"] == NEW
    # Dormant items were in the catalogue but never shown before the month: strictly cold, not new.
    assert slices.loc["strictly cold", "items"] == NEW + DORMANT
    assert slices.loc["strictly cold", "impressions"] > slices.loc["new this month", "impressions"] > 0


def test_sid_features_beat_hashing_on_strictly_cold_items_when_preference_follows_content(report):
    versus = report.versus_hash.set_index(["model", "slice"])["verdict"]
    assert versus[("sid_unigram", "strictly cold")] == "better"
    assert versus[("dense", "strictly cold")] == "better"
    cold = report.auc[report.auc["slice"] == "strictly cold"].set_index("model")["auc"]
    assert cold["sid_unigram"] > 0.75 and cold["hash"] < 0.65
    # Item-ID rows of strictly cold items all sit on the untrained OOV row: nothing to rank them by.
    assert report.models.set_index("model").loc["item_id", "strictly cold features on OOV"] == 1.0


def test_wide_intervals_say_too_few_to_decide(report):
    strict = RankingOptions(n_boot=100, undecided_width=0.01, variants=("hash", "sid_unigram"),
                            stability_variants=(), ranker=FAST.ranker)
    interactions, item_ids, created, codes, vectors = planted(n_rows=8000, n_new=6)
    small = evaluate_month(MONTH, interactions, item_ids, created, SidVersion(MONTH, codes, 8), vectors,
                           options=strict)
    table = shown(small.auc).set_index(["model", "slice"])["auc"]
    assert table[("sid_unigram", "new this month")] == "too few to decide"
    assert small.auc["auc"].map(np.isfinite).all()  # the estimates stay in the stored table
    assert (small.versus_hash["verdict"] == "too few to decide").all()
    # Six new items, hundreds of users: the interval over items is the wider one on the new items.
    new = small.auc.set_index(["model", "slice"]).loc[("sid_unigram", "new this month")]
    assert new["wider"] == "items" and new["items high"] - new["items low"] > new["users high"] - new["users low"]


def test_an_auc_below_chance_is_flagged_with_its_cause():
    interactions, item_ids, created, codes, vectors = planted(n_rows=12_000, invert_new=True)
    warnings = []
    flagged = evaluate_month(MONTH, interactions, item_ids, created, SidVersion(MONTH, codes, 8), vectors,
                             options=RankingOptions(n_boot=100, variants=("hash", "sid_unigram"),
                                                    stability_variants=(), ranker=FAST.ranker),
                             warn=warnings.append)
    found = {(a.model, a.slice) for a in flagged.anomalies}
    assert ("sid_unigram", "new this month") in found
    assert flagged.metrics["anomalies"] == len(flagged.anomalies) == len(warnings)
    assert "below chance" in warnings[0] and "within items" in warnings[0].lower()


def test_stability_detects_an_unrelated_older_version(report):
    # The "older" SIDs give items the codes of other items: the ranker must lose AUC with them.
    stability = report.stability.set_index(["model", "slice"])
    assert stability.loc[("sid_unigram", "strictly cold"), "auc old − current"] < -0.05
    assert not stability.loc[("sid_unigram", "all"), "within 0.005"]


def test_an_older_version_is_checked_by_its_input_width_not_its_latent_width():
    # RQ-VAE / LETTER: 16-dim input, 4-dim latent codebooks.
    tokenizer = SimpleNamespace(dim=16, codebooks=np.zeros((3, 8, 4), np.float32),
                                encode=lambda X: np.zeros((len(X), 3), np.int32))
    version = older_version("2025-01", tokenizer, np.zeros((5, 16), np.float32), MONTH)
    assert version.codes.shape == (5, 3) and version.codebook_size == 8
    with pytest.raises(ValueError, match="takes 16-dim embeddings but 2025-03's are 32-dim"):
        older_version("2025-01", tokenizer, np.zeros((5, 32), np.float32), MONTH)


def test_same_seed_same_scores_and_a_different_seed_differs():
    interactions, item_ids, created, codes, vectors = planted(n_rows=8000)
    users = pd.factorize(interactions["user_id"])[0]
    items = pd.Index(item_ids).get_indexer(interactions["item_id"])
    labels = interactions["label"].to_numpy()
    item_input = ItemInput(bags=codes + np.array([0, 8, 16]), rows=24)
    n_users = users.max() + 1

    history = positive_history(users, items, labels, 5)

    def scores(seed):
        model = train_ranker(users, items, labels, n_users, item_input, RankerOptions(max_epochs=2, seed=seed),
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
        RankingOptions(variants=("hash", "ids"))
    with pytest.raises(ValueError, match="table_rows"):
        RankingOptions(table_rows=1)


def test_history_holds_each_users_earlier_clicks_only():
    users = np.array([0, 1, 0, 0, 1, 0])
    items = np.array([10, 20, 11, 12, 21, 13])
    labels = np.array([1, 1, 0, 1, 1, 1])
    assert positive_history(users, items, labels, 2).tolist() == [
        [-1, -1], [-1, -1], [-1, 10], [-1, 10], [-1, 20], [10, 12]]
