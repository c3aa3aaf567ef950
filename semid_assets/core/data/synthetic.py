"""A deterministic short-video platform: the embedded default dataset.

Items carry short texts and visual vectors generated from a hidden topic hierarchy
(category > sub-category > fine topic) and a hidden collaborative community that is
independent of topic. Users have drifting topic interests and belong to one community;
their impressions and labels follow both, so content embeddings can recover topics but
only co-consumption reveals communities. Everything is a pure function of the spec.

Tables follow ``schema.py``; the ``truth_*`` columns are for evaluation only.
"""

from __future__ import annotations

import functools
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd
import pyarrow as pa

from semid_assets.core.data import schema
from semid_assets.core.data import taxonomy

SIZES: dict[str, int] = {"tiny": 500, "small": 5_000, "default": 20_000}
MAX_ITEMS = 1_000_000

VISUAL_DIM = 64
FRAMES_PER_ITEM = 6  # the cover, then 5 frames
BACK_CATALOGUE_SHARE = 0.4
USERS_PER_ITEM = 0.4
MIN_USERS = 100

# Spread of the visual/topic latents, coarse to fine. Each level is smaller than the one
# above so that neighbourhoods nest: a fine topic sits inside its sub-category's region,
# which sits inside its category's. The item spread is comparable to the fine offset, so
# fine topics overlap a little and telling them apart is a real task.
_CATEGORY_SCALE = 1.0
_SUBCATEGORY_SCALE = 0.8
_FINE_SCALE = 0.6
_ITEM_SCALE = 0.7
# Small on purpose: how a video looks should only hint at who co-watches it.
_COMMUNITY_SCALE = 0.25
_COVER_NOISE = 0.25
_FRAME_NOISE = 0.5

_TOPIC_ZIPF = 0.7
_ITEM_ZIPF = 0.75
_COMMUNITY_ZIPF = 0.5

_MEAN_MONTHLY_IMPRESSIONS = 10.0
_ACTIVITY_SIGMA = 0.8
_MONTHLY_ACTIVITY_GROWTH = 0.02
_INTEREST_DRIFT = 0.1
_SUBCATEGORY_INTEREST_SHARE = 0.3
_MAX_INTERESTS = 3
# Where an impression comes from: a topic interest, the user's community, or the feed at large.
_SOURCE_SHARES = (0.5, 0.3, 0.2)
# A fine-topic interest also surfaces sibling topics, so behaviour mirrors the hierarchy.
_SIBLING_TOPIC_SHARE = 0.25
_RECENCY_FLOOR = 0.2
_RECENCY_DAYS = 45.0

_BASE_POSITIVE = 0.04
_FINE_MATCH_POSITIVE = 0.45
_SUBCATEGORY_MATCH_POSITIVE = 0.25
_CATEGORY_MATCH_POSITIVE = 0.08
_COMMUNITY_MATCH_POSITIVE = 0.35

_US_PER_SECOND = 1_000_000
_US_PER_DAY = 86_400 * _US_PER_SECOND


@dataclass(frozen=True)
class SyntheticSpec:
    n_items: int
    n_users: int
    seed: int = 0
    start_month: str = "2025-01"  # first of the monthly snapshots
    n_months: int = 12

    def __post_init__(self) -> None:
        if not 1 <= self.n_items <= MAX_ITEMS:
            raise ValueError(f"n_items must be between 1 and {MAX_ITEMS:,}, got {self.n_items}.")
        if self.n_users < 1:
            raise ValueError(f"n_users must be at least 1, got {self.n_users}.")
        if self.n_months < 1:
            raise ValueError(f"n_months must be at least 1, got {self.n_months}.")
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed}.")
        try:
            parsed = np.datetime64(self.start_month, "M")
        except ValueError:
            parsed = None
        if parsed is None or str(parsed) != self.start_month:
            raise ValueError(f"start_month must be a 'YYYY-MM' string, got {self.start_month!r}.")


def spec_for_size(size: str | int, seed: int = 0) -> SyntheticSpec:
    """The spec of a named size (``tiny`` / ``small`` / ``default``) or of an explicit item count."""
    if isinstance(size, str) and size.strip().isdigit():
        # Sizes often arrive from environment variables as text.
        size = int(size.strip())
    if isinstance(size, bool) or not isinstance(size, (str, int, np.integer)):
        raise ValueError(f"size must be one of {', '.join(SIZES)} or an item count, got {size!r}.")
    if isinstance(size, str):
        if size not in SIZES:
            raise ValueError(
                f"unknown synthetic size {size!r}; choose one of {', '.join(SIZES)} "
                f"or an item count between 1 and {MAX_ITEMS:,}."
            )
        n_items = SIZES[size]
    else:
        n_items = int(size)
        if not 1 <= n_items <= MAX_ITEMS:
            raise ValueError(f"synthetic item count must be between 1 and {MAX_ITEMS:,}, got {n_items:,}.")
    n_users = max(MIN_USERS, round(USERS_PER_ITEM * n_items))
    return SyntheticSpec(n_items=n_items, n_users=n_users, seed=int(seed))


@dataclass
class SyntheticPlatform:
    spec: SyntheticSpec
    items: pa.Table  # all items ever, sorted by (created_at, item_id)
    interactions: pd.DataFrame  # all impressions, sorted by (ts, user_id, item_id)

    @property
    def months(self) -> list[str]:
        first = np.datetime64(self.spec.start_month, "M")
        return [str(first + i) for i in range(self.spec.n_months)]

    def _cutoff(self, month: str) -> np.datetime64:
        months = self.months
        if not isinstance(month, str) or month not in months:
            raise ValueError(
                f"month {month!r} is outside the synthetic platform, whose months (YYYY-MM) "
                f"run from {months[0]} to {months[-1]}."
            )
        return (np.datetime64(month, "M") + 1).astype("datetime64[us]")

    def items_as_of(self, month: str) -> pa.Table:
        """Items created strictly before the first instant of the month after ``month``."""
        cutoff = self._cutoff(month)
        created = self.items.column(schema.CREATED_AT).to_numpy()
        return self.items.slice(0, int(np.searchsorted(created, cutoff, side="left")))

    def interactions_as_of(self, month: str) -> pd.DataFrame:
        """Impressions strictly before the first instant of the month after ``month``."""
        cutoff = self._cutoff(month)
        ts = self.interactions[schema.TS].to_numpy()
        return self.interactions.iloc[: int(np.searchsorted(ts, cutoff, side="left"))]


# --------------------------------------------------------------------------- structure


@dataclass(frozen=True)
class _Tree:
    category_names: np.ndarray
    subcategory_names: np.ndarray
    topic_names: np.ndarray
    topic_category: np.ndarray
    topic_subcategory: np.ndarray
    subcategory_category: np.ndarray
    community_names: np.ndarray

    @property
    def n_topics(self) -> int:
        return len(self.topic_names)

    @property
    def n_subcategories(self) -> int:
        return len(self.subcategory_names)

    @property
    def n_communities(self) -> int:
        return len(self.community_names)


@functools.cache
def _tree() -> _Tree:
    categories = list(taxonomy.TAXONOMY)
    subcategories: list[str] = []
    subcategory_category: list[int] = []
    topic_names, topic_category, topic_subcategory = [], [], []
    for category, subcategory, topic in taxonomy.fine_topics():
        if not subcategories or subcategories[-1] != subcategory:
            subcategories.append(subcategory)
            subcategory_category.append(categories.index(category))
        topic_names.append(topic)
        topic_category.append(categories.index(category))
        topic_subcategory.append(len(subcategories) - 1)
    return _Tree(
        category_names=np.array(categories, dtype=object),
        subcategory_names=np.array(subcategories, dtype=object),
        topic_names=np.array(topic_names, dtype=object),
        topic_category=np.array(topic_category, dtype=np.int64),
        topic_subcategory=np.array(topic_subcategory, dtype=np.int64),
        subcategory_category=np.array(subcategory_category, dtype=np.int64),
        community_names=np.array(taxonomy.community_names(), dtype=object),
    )


def _rng(seed: int, component: str) -> np.random.Generator:
    # One independent stream per named component: tuning one part of the generator never
    # shifts the random draws of another.
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(zlib.crc32(component.encode()),)))


def _zipf_weights(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    ranks = rng.permutation(n) + 1.0
    weights = ranks ** -exponent
    return weights / weights.sum()


def _topic_popularity(seed: int) -> np.ndarray:
    return _zipf_weights(_rng(seed, "topic-popularity"), _tree().n_topics, _TOPIC_ZIPF)


def _community_popularity(seed: int) -> np.ndarray:
    return _zipf_weights(_rng(seed, "community-popularity"), _tree().n_communities, _COMMUNITY_ZIPF)


def _topic_latents(seed: int, dim: int) -> np.ndarray:
    """Per-fine-topic centroids: category vector + sub-category offset + fine offset."""
    tree = _tree()
    rng = _rng(seed, f"topic-latents-{dim}")
    unit = 1.0 / np.sqrt(dim)
    category = rng.standard_normal((len(tree.category_names), dim)) * (_CATEGORY_SCALE * unit)
    subcategory = rng.standard_normal((tree.n_subcategories, dim)) * (_SUBCATEGORY_SCALE * unit)
    fine = rng.standard_normal((tree.n_topics, dim)) * (_FINE_SCALE * unit)
    return category[tree.topic_category] + subcategory[tree.topic_subcategory] + fine


_EMBEDDING_BLOCK_ROWS = 8_192


@functools.cache
def _gaussian_quantiles() -> np.ndarray:
    """The standard normal's 65,536 equal-mass quantiles, as float32."""
    normal = NormalDist()
    return np.array([normal.inv_cdf((i + 0.5) / 65_536) for i in range(65_536)], dtype=np.float32)


def topic_embeddings(n_items: int, dim: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Item vectors with the platform's topic structure, without running any encoder.

    Returns float32 ``[n_items, dim]`` vectors (topic centroid + item noise, drawn from
    the same hierarchical latents as the visual embeddings) and the int64 fine-topic
    label of each row. Topics are Zipf-popular, as in the platform. A prefix of rows does
    not depend on ``n_items``.
    """
    if n_items < 0 or dim < 1:
        raise ValueError(f"need n_items >= 0 and dim >= 1, got n_items={n_items}, dim={dim}.")
    centroids = _topic_latents(seed, dim).astype(np.float32)
    labels = _rng(seed, f"topic-embedding-labels-{dim}").choice(
        _tree().n_topics, size=n_items, p=_topic_popularity(seed)
    )
    # 16 random bits per value through the inverse-CDF table is ~3x faster than numpy's
    # normal sampler, and a 65,536-level Gaussian is indistinguishable for benchmarking.
    noise_levels = _gaussian_quantiles() * np.float32(_ITEM_SCALE / np.sqrt(dim))
    vectors = np.empty((n_items, dim), dtype=np.float32)
    starts = range(0, n_items, _EMBEDDING_BLOCK_ROWS)
    # One stream per fixed-size block: the result does not depend on how many threads
    # fill it, and cache-sized blocks keep a 1M x 256 draw to a few seconds.
    block_streams = np.random.SeedSequence(
        entropy=seed, spawn_key=(zlib.crc32(f"topic-embedding-noise-{dim}".encode()),)
    ).spawn(len(starts))

    def fill(start: int, stream: np.random.SeedSequence) -> None:
        block = vectors[start : start + _EMBEDDING_BLOCK_ROWS]
        codes = np.frombuffer(np.random.default_rng(stream).bytes(2 * block.size), dtype=np.uint16)
        np.take(noise_levels, codes.reshape(block.shape), out=block)
        block += centroids[labels[start : start + _EMBEDDING_BLOCK_ROWS]]

    if len(starts) <= 1:
        for start, stream in zip(starts, block_streams):
            fill(start, stream)
    else:
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            list(pool.map(fill, starts, block_streams))
    return vectors, labels.astype(np.int64)


# --------------------------------------------------------------------------- catalogue


def _month_boundaries(spec: SyntheticSpec) -> np.ndarray:
    """Month starts in µs, from a year before ``start_month`` to the end of the last month."""
    first = np.datetime64(spec.start_month, "M")
    months = first + np.arange(-12, spec.n_months + 1)
    return months.astype("datetime64[us]").astype(np.int64)


def _allocate(total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` by ``weights`` exactly (largest remainder), at least 1 each when possible."""
    counts = np.zeros(len(weights), dtype=np.int64)
    if total >= len(weights):
        counts += 1
        total -= len(weights)
    share = weights / weights.sum() * total
    counts += np.floor(share).astype(np.int64)
    leftover = total - int(np.floor(share).sum())
    counts[np.argsort(-(share - np.floor(share)), kind="stable")[:leftover]] += 1
    return counts


def _creation_times(spec: SyntheticSpec, rng: np.random.Generator) -> np.ndarray:
    bounds = _month_boundaries(spec)
    n_back = round(BACK_CATALOGUE_SHARE * spec.n_items)
    n_new = spec.n_items - n_back
    # A growing platform: each month brings a bit more than the last.
    monthly = _allocate(n_new, 1.0 + 0.1 * np.arange(spec.n_months))
    back = bounds[0] + rng.random(n_back) * (bounds[12] - bounds[0])
    month_of_new = np.repeat(np.arange(spec.n_months), monthly) + 12
    new = bounds[month_of_new] + rng.random(n_new) * (bounds[month_of_new + 1] - bounds[month_of_new])
    created = np.concatenate([back, new]).astype(np.int64)
    return np.sort(created - created % _US_PER_SECOND)


@dataclass(frozen=True)
class _Catalogue:
    created_us: np.ndarray
    topic: np.ndarray
    community: np.ndarray
    quality: np.ndarray  # Zipf item popularity, sums to 1


def _catalogue(spec: SyntheticSpec) -> _Catalogue:
    tree = _tree()
    rng = _rng(spec.seed, "catalogue")
    created = _creation_times(spec, rng)
    topic = rng.choice(tree.n_topics, size=spec.n_items, p=_topic_popularity(spec.seed))
    # Independent of topic: co-consumption cuts across what items are about.
    community = rng.choice(tree.n_communities, size=spec.n_items, p=_community_popularity(spec.seed))
    quality = _zipf_weights(rng, spec.n_items, _ITEM_ZIPF)
    return _Catalogue(created_us=created, topic=topic, community=community, quality=quality)


# --------------------------------------------------------------------------- text


@dataclass(frozen=True)
class _WordPools:
    vocabulary: np.ndarray  # object array of words
    fine: np.ndarray  # [n_topics, width] word ids, padded
    fine_len: np.ndarray
    subcategory: np.ndarray
    subcategory_len: np.ndarray
    category: np.ndarray
    category_len: np.ndarray
    style: np.ndarray
    style_len: np.ndarray
    filler: np.ndarray


@functools.cache
def _word_pools() -> _WordPools:
    vocabulary: list[str] = []
    index: dict[str, int] = {}

    def ids(words: list[str]) -> list[int]:
        for word in words:
            if word not in index:
                index[word] = len(vocabulary)
                vocabulary.append(word)
        return [index[word] for word in words]

    def padded(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        width = max(len(row) for row in rows)
        table = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            table[i, : len(row)] = row
        return table, np.array([len(row) for row in rows], dtype=np.int64)

    category_rows, subcategory_rows, fine_rows = [], [], []
    for category_words, subcategories in taxonomy.TAXONOMY.values():
        category_rows.append(ids(category_words))
        for subcategory_words, topics in subcategories.values():
            subcategory_rows.append(ids(subcategory_words))
            fine_rows.extend(ids(words) for words in topics.values())
    style_rows = [ids(words) for _, words in taxonomy.COMMUNITY_STYLES]
    filler = np.array(ids(taxonomy.FILLER_WORDS), dtype=np.int64)
    fine, fine_len = padded(fine_rows)
    subcategory, subcategory_len = padded(subcategory_rows)
    category, category_len = padded(category_rows)
    style, style_len = padded(style_rows)
    return _WordPools(
        vocabulary=np.array(vocabulary, dtype=object),
        fine=fine, fine_len=fine_len,
        subcategory=subcategory, subcategory_len=subcategory_len,
        category=category, category_len=category_len,
        style=style, style_len=style_len,
        filler=filler,
    )


@dataclass(frozen=True)
class _FieldRecipe:
    min_words: int
    max_words: int
    # Share of word slots drawn from: filler, fine topic, sub-category, category, another topic.
    mix: tuple[float, float, float, float, float]
    style_probability: float  # chance that one slot carries a community style word
    prefix: str = ""
    distinct: bool = False
    # Guarantee one fine-topic keyword: a title that never names its subject reads as noise.
    anchored: bool = False


# Noise (another topic's keywords) is ~10-15 % of the content words of every field.
_TEXT_FIELDS: dict[str, _FieldRecipe] = {
    "caption": _FieldRecipe(6, 10, (0.30, 0.35, 0.14, 0.12, 0.09), 0.35, anchored=True),
    "tags": _FieldRecipe(3, 5, (0.0, 0.50, 0.20, 0.17, 0.13), 0.5, prefix="#", distinct=True),
    "asr": _FieldRecipe(12, 20, (0.45, 0.28, 0.11, 0.08, 0.08), 0.5),
    "ocr": _FieldRecipe(2, 4, (0.0, 0.55, 0.20, 0.13, 0.12), 0.25),
}


def _compose_field(
    recipe: _FieldRecipe, topic: np.ndarray, community: np.ndarray, rng: np.random.Generator
) -> list[str]:
    tree, pools = _tree(), _word_pools()
    n, width = len(topic), recipe.max_words
    lengths = rng.integers(recipe.min_words, recipe.max_words + 1, size=n)
    kind = rng.choice(5, size=(n, width), p=np.array(recipe.mix) / sum(recipe.mix))
    draw = rng.random((n, width))
    other_topic = (topic[:, None] + rng.integers(1, tree.n_topics, size=(n, width))) % tree.n_topics
    own_topic = np.broadcast_to(topic[:, None], (n, width))
    subcategory = tree.topic_subcategory[own_topic]
    category = tree.topic_category[own_topic]

    def pick(pool: np.ndarray, pool_len: np.ndarray, owner: np.ndarray) -> np.ndarray:
        return pool[owner, (draw * pool_len[owner]).astype(np.int64)]

    words = np.choose(
        kind,
        [
            pools.filler[(draw * len(pools.filler)).astype(np.int64)],
            pick(pools.fine, pools.fine_len, own_topic),
            pick(pools.subcategory, pools.subcategory_len, subcategory),
            pick(pools.category, pools.category_len, category),
            pick(pools.fine, pools.fine_len, other_topic),
        ],
    )
    style_slot = (rng.random(n) * lengths).astype(np.int64)
    if recipe.anchored:
        anchor_slot = (rng.random(n) * lengths).astype(np.int64)
        anchor_draw = (rng.random(n) * pools.fine_len[topic]).astype(np.int64)
        words[np.arange(n), anchor_slot] = pools.fine[topic, anchor_draw]
        # The style word takes any slot but the anchor's.
        style_slot = (anchor_slot + 1 + (rng.random(n) * (lengths - 1)).astype(np.int64)) % lengths
    styled = np.flatnonzero(rng.random(n) < recipe.style_probability)
    slot = style_slot[styled]
    style_draw = (rng.random(n) * pools.style_len[community]).astype(np.int64)[styled]
    words[styled, slot] = pools.style[community[styled], style_draw]

    vocabulary = pools.vocabulary if not recipe.prefix else np.array(
        [recipe.prefix + word for word in pools.vocabulary], dtype=object
    )
    tokens = vocabulary[words].tolist()
    if recipe.distinct:
        return [" ".join(dict.fromkeys(row[:k])) for row, k in zip(tokens, lengths.tolist())]
    return [" ".join(row[:k]) for row, k in zip(tokens, lengths.tolist())]


# --------------------------------------------------------------------------- visual


def _visual_embeddings(spec: SyntheticSpec, catalogue: _Catalogue) -> np.ndarray:
    """``[n_items, 6, 64]`` float32: cover then frames around a per-item latent."""
    rng = _rng(spec.seed, "visual")
    unit = 1.0 / np.sqrt(VISUAL_DIM)
    centroids = _topic_latents(spec.seed, VISUAL_DIM)
    community_style = rng.standard_normal((_tree().n_communities, VISUAL_DIM)) * (_COMMUNITY_SCALE * unit)
    n = spec.n_items
    latent = (
        centroids[catalogue.topic]
        + community_style[catalogue.community]
        + rng.standard_normal((n, VISUAL_DIM)) * (_ITEM_SCALE * unit)
    ).astype(np.float32)
    vectors = rng.standard_normal((n, FRAMES_PER_ITEM, VISUAL_DIM), dtype=np.float32)
    vectors[:, 0] *= np.float32(_COVER_NOISE * unit)
    vectors[:, 1:] *= np.float32(_FRAME_NOISE * unit)
    vectors += latent[:, None, :]
    return vectors


def _visual_column(vectors: np.ndarray) -> pa.Array:
    n = vectors.shape[0]
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    per_vector = pa.FixedSizeListArray.from_arrays(flat, VISUAL_DIM)
    offsets = pa.array(np.arange(0, n * FRAMES_PER_ITEM + 1, FRAMES_PER_ITEM, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, per_vector)


ITEM_SCHEMA = pa.schema(
    [
        (schema.ITEM_ID, pa.string()),
        (schema.CREATED_AT, pa.timestamp("us")),
        ("caption", pa.string()),
        ("tags", pa.string()),
        ("asr", pa.string()),
        ("ocr", pa.string()),
        ("emb_visual", pa.list_(pa.list_(pa.float32(), VISUAL_DIM))),
        (schema.TRUTH_CATEGORY, pa.string()),
        (schema.TRUTH_SUBCATEGORY, pa.string()),
        (schema.TRUTH_TOPIC, pa.string()),
        (schema.TRUTH_COMMUNITY, pa.string()),
    ]
)


def _id_width(n: int, minimum: int) -> int:
    return max(minimum, len(str(max(n - 1, 0))))


def _item_ids(n: int) -> np.ndarray:
    width = _id_width(n, 7)
    return np.array([f"v{i:0{width}d}" for i in range(n)], dtype=object)


def _items_table(spec: SyntheticSpec, catalogue: _Catalogue) -> pa.Table:
    tree = _tree()
    texts = {
        field: _compose_field(recipe, catalogue.topic, catalogue.community, _rng(spec.seed, f"text-{field}"))
        for field, recipe in _TEXT_FIELDS.items()
    }
    columns = {
        schema.ITEM_ID: pa.array(_item_ids(spec.n_items), type=pa.string()),
        schema.CREATED_AT: pa.array(catalogue.created_us.astype("datetime64[us]"), type=pa.timestamp("us")),
        **{field: pa.array(values, type=pa.string()) for field, values in texts.items()},
        "emb_visual": _visual_column(_visual_embeddings(spec, catalogue)),
        schema.TRUTH_CATEGORY: pa.array(tree.category_names[tree.topic_category[catalogue.topic]], type=pa.string()),
        schema.TRUTH_SUBCATEGORY: pa.array(
            tree.subcategory_names[tree.topic_subcategory[catalogue.topic]], type=pa.string()
        ),
        schema.TRUTH_TOPIC: pa.array(tree.topic_names[catalogue.topic], type=pa.string()),
        schema.TRUTH_COMMUNITY: pa.array(tree.community_names[catalogue.community], type=pa.string()),
    }
    return pa.Table.from_pydict(columns, schema=ITEM_SCHEMA)


# --------------------------------------------------------------------------- users


@dataclass(frozen=True)
class _InterestNodes:
    """Lookup tables over interest ids: fine topics first, then sub-categories, then a "none" slot.

    Index ``-1`` (an empty interest slot) lands on the trailing sentinel, which matches no item.
    """

    topic: np.ndarray
    subcategory: np.ndarray
    category: np.ndarray


@functools.cache
def _interest_nodes() -> _InterestNodes:
    tree = _tree()
    none = np.array([-1])
    return _InterestNodes(
        topic=np.concatenate([np.arange(tree.n_topics), np.full(tree.n_subcategories, -1), none]),
        subcategory=np.concatenate([tree.topic_subcategory, np.arange(tree.n_subcategories), none]),
        category=np.concatenate([tree.topic_category, tree.subcategory_category, none]),
    )


def _draw_interests(rng: np.random.Generator, size: int | tuple[int, ...], seed: int) -> np.ndarray:
    tree = _tree()
    topic_popularity = _topic_popularity(seed)
    subcategory_popularity = np.bincount(tree.topic_subcategory, weights=topic_popularity)
    fine = rng.choice(tree.n_topics, size=size, p=topic_popularity)
    coarse = tree.n_topics + rng.choice(tree.n_subcategories, size=size, p=subcategory_popularity)
    return np.where(rng.random(size) < _SUBCATEGORY_INTEREST_SHARE, coarse, fine)


@dataclass
class _Users:
    community: np.ndarray
    interests: np.ndarray  # [n_users, 3] interest ids, active ones first, -1 when empty
    n_interests: np.ndarray
    activity: np.ndarray  # expected impressions per month
    pickiness: np.ndarray  # multiplies every positive probability


def _users(spec: SyntheticSpec) -> _Users:
    rng = _rng(spec.seed, "users")
    n = spec.n_users
    community = rng.choice(_tree().n_communities, size=n, p=_community_popularity(spec.seed))
    n_interests = rng.integers(1, _MAX_INTERESTS + 1, size=n)
    interests = _draw_interests(rng, (n, _MAX_INTERESTS), spec.seed)
    interests[np.arange(_MAX_INTERESTS)[None, :] >= n_interests[:, None]] = -1
    log_mean = np.log(_MEAN_MONTHLY_IMPRESSIONS) - 0.5 * _ACTIVITY_SIGMA**2
    activity = rng.lognormal(log_mean, _ACTIVITY_SIGMA, size=n)
    pickiness = rng.uniform(0.7, 1.3, size=n)
    return _Users(community, interests, n_interests, activity, pickiness)


def _drift(users: _Users, rng: np.random.Generator, seed: int) -> None:
    movers = np.flatnonzero(rng.random(len(users.community)) < _INTEREST_DRIFT)
    slot = (rng.random(len(users.community)) * users.n_interests).astype(np.int64)[movers]
    users.interests[movers, slot] = _draw_interests(rng, len(users.community), seed)[movers]


# --------------------------------------------------------------------------- impressions


class _GroupSampler:
    """Draws items from groups (a topic, a sub-category, a community, or everything).

    All groups live in one concatenated membership array so that a single cumulative sum
    of the day's weights serves every group, and drawing is one ``searchsorted``.
    """

    def __init__(self, catalogue: _Catalogue) -> None:
        tree = _tree()
        n = len(catalogue.topic)
        self.subcategory_base = tree.n_topics
        self.community_base = tree.n_topics + tree.n_subcategories
        self.everything = self.community_base + tree.n_communities
        group_keys = [
            catalogue.topic,
            self.subcategory_base + tree.topic_subcategory[catalogue.topic],
            self.community_base + catalogue.community,
            np.full(n, self.everything),
        ]
        members, member_group = [], []
        for key in group_keys:
            order = np.argsort(key, kind="stable")
            members.append(order)
            member_group.append(key[order])
        self.members = np.concatenate(members)
        member_group = np.concatenate(member_group)
        groups = np.arange(self.everything + 1)
        self.start = np.searchsorted(member_group, groups, side="left")
        self.end = np.searchsorted(member_group, groups, side="right")
        self.created = catalogue.created_us
        self.quality = catalogue.quality

    def draw(self, day_start_us: int, group: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Items for ``group`` as of ``day_start_us``; -1 where nothing exists yet."""
        available = self.created <= day_start_us
        age_days = (day_start_us - self.created) / _US_PER_DAY
        weight = np.where(available, self.quality * (_RECENCY_FLOOR + np.exp(-age_days / _RECENCY_DAYS)), 0.0)
        cumulative = np.cumsum(weight[self.members])
        before = np.where(self.start > 0, cumulative[np.maximum(self.start - 1, 0)], 0.0)
        total = np.where(self.end > self.start, cumulative[np.maximum(self.end - 1, 0)], 0.0) - before
        # Groups with nothing published yet fall back to the feed at large.
        group = np.where(total[group] > 0, group, self.everything)
        position = np.searchsorted(cumulative, before[group] + u * total[group], side="right")
        position = np.clip(position, self.start[group], self.end[group] - 1)
        item = self.members[position]
        return np.where((total[group] > 0) & (self.created[item] <= day_start_us), item, -1)


def _interactions(spec: SyntheticSpec, catalogue: _Catalogue, users: _Users) -> pd.DataFrame:
    tree, nodes = _tree(), _interest_nodes()
    sampler = _GroupSampler(catalogue)
    impressions_rng = _rng(spec.seed, "impressions")
    drift_rng = _rng(spec.seed, "interest-drift")
    label_rng = _rng(spec.seed, "labels")
    bounds = _month_boundaries(spec)[12:]
    item_subcategory = tree.topic_subcategory[catalogue.topic]
    item_category = tree.topic_category[catalogue.topic]

    chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for month in range(spec.n_months):
        if month > 0:
            _drift(users, drift_rng, spec.seed)
        month_start, month_end = int(bounds[month]), int(bounds[month + 1])
        counts = impressions_rng.poisson(users.activity * (1.0 + _MONTHLY_ACTIVITY_GROWTH * month))
        user = np.repeat(np.arange(spec.n_users), counts)
        k = len(user)
        offset = (impressions_rng.random(k) * (month_end - month_start)).astype(np.int64)
        ts = month_start + offset - offset % _US_PER_SECOND
        source = impressions_rng.choice(3, size=k, p=_SOURCE_SHARES)
        slot = (impressions_rng.random(k) * users.n_interests[user]).astype(np.int64)
        interest = users.interests[user, slot]
        widen = impressions_rng.random(k) < _SIBLING_TOPIC_SHARE
        u = impressions_rng.random(k)

        # Interest ids double as group ids for topics and sub-categories (see _GroupSampler).
        is_fine = interest < tree.n_topics
        widened = sampler.subcategory_base + nodes.subcategory[interest]
        interest_group = np.where(is_fine & widen, widened, interest)
        group = np.select(
            [source == 0, source == 1],
            [interest_group, sampler.community_base + users.community[user]],
            sampler.everything,
        )

        item = np.full(k, -1, dtype=np.int64)
        day = (ts - month_start) // _US_PER_DAY
        order = np.argsort(day, kind="stable")
        day_bounds = np.searchsorted(day[order], np.arange(day.max() + 2 if k else 1))
        for d in range(len(day_bounds) - 1):
            rows = order[day_bounds[d] : day_bounds[d + 1]]
            if len(rows):
                item[rows] = sampler.draw(month_start + d * _US_PER_DAY, group[rows], u[rows])
        keep = item >= 0
        user, item, ts = user[keep], item[keep], ts[keep]

        taste = users.interests[user]
        fine_match = (nodes.topic[taste] == catalogue.topic[item, None]).any(axis=1)
        subcategory_match = (nodes.subcategory[taste] == item_subcategory[item, None]).any(axis=1)
        category_match = (nodes.category[taste] == item_category[item, None]).any(axis=1)
        topic_affinity = np.select(
            [fine_match, subcategory_match, category_match],
            [_FINE_MATCH_POSITIVE, _SUBCATEGORY_MATCH_POSITIVE, _CATEGORY_MATCH_POSITIVE],
            0.0,
        )
        community_affinity = np.where(
            catalogue.community[item] == users.community[user], _COMMUNITY_MATCH_POSITIVE, 0.0
        )
        positive = 1.0 - (1.0 - _BASE_POSITIVE) * (1.0 - topic_affinity) * (1.0 - community_affinity)
        positive = np.minimum(positive * users.pickiness[user], 0.95)
        label = (label_rng.random(len(user)) < positive).astype(np.int8)
        chunks.append((user, item, ts, label))

    user, item, ts, label = (np.concatenate(parts) for parts in zip(*chunks))
    order = np.lexsort((item, user, ts))
    user_ids = np.array([f"u{i:0{_id_width(spec.n_users, 6)}d}" for i in range(spec.n_users)], dtype=object)
    return pd.DataFrame(
        {
            schema.USER_ID: user_ids[user[order]],
            schema.ITEM_ID: _item_ids(spec.n_items)[item[order]],
            schema.TS: ts[order].astype("datetime64[us]"),
            schema.LABEL: label[order],
        }
    )


# --------------------------------------------------------------------------- entry point


@functools.lru_cache(maxsize=4)
def generate(spec: SyntheticSpec) -> SyntheticPlatform:
    """The platform ``spec`` describes; identical specs give identical tables.

    Results are cached per spec in-process: treat the returned tables as read-only.
    """
    catalogue = _catalogue(spec)
    items = _items_table(spec, catalogue)
    interactions = _interactions(spec, catalogue, _users(spec))
    return SyntheticPlatform(spec=spec, items=items, interactions=interactions)


# --------------------------------------------------------------------------- a user's catalogue


def _steady_creation_times(spec: SyntheticSpec, new_share: float, rng: np.random.Generator) -> np.ndarray:
    """A mature catalogue: ``new_share`` of the final items arrive in each month, the rest in the year before."""
    bounds = _month_boundaries(spec)
    n_new = _allocate(min(spec.n_items, round(new_share * spec.n_items * spec.n_months)), np.ones(spec.n_months))
    n_back = spec.n_items - int(n_new.sum())
    back = bounds[0] + rng.random(n_back) * (bounds[12] - bounds[0])
    month_of_new = np.repeat(np.arange(spec.n_months), n_new) + 12
    new = bounds[month_of_new] + rng.random(len(month_of_new)) * (bounds[month_of_new + 1] - bounds[month_of_new])
    created = np.concatenate([back, new]).astype(np.int64)
    return np.sort(created - created % _US_PER_SECOND)


def _content_embeddings(spec: SyntheticSpec, catalogue: _Catalogue, dim: int) -> np.ndarray:
    """``[n_items, dim]`` float32: the fine topic's latent, a faint community style, and item noise."""
    rng = _rng(spec.seed, f"content-{dim}")
    unit = 1.0 / np.sqrt(dim)
    community_style = rng.standard_normal((_tree().n_communities, dim)) * (_COMMUNITY_SCALE * unit)
    vectors = rng.standard_normal((spec.n_items, dim), dtype=np.float32)
    vectors *= np.float32(_ITEM_SCALE * unit)
    vectors += _topic_latents(spec.seed, dim).astype(np.float32)[catalogue.topic]
    vectors += community_style.astype(np.float32)[catalogue.community]
    return vectors


def precomputed_platform(spec: SyntheticSpec, *, dim: int = 256, new_share: float = 0.05,
                         text_field: str | None = "caption") -> tuple[pa.Table, pd.DataFrame]:
    """A catalogue as a user with precomputed embeddings brings it, and its interaction log.

    Items: ``item_id``, ``created_at``, one short text field (``text_field``, the platform's
    6–10-word captions; None: no text), ``emb_content`` (one ``dim``-d vector per item: topic latent +
    community style + noise, the hidden structure of the platform) and the ``truth_*``
    columns. ``new_share`` of the items arrive in each of the spec's months, the rest in the
    year before. Interactions follow the platform's users (``spec.n_users`` of them, about
    10 impressions each per month). The tables follow the Parquet contract (``schema.py``),
    so ``SEMID_DATASET=parquet`` reads them once written; everything is a function of the spec.
    """
    if not 0.0 <= new_share * spec.n_months <= 1.0:
        raise ValueError(f"new_share × months must be in [0, 1], got {new_share} × {spec.n_months}.")
    if text_field is not None and text_field not in _TEXT_FIELDS:
        raise ValueError(f"text_field must be one of {', '.join(_TEXT_FIELDS)}, got {text_field!r}.")
    tree = _tree()
    base = _catalogue(spec)
    created = _steady_creation_times(spec, new_share, _rng(spec.seed, "steady-catalogue"))
    catalogue = _Catalogue(created_us=created, topic=base.topic, community=base.community, quality=base.quality)
    texts = {} if text_field is None else {text_field: pa.array(_compose_field(
        _TEXT_FIELDS[text_field], catalogue.topic, catalogue.community, _rng(spec.seed, f"text-{text_field}")),
        type=pa.string())}
    vectors = _content_embeddings(spec, catalogue, dim)
    items = pa.table({
        schema.ITEM_ID: pa.array(_item_ids(spec.n_items), type=pa.string()),
        schema.CREATED_AT: pa.array(created.astype("datetime64[us]"), type=pa.timestamp("us")),
        **texts,
        "emb_content": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
        schema.TRUTH_CATEGORY: pa.array(tree.category_names[tree.topic_category[catalogue.topic]], type=pa.string()),
        schema.TRUTH_SUBCATEGORY: pa.array(tree.subcategory_names[tree.topic_subcategory[catalogue.topic]],
                                           type=pa.string()),
        schema.TRUTH_TOPIC: pa.array(tree.topic_names[catalogue.topic], type=pa.string()),
        schema.TRUTH_COMMUNITY: pa.array(tree.community_names[catalogue.community], type=pa.string()),
    })
    return items, _interactions(spec, catalogue, _users(spec))
