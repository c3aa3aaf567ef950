"""The staleness report falls when the data is unchanged and rises when it drifts; months publish deterministically."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from semid_assets.core.evaluation.plots import staleness_plot
from semid_assets.core.lifecycle.gate import GenerationPolicy
from semid_assets.core.lifecycle.generations import Generation, first_generation, published
from semid_assets.core.lifecycle.publish import (GenerationModels, PublishOptions, judge_month, month_view,
                                                 publish_month)
from semid_assets.core.lifecycle.staleness import FIGURE_COLUMN, FIGURES, staleness_over_months
from semid_assets.core.tokenizers.methods import make_tokenizer

DIM = 16


def _clusters(centres: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(centres), n)
    return (centres[picks] + 0.15 * rng.normal(size=(n, DIM))).astype(np.float32)


def _month(vectors_old, vectors_new, seed):
    """A catalogue that keeps the old items and adds ``vectors_new``, with a generation fitted on the old ones."""
    ids = np.array([f"i{k}" for k in range(len(vectors_old) + len(vectors_new))])
    generation = make_tokenizer("rq_kmeans", levels=3, codebook_size=16, seed=0)
    codes = generation.fit_encode(vectors_old)
    table, _ = first_generation(ids[: len(vectors_old)], codes, "2025-01")
    record = Generation(number=1, method="rq_kmeans", origin_month="2025-01", aligner_month=None, reason="first")
    models = GenerationModels(record, generation, aligner=None)
    vectors = np.concatenate([vectors_old, vectors_new])
    candidate = make_tokenizer("rq_kmeans", levels=3, codebook_size=16, seed=seed)
    candidate.fit(vectors)
    view = month_view("2025-02", ids, vectors, None, candidate, table, models, PublishOptions(), lambda: None)
    return table, models, view


def test_staleness_is_flat_on_unchanged_data_and_rises_under_planted_drift():
    rng = np.random.default_rng(0)
    old_centres = rng.normal(size=(8, DIM)).astype(np.float32)
    new_centres = rng.normal(size=(8, DIM)).astype(np.float32) * 1.5
    old = _clusters(old_centres, 800, seed=1)
    same_kind = _clusters(old_centres, 200, seed=2)
    drifted = _clusters(new_centres, 200, seed=3)
    policy, options = GenerationPolicy(), PublishOptions()

    table, models, view = _month(old, same_kind, seed=0)
    steady = judge_month(table, table, models, view, policy, options)
    table, models, view = _month(old, drifted, seed=0)
    drift = judge_month(table, table, models, view, policy, options)

    assert steady.figures["mse_gain"] < 0.05  # nothing to gain: the generation fits as well as a refit
    assert drift.figures["mse_gain"] > steady.figures["mse_gain"] + 0.2
    assert drift.figures["new_item_collision_rate"] > steady.figures["new_item_collision_rate"]
    assert steady.verdict.decision == "keep"
    assert drift.verdict.decision in ("cut", "refused")
    # Items published before keep their IDs in the extension, literally.
    before = published(table)
    after = published(steady.extended)
    assert np.array_equal(after.codes[: len(old)], before.codes) and np.array_equal(after.suffix[: len(old)],
                                                                                   before.suffix)


def test_a_month_publishes_the_same_table_twice():
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(8, DIM)).astype(np.float32)
    old, new = _clusters(centres, 600, seed=6), _clusters(centres, 150, seed=7)
    tables = []
    for _ in range(2):
        table, models, view = _month(old, new, seed=3)
        judgement = judge_month(table, table, models, view, GenerationPolicy(),
                                PublishOptions(cut_generation=True))
        tables.append(publish_month(judgement.verdict.decision, table, models, view,
                                    PublishOptions(cut_generation=True), 2))
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert set(tables[0]["generation"]) == {2}


def test_the_candidate_keeps_published_ids_across_a_change_of_space():
    from semid_assets.core.lifecycle.candidate import choose_codebook_size, fit_candidate

    rng = np.random.default_rng(9)
    centres = rng.normal(size=(8, DIM)).astype(np.float32)
    vectors = _clusters(centres, 900, seed=10)
    ids = np.array([f"i{k}" for k in range(900)])
    first = make_tokenizer("rq_kmeans", levels=2, codebook_size=8, seed=0)
    table, _ = first_generation(ids[:800], first.fit_encode(vectors[:800]), "2025-01")
    # The next month lives in another space (a new serving aligner): a random rotation into more dims.
    rotation = np.linalg.qr(rng.normal(size=(DIM + 8, DIM + 8)))[0][:, :DIM].astype(np.float32)
    moved = vectors @ rotation.T
    candidate = make_tokenizer("rq_kmeans", levels=2, codebook_size=8, seed=1)
    codes, info = fit_candidate(candidate, moved, ids, previous=first, published=published(table), steps=3,
                                hysteresis=0.0)
    assert info["anchored"] and info["warm_start"] == "previous partition carried over"
    assert info["literal_kept"] > 0.9
    sticky, sticky_info = fit_candidate(make_tokenizer("rq_kmeans", levels=2, codebook_size=8, seed=1), moved, ids,
                                        previous=first, published=published(table), steps=3, hysteresis=0.2)
    assert sticky_info["literal_kept"] >= info["literal_kept"]
    plain, plain_info = fit_candidate(make_tokenizer("rq_kmeans", levels=2, codebook_size=8, seed=1), moved, ids,
                                      previous=None, published=None, steps=3, hysteresis=0.0)
    assert not plain_info["anchored"] and "no IDs" in plain_info["anchored_to"]
    assert choose_codebook_size(None, 20_000, 3, None) == (256, None)
    assert choose_codebook_size(None, 20_000, 3, 128) == (128, None)
    size, warning = choose_codebook_size(256, 1_500, 3, None)
    assert size == 256 and "size rule gives 64" in warning


def _stored(decision: str, **figures: float) -> pd.DataFrame:
    values = {FIGURE_COLUMN.format(k): figures.get(k, float("nan")) for k in FIGURES}
    return pd.DataFrame({"figure": ["a", "b"], "decision": decision, **values})


def test_the_report_over_months_reads_each_stored_month_oldest_first(tmp_path):
    tables = {"2025-08": _stored("keep", literal_kept=0.7, mse_gain=0.1),
              "2025-06": _stored("first", literal_kept=1.0, mse_gain=0.0),
              "2025-07": pd.DataFrame({"figure": ["a"], "decision": ["keep"]})}  # stored before figure columns
    history = staleness_over_months(tables)
    assert list(history["month"]) == ["2025-06", "2025-08"], "a month without the figure columns is skipped"
    assert list(history["literal_kept"]) == [1.0, 0.7] and list(history["decision"]) == ["first", "keep"]
    assert history["recall_gain"].isna().all()
    png = staleness_plot(history, "rq_kmeans", tmp_path / "s.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_candidates_codes_kept_by_one_step_are_taken_by_the_next_only_for_the_same_inputs(tmp_path):
    """sid_staleness keeps the month's candidate codes; semantic_ids takes them while nothing they
    depend on changed, and computes them again otherwise."""
    from semid_assets.core.lifecycle.codes_cache import CodesCache

    rng = np.random.default_rng(0)
    table, models, view = _month(_clusters(rng.normal(size=(8, DIM)).astype(np.float32), 300, seed=1),
                                 _clusters(rng.normal(size=(8, DIM)).astype(np.float32), 50, seed=2), seed=0)
    cache = CodesCache(tmp_path, "2025-02", "rq_kmeans")
    calls = []

    class Counting:  # the candidate, counting its catalogue encodings
        def __getattr__(self, name):
            return getattr(view.candidate, name)

        def encode_catalogue(self, X):
            calls.append(len(X))
            return view.candidate.encode_catalogue(X)

    def again(vectors, options=PublishOptions()):
        return month_view("2025-02", view.item_ids, vectors, None, Counting(), table, models, options,
                          lambda: None, cache=cache)

    first = again(view.serving_vectors)
    assert np.array_equal(first.candidate_codes, view.candidate_codes) and len(calls) == 1
    assert np.array_equal(again(view.serving_vectors).candidate_codes, view.candidate_codes) and len(calls) == 1
    moved = view.serving_vectors.copy()
    moved[0, 0] += 1e-3
    again(moved)
    assert len(calls) == 2, "other vectors must not take the kept codes"
    again(moved, PublishOptions(hysteresis=0.5))
    assert len(calls) == 3, "another margin must not take the kept codes"


@pytest.mark.parametrize("method", ["rq_kmeans", "rq_vae"])
def test_the_codes_a_candidate_fit_ends_with_are_kept_for_its_staleness_step(method, tmp_path):
    """The tokenizer step keeps its candidate's codes under the digest sid_staleness asks with (the candidate
    read back from its artefact): sid_staleness takes them instead of encoding the catalogue again."""
    from semid_assets.core.lifecycle.candidate import fit_candidate
    from semid_assets.core.lifecycle.codes_cache import CodesCache
    from semid_assets.core.storage import load_artifact, save_artifact

    options = dict(levels=2, codebook_size=8, seed=0) if method == "rq_kmeans" else \
        dict(levels=2, codebook_size=8, seed=0, latent_dim=4, hidden_dims=[16], epochs=3, batch_size=64, min_steps=0)
    vectors = _clusters(np.random.default_rng(4).normal(size=(8, DIM)).astype(np.float32), 400, seed=5)
    ids = np.array([f"i{k}" for k in range(400)])

    def refuse(X):
        raise AssertionError("the kept codes were not taken")

    def kept_then_taken(month, previous, table):
        candidate = make_tokenizer(method, **options)
        cache = CodesCache(tmp_path, month, method)
        codes, info = fit_candidate(candidate, vectors, ids, previous=previous, published=published(table)
                                    if table is not None else None, steps=2, hysteresis=0.1, cache=cache)
        stored = load_artifact(save_artifact(candidate, tmp_path / f"{month}.npz"))
        stored.encode_catalogue = refuse  # the stored candidate must not encode: its codes come from the cache
        view = month_view(month, ids, vectors, None, stored, table, None, PublishOptions(hysteresis=0.1),
                          lambda: None, cache=cache)
        assert np.array_equal(view.candidate_codes, codes)
        return candidate, codes, info

    first, codes, info = kept_then_taken("2025-01", None, None)
    assert not info["anchored"]
    table, _ = first_generation(ids[:350], codes[:350], "2025-01")
    _, _, info = kept_then_taken("2025-02", first, table)
    assert info["anchored"]
