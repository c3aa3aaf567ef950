"""The promotion gate (generations), the aligner gate, version identity and hysteresis."""

from __future__ import annotations

import numpy as np
import pytest

from semid_assets.core.lifecycle.gate import (AlignerGate, GenerationPolicy, first_verdict, judge_aligner,
                                              judge_candidate, own_generation_verdict, paired_difference)
from semid_assets.core.lifecycle.hysteresis import (CANDIDATE_MARGINS, candidate_margin, kept_after_hysteresis,
                                                    sticky_codes)
from semid_assets.core.lifecycle.versions import VersionKey, earlier_month, generation_alias, month_shift, previous_month
from semid_assets.core.tokenizers.methods import METHODS
from semid_assets.core.tokenizers.residual import greedy_encode


def _figures(**changes) -> dict:
    figures = {"generation_relative_mse": 0.10, "candidate_relative_mse": 0.10, "mse_gain": 0.0,
               "new_items": 100.0, "new_item_collision_rate": 0.05, "literal_kept": 0.95,
               "literal_kept_origin": 0.93, "matched_kept": 0.96, "recall_gain": 0.0}
    figures.update(changes)
    return figures


def test_no_gain_keeps_the_generation_and_says_so():
    verdict = judge_candidate(_figures(), GenerationPolicy(), generation=2, age_months=1)
    assert verdict.decision == "keep" and not verdict.new_generation and not verdict.is_warning
    assert "generation 2 kept" in verdict.summary


def test_a_gain_with_the_ids_kept_cuts_the_next_generation():
    verdict = judge_candidate(_figures(mse_gain=0.2), GenerationPolicy(), generation=2, age_months=1)
    assert verdict.decision == "cut" and verdict.new_generation and "generation 3 cut" in verdict.summary


def test_gate_refuses_a_candidate_that_keeps_matched_ids_but_changes_literal_ones():
    # An unanchored refit: after the best renaming nearly every ID survives, literally almost none.
    renamed = _figures(mse_gain=0.2, literal_kept=0.02, literal_kept_origin=0.01, matched_kept=0.97)
    verdict = judge_candidate(renamed, GenerationPolicy(), generation=1, age_months=1)
    assert verdict.decision == "refused" and verdict.is_warning
    assert "literal SIDs kept vs published is 0.0200, below the limit" in verdict.summary
    assert "literal SIDs kept vs generation origin" in verdict.summary


def test_drift_through_origin_is_refused_even_when_last_month_looks_fine():
    verdict = judge_candidate(_figures(mse_gain=0.2, literal_kept=0.9, literal_kept_origin=0.5),
                              GenerationPolicy(), generation=1, age_months=6)
    assert verdict.decision == "refused" and "origin" in verdict.summary


def test_a_request_cuts_whatever_the_figures_and_still_lists_them():
    verdict = judge_candidate(_figures(literal_kept=0.1), GenerationPolicy(), generation=4, age_months=0,
                              requested=True)
    assert verdict.decision == "cut" and "on request" in verdict.summary and verdict.rows()


def test_age_limit_and_collisions_are_gains_too():
    policy = GenerationPolicy(max_age_months=6)
    assert judge_candidate(_figures(), policy, generation=1, age_months=7).decision == "cut"
    assert judge_candidate(_figures(new_item_collision_rate=0.5), GenerationPolicy(), generation=1,
                           age_months=1).decision == "cut"


def test_first_version_is_always_published_and_a_quality_shortfall_is_noted():
    verdict = first_verdict(_figures(candidate_relative_mse=0.7), GenerationPolicy())
    assert verdict.decision == "first" and "above the limit" in verdict.summary


def test_policy_refuses_nonsense():
    with pytest.raises(ValueError, match="share in"):
        GenerationPolicy(min_literal_kept=1.5)


def test_aligner_gate_accepts_only_a_gain_beyond_noise():
    rng = np.random.default_rng(0)
    base = rng.random(4000) < 0.05
    better = base | (rng.random(4000) < 0.04)
    # As many pairs lost as won: no gain, only noise.
    same = base.copy()
    same[rng.choice(np.flatnonzero(base), 10, replace=False)] = False
    same[rng.choice(np.flatnonzero(~base), 10, replace=False)] = True
    gate = AlignerGate(n_boot=300)
    assert judge_aligner(better, {"content": base}, gate).accepted
    verdict = judge_aligner(same, {"content": base, "serving": base}, gate)
    assert not verdict.accepted and "does not clear" in verdict.summary
    mean, low, high = paired_difference(better, base, n_boot=300, level=0.95)
    assert low <= mean <= high and low > 0


def test_version_identity_and_earlier_rules():
    key = VersionKey("synthetic-default", "2025-10", "rq_kmeans")
    assert key.model_name == "semid-synthetic-default-rq_kmeans"
    assert key.tags() == {"dataset": "synthetic-default", "month": "2025-10", "method": "rq_kmeans"}
    with pytest.raises(ValueError, match="YYYY-MM"):
        VersionKey("d", "2025-1", "rq_kmeans")
    available = ["2025-03", "2025-05", "2025-06", "2025-07"]
    assert earlier_month("2025-09", available, 6) == "2025-03"
    assert earlier_month("2025-09", available, 4) == "2025-05"
    assert earlier_month("2025-09", available, 1) == "2025-07"
    assert earlier_month("2025-06", available, 6) == "2025-03"  # nothing that old: the oldest earlier
    assert earlier_month("2025-03", available, 6) is None
    assert previous_month("2025-06", available) == "2025-05" and previous_month("2025-03", available) is None
    assert month_shift("2025-01", -1) == "2024-12" and generation_alias(3) == "gen-3"


def test_hysteresis_keeps_previous_codes_within_the_margin_and_is_greedy_at_zero():
    rng = np.random.default_rng(1)
    codebooks = rng.normal(size=(3, 16, 8)).astype(np.float32)
    Z = rng.normal(size=(500, 8)).astype(np.float32)
    greedy = greedy_encode(Z, codebooks)
    previous = greedy.copy()
    flip = rng.random(500) < 0.3
    previous[flip, 2] = (previous[flip, 2] + 1) % 16
    previous[:20] = -1
    assert np.array_equal(sticky_codes(codebooks, Z, previous, 0.0), greedy)
    loose = sticky_codes(codebooks, Z, previous, 1e6)
    assert kept_after_hysteresis(loose, previous) == 1.0
    assert np.array_equal(loose[:20], greedy[:20])  # items without previous codes encode greedily
    some = sticky_codes(codebooks, Z, previous, 0.05)
    assert kept_after_hysteresis(greedy, previous) < kept_after_hysteresis(some, previous) < 1.0


def test_candidate_margin_is_the_methods_own_unless_one_is_set():
    assert set(CANDIDATE_MARGINS) == set(METHODS)
    assert all(margin >= 0 for margin in CANDIDATE_MARGINS.values())
    for method in METHODS:
        assert candidate_margin(method) == CANDIDATE_MARGINS[method]
        assert candidate_margin(method, 0.0) == 0.0 and candidate_margin(method, 0.3) == 0.3
    with pytest.raises(ValueError, match="no default hysteresis for tokenizer method 'kmeans'"):
        candidate_margin("kmeans")
    with pytest.raises(ValueError, match="hysteresis must be >= 0"):
        candidate_margin("rq_kmeans", -0.1)
    with pytest.raises(TypeError):
        CANDIDATE_MARGINS["rq_kmeans"] = 0.0  # read-only: the defaults are written once


def test_the_month_that_cut_a_generation_keeps_it_after_a_backfill_even_on_request():
    verdict = own_generation_verdict(2, "2025-12", "2025-11", requested=True)
    assert verdict.decision == "keep" and not verdict.rows()
    assert "2025-11 already publishes" in verdict.summary and "requested cut is not made" in verdict.summary
    assert "requested" not in own_generation_verdict(2, "2025-12", "2025-11").summary
