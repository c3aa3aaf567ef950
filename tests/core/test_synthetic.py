from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from semid_assets.core.data import schema
from semid_assets.core.data import taxonomy
from semid_assets.core.data.synthetic import (
    MAX_ITEMS,
    SIZES,
    SyntheticSpec,
    generate,
    spec_for_size,
    topic_embeddings,
)

TINY = spec_for_size("tiny")
TEXT_FIELDS = ("caption", "tags", "asr", "ocr")


@pytest.fixture(scope="module")
def platform():
    return generate(TINY)


@pytest.fixture(scope="module")
def items(platform) -> pd.DataFrame:
    return platform.items.drop_columns(["emb_visual"]).to_pandas()


def _covers(table: pa.Table) -> np.ndarray:
    nested = table.column("emb_visual").combine_chunks()
    return nested.flatten().flatten().to_numpy().reshape(table.num_rows, 6, 64)[:, 0]


def _month_end(month: str) -> np.datetime64:
    return (np.datetime64(month, "M") + 1).astype("datetime64[us]")


# --------------------------------------------------------------------------- taxonomy


def test_taxonomy_is_large_hierarchical_and_made_of_real_words():
    assert len(taxonomy.TAXONOMY) >= 10
    for category_words, subcategories in taxonomy.TAXONOMY.values():
        assert len(category_words) >= 3
        assert len(subcategories) == 4
        for subcategory_words, topics in subcategories.values():
            assert len(subcategory_words) >= 3
            assert len(topics) == 4
            assert all(len(words) >= 6 for words in topics.values())
    topics = taxonomy.fine_topics()
    assert len(topics) >= 10 * 4 * 4
    assert len({topic for _, _, topic in topics}) == len(topics), "fine topic names must be unique"

    owners: dict[str, str] = {}
    nodes = [(name, words) for name, words in taxonomy.COMMUNITY_STYLES] + [("filler", taxonomy.FILLER_WORDS)]
    for category, (category_words, subcategories) in taxonomy.TAXONOMY.items():
        nodes.append((category, category_words))
        for subcategory, (subcategory_words, fine) in subcategories.items():
            nodes.append((subcategory, subcategory_words))
            nodes.extend(fine.items())
    for node, words in nodes:
        for word in words:
            # Real English words: lowercase letters only, with a vowel (or y), never a code.
            assert re.fullmatch(r"[a-z]+", word) and re.search(r"[aeiouy]", word), (node, word)
            assert owners.setdefault(word, node) == node, f"{word!r} is in both {owners[word]} and {node}"


def test_community_style_cues():
    assert len(taxonomy.COMMUNITY_STYLES) >= 20
    assert all(len(words) >= 3 for _, words in taxonomy.COMMUNITY_STYLES)
    names = taxonomy.community_names()
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"c\d\d-[a-z]+", name) for name in names)


# --------------------------------------------------------------------------- spec


def test_spec_for_size_names_and_counts():
    assert {name: spec_for_size(name).n_items for name in SIZES} == SIZES
    assert spec_for_size("default").n_users == 8_000
    assert spec_for_size("tiny").n_users == 200
    assert spec_for_size(10).n_users == 100  # never fewer than 100 users
    assert spec_for_size(1234).n_items == 1234
    assert spec_for_size("1234") == spec_for_size(1234)
    assert spec_for_size("tiny", seed=3).seed == 3
    assert spec_for_size(MAX_ITEMS).n_items == MAX_ITEMS


@pytest.mark.parametrize("bad", ["huge", "", "Tiny"])
def test_spec_for_size_rejects_unknown_names(bad):
    with pytest.raises(ValueError, match="tiny, small, default"):
        spec_for_size(bad)


@pytest.mark.parametrize("bad", [0, -5, MAX_ITEMS + 1])
def test_spec_for_size_rejects_out_of_range_counts(bad):
    with pytest.raises(ValueError, match="between 1 and 1,000,000"):
        spec_for_size(bad)


def test_spec_rejects_malformed_start_month():
    with pytest.raises(ValueError, match="YYYY-MM"):
        SyntheticSpec(n_items=10, n_users=10, start_month="2025-13")


# --------------------------------------------------------------------------- determinism


def test_same_spec_gives_identical_tables_and_other_seed_differs():
    generate.cache_clear()
    first = generate(TINY)
    generate.cache_clear()
    second = generate(TINY)
    assert first is not second
    assert first.items.equals(second.items)
    pd.testing.assert_frame_equal(first.interactions, second.interactions)
    assert generate(TINY) is second, "results are cached per spec"

    other = generate(spec_for_size("tiny", seed=1))
    assert not other.items.equals(first.items)
    assert not other.items.column("caption").equals(first.items.column("caption"))
    assert not other.interactions.equals(first.interactions)


# --------------------------------------------------------------------------- schema


def test_item_table_schema(platform):
    table = platform.items
    expected = {
        schema.ITEM_ID: pa.string(),
        schema.CREATED_AT: pa.timestamp("us"),
        **{field: pa.string() for field in TEXT_FIELDS},
        "emb_visual": pa.list_(pa.list_(pa.float32(), 64)),
        schema.TRUTH_CATEGORY: pa.string(),
        schema.TRUTH_SUBCATEGORY: pa.string(),
        schema.TRUTH_TOPIC: pa.string(),
        schema.TRUTH_COMMUNITY: pa.string(),
    }
    assert {field.name: field.type for field in table.schema} == expected
    assert table.num_rows == TINY.n_items
    assert all(table.column(name).null_count == 0 for name in table.column_names)
    visual = table.column("emb_visual").combine_chunks()
    assert set(visual.value_lengths().to_pylist()) == {6}


def test_item_ids_unique_formatted_and_sorted(items):
    assert items[schema.ITEM_ID].is_unique
    assert items[schema.ITEM_ID].str.fullmatch(r"v\d{7}").all()
    ordered = items.sort_values([schema.CREATED_AT, schema.ITEM_ID], kind="stable")
    assert (ordered.index == items.index).all()


def test_truth_columns_follow_taxonomy(items):
    lookup = {topic: (category, subcategory) for category, subcategory, topic in taxonomy.fine_topics()}
    for category, subcategory, topic in items[
        [schema.TRUTH_CATEGORY, schema.TRUTH_SUBCATEGORY, schema.TRUTH_TOPIC]
    ].itertuples(index=False):
        assert lookup[topic] == (category, subcategory)
    assert set(items[schema.TRUTH_COMMUNITY]) <= set(taxonomy.community_names())


def test_texts_have_the_promised_shape_and_topic(items):
    def word_counts(field):
        return items[field].str.split().str.len()

    assert word_counts("caption").between(6, 10).all()
    assert word_counts("tags").between(1, 5).all() and word_counts("tags").mean() > 3
    assert items["tags"].str.split().explode().str.fullmatch(r"#[a-z]+").all()
    assert word_counts("asr").between(12, 20).all()
    assert word_counts("ocr").between(2, 4).all()

    keywords = {
        topic: set(words)
        for _, subcategories in taxonomy.TAXONOMY.values()
        for _, fine in subcategories.values()
        for topic, words in fine.items()
    }
    caption_words = items["caption"].str.split()
    named = [bool(keywords[topic] & set(words)) for topic, words in zip(items[schema.TRUTH_TOPIC], caption_words)]
    assert all(named), "every caption names its fine topic at least once"


def test_interaction_schema_and_order(platform):
    frame = platform.interactions
    assert list(frame.columns) == list(schema.INTERACTION_REQUIRED)
    assert pd.api.types.is_string_dtype(frame[schema.USER_ID])
    assert pd.api.types.is_string_dtype(frame[schema.ITEM_ID])
    assert frame[schema.TS].dtype == np.dtype("datetime64[us]")
    assert frame[schema.LABEL].dtype == np.int8
    assert set(frame[schema.LABEL].unique()) == {0, 1}
    assert frame[schema.USER_ID].str.fullmatch(r"u\d{6}").all()
    assert isinstance(frame.index, pd.RangeIndex)
    ordered = frame.sort_values([schema.TS, schema.USER_ID, schema.ITEM_ID], kind="stable")
    assert (ordered.index == frame.index).all()


def test_no_interaction_precedes_its_item(platform, items):
    created = items.set_index(schema.ITEM_ID)[schema.CREATED_AT]
    frame = platform.interactions
    assert frame[schema.ITEM_ID].isin(created.index).all()
    assert (frame[schema.TS].to_numpy() >= created.loc[frame[schema.ITEM_ID]].to_numpy()).all()


def test_positive_rate_is_sane(platform):
    rate = platform.interactions[schema.LABEL].mean()
    assert 0.2 <= rate <= 0.45


# --------------------------------------------------------------------------- monthly snapshots


def test_catalogue_grows_every_month(platform):
    months = platform.months
    assert months == [f"2025-{m:02d}" for m in range(1, 13)]
    item_counts = [platform.items_as_of(month).num_rows for month in months]
    interaction_counts = [len(platform.interactions_as_of(month)) for month in months]
    assert item_counts[-1] == TINY.n_items
    assert len(platform.interactions_as_of(months[-1])) == len(platform.interactions)
    assert all(later > earlier for earlier, later in zip(item_counts, item_counts[1:]))
    assert all(later > earlier for earlier, later in zip(interaction_counts, interaction_counts[1:]))
    assert interaction_counts[0] > 0

    created = platform.items.column(schema.CREATED_AT).to_numpy()
    back_catalogue = (created < np.datetime64("2025-01-01", "us")).mean()
    assert 0.35 <= back_catalogue <= 0.45
    new_per_month = np.diff([int((created < np.datetime64("2025-01-01", "us")).sum()), *item_counts])
    assert new_per_month[-3:].mean() > new_per_month[:3].mean(), "a growing platform publishes more each month"


def test_snapshots_respect_month_bounds(platform):
    for month in ("2025-01", "2025-06", "2025-12"):
        end = _month_end(month)
        snapshot = platform.items_as_of(month)
        created = snapshot.column(schema.CREATED_AT).to_numpy()
        assert (created < end).all()
        everything = platform.items.column(schema.CREATED_AT).to_numpy()
        assert snapshot.num_rows == int((everything < end).sum())

        log = platform.interactions_as_of(month)
        assert (log[schema.TS] < end).all()
        assert len(log) == int((platform.interactions[schema.TS] < end).sum())
        assert log[schema.ITEM_ID].isin(set(snapshot.column(schema.ITEM_ID).to_pylist())).all()


@pytest.mark.parametrize("bad", ["2024-12", "2026-01", "2025-1", "January", None])
def test_snapshots_reject_months_outside_the_range(platform, bad):
    with pytest.raises(ValueError, match="2025-01 to 2025-12"):
        platform.items_as_of(bad)
    with pytest.raises(ValueError, match="2025-01 to 2025-12"):
        platform.interactions_as_of(bad)


# --------------------------------------------------------------------------- hidden structure


def test_visual_similarity_follows_the_topic_hierarchy(platform, items):
    covers = _covers(platform.items)
    unit = covers / np.linalg.norm(covers, axis=1, keepdims=True)
    similarity = (unit @ unit.T)[np.triu_indices(len(unit), k=1)]

    def same(column):
        values = items[column].to_numpy()
        return (values[:, None] == values[None, :])[np.triu_indices(len(values), k=1)]

    same_topic, same_category = same(schema.TRUTH_TOPIC), same(schema.TRUTH_CATEGORY)
    within_topic = similarity[same_topic].mean()
    within_category = similarity[same_category & ~same_topic].mean()
    across_categories = similarity[~same_category].mean()
    assert within_topic > within_category + 0.1
    assert within_category > across_categories + 0.1


def test_frames_stay_close_to_their_cover(platform):
    vectors = platform.items.column("emb_visual").combine_chunks().flatten().flatten().to_numpy()
    vectors = vectors.reshape(-1, 6, 64)
    assert vectors.dtype == np.float32
    unit = vectors / np.linalg.norm(vectors, axis=2, keepdims=True)
    own = np.einsum("nd,nfd->nf", unit[:, 0], unit[:, 1:]).mean()
    other = np.einsum("nd,nfd->nf", unit[:, 0], np.roll(unit[:, 1:], 1, axis=0)).mean()
    assert own > other + 0.2


def test_positives_co_consume_communities(platform, items):
    positives = platform.interactions.loc[platform.interactions[schema.LABEL] == 1]
    community = items.set_index(schema.ITEM_ID)[schema.TRUTH_COMMUNITY]
    positives = positives.assign(community=community.loc[positives[schema.ITEM_ID]].to_numpy())

    # Chance that two positives of one user share a community, versus two random positives.
    per_community = positives.groupby([schema.USER_ID, "community"]).size()
    per_user = positives.groupby(schema.USER_ID).size()
    same_user = (per_community * (per_community - 1)).sum() / (per_user * (per_user - 1)).sum()
    chance = (positives["community"].value_counts(normalize=True) ** 2).sum()
    assert same_user > 2.5 * chance


def test_content_barely_reveals_community(platform, items):
    covers = _covers(platform.items)
    unit = covers / np.linalg.norm(covers, axis=1, keepdims=True)
    upper = np.triu_indices(len(unit), k=1)
    similarity = (unit @ unit.T)[upper]
    categories = items[schema.TRUTH_CATEGORY].to_numpy()
    communities = items[schema.TRUTH_COMMUNITY].to_numpy()
    other_category = (categories[:, None] != categories[None, :])[upper]
    same_community = (communities[:, None] == communities[None, :])[upper]
    gap = similarity[other_category & same_community].mean() - similarity[other_category & ~same_community].mean()
    assert 0.0 < gap < 0.1


# --------------------------------------------------------------------------- benchmark vectors


def test_topic_embeddings_are_hierarchical_and_deterministic():
    vectors, labels = topic_embeddings(3000, dim=32, seed=5)
    assert vectors.shape == (3000, 32) and vectors.dtype == np.float32
    assert labels.shape == (3000,) and np.issubdtype(labels.dtype, np.integer)
    assert labels.min() >= 0 and labels.max() < len(taxonomy.fine_topics())
    again, again_labels = topic_embeddings(3000, dim=32, seed=5)
    assert np.array_equal(vectors, again) and np.array_equal(labels, again_labels)
    assert not np.array_equal(vectors, topic_embeddings(3000, dim=32, seed=6)[0])

    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    upper = np.triu_indices(len(unit), k=1)
    similarity = (unit @ unit.T)[upper]
    categories = np.array([category for category, _, _ in taxonomy.fine_topics()])[labels]
    same_topic = (labels[:, None] == labels[None, :])[upper]
    same_category = (categories[:, None] == categories[None, :])[upper]
    assert similarity[same_topic].mean() > similarity[same_category & ~same_topic].mean() > similarity[
        ~same_category
    ].mean()


# --------------------------------------------------------------------------- a user's catalogue


def test_precomputed_platform_is_a_valid_catalogue_with_steady_arrivals():
    from semid_assets.core.data.contracts import validate_interactions, validate_items
    from semid_assets.core.data.synthetic import precomputed_platform

    spec = SyntheticSpec(n_items=4000, n_users=300, seed=3, start_month="2025-01", n_months=2)
    items, log = precomputed_platform(spec, dim=32, new_share=0.05)
    assert [f.name for f in items.schema][:4] == [schema.ITEM_ID, schema.CREATED_AT, "caption", "emb_content"]
    assert items.schema.field("emb_content").type == pa.list_(pa.float32(), 32)
    validate_items(items, expected_dims={"emb_content": 32})
    kept, _ = validate_interactions(log, items.column(schema.ITEM_ID).to_numpy(zero_copy_only=False))
    assert len(kept) == len(log) > 0
    created = items.column(schema.CREATED_AT).to_numpy()
    for month in ("2025-01", "2025-02"):
        start = np.datetime64(month, "M").astype("datetime64[us]")
        assert ((created >= start) & (created < _month_end(month))).sum() == 200  # 5 % of 4,000 each month
    again, log_again = precomputed_platform(spec, dim=32, new_share=0.05)
    assert again.equals(items) and log_again.equals(log)
    bare, _ = precomputed_platform(spec, dim=32, new_share=0.05, text_field=None)
    assert "caption" not in bare.column_names and bare.column("emb_content").equals(items.column("emb_content"))
    with pytest.raises(ValueError, match="new_share"):
        precomputed_platform(spec, new_share=0.6)
    with pytest.raises(ValueError, match="text_field"):
        precomputed_platform(spec, text_field="title")
