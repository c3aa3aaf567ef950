"""Agreement measures, code matching and anchoring on small planted inputs."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from semid_assets.core.tokenizers.anchoring import anchored_fit_encode, relabel_to_previous
from semid_assets.core.tokenizers.base import WarmStart
from semid_assets.core.tokenizers.matching import match_level_codes, match_prefixes
from semid_assets.core.tokenizers.rq_kmeans import RQKMeans
from semid_assets.core.evaluation.stability import (adjusted_mutual_info, adjusted_rand_index, compare_codes, compare_versions,
                                         jensen_shannon, knn_overlap, normalized_mutual_info)


def _codes(n=3000, levels=3, K=8, seed=0):
    return np.random.default_rng(seed).integers(0, K, (n, levels)).astype(np.int32)


def test_ari_and_nmi_on_hand_computed_partitions():
    a = np.array([0, 0, 0, 1, 1, 1])
    b = np.array([0, 0, 1, 1, 2, 2])
    # Contingency [[2,1,0],[0,1,2]]: index 2, sums over rows 6 and columns 3, 15 pairs.
    expected_ari = (2 - 6 * 3 / 15) / ((6 + 3) / 2 - 6 * 3 / 15)
    assert adjusted_rand_index(a, b) == pytest.approx(expected_ari)
    h_a, h_b = np.log(2), np.log(3)
    mi = 2 * (2 / 6) * np.log(2 * 6 / (3 * 2)) + 2 * (1 / 6) * np.log(6 / (3 * 2))
    assert normalized_mutual_info(a, b) == pytest.approx(mi / ((h_a + h_b) / 2))
    # Labels do not matter, only the partition.
    assert adjusted_rand_index(a, b + 7) == pytest.approx(expected_ari)


def _reference_ami(a, b) -> float:
    """AMI from its definition: the full triple sum over groups i, j and every n_ij of the
    support, hypergeometric probabilities as exact ratios of binomial coefficients."""
    n = len(a)
    a = np.unique(a, return_inverse=True)[1]
    b = np.unique(b, return_inverse=True)[1]
    sizes_a, sizes_b = np.bincount(a).tolist(), np.bincount(b).tolist()
    mi = 0.0
    for i, size_i in enumerate(sizes_a):
        for j, size_j in enumerate(sizes_b):
            c = int(np.sum((a == i) & (b == j)))
            if c:
                mi += c / n * math.log(c * n / (size_i * size_j))
    expected = 0.0
    for s in sizes_a:
        for t in sizes_b:
            for k in range(max(1, s + t - n), min(s, t) + 1):
                p = Fraction(math.comb(s, k) * math.comb(n - s, t - k), math.comb(n, t))
                expected += k / n * math.log(n * k / (s * t)) * float(p)
    h_a = -sum(x / n * math.log(x / n) for x in sizes_a)
    h_b = -sum(x / n * math.log(x / n) for x in sizes_b)
    return (mi - expected) / ((h_a + h_b) / 2 - expected)


def test_ami_matches_the_brute_force_definition():
    # The hand-checked case: scikit-learn's adjusted_mutual_info_score gives 0.2987924581708901.
    a = np.array([0, 0, 0, 1, 1, 1])
    b = np.array([0, 0, 1, 1, 2, 2])
    assert _reference_ami(a, b) == pytest.approx(0.2987924581708901, abs=1e-12)
    assert adjusted_mutual_info(a, b) == pytest.approx(0.2987924581708901, abs=1e-12)
    rng = np.random.default_rng(12)
    for trial in range(6):
        groups_a, groups_b = rng.integers(5, 41, size=2)
        a = rng.integers(0, groups_a, 200)
        # Half the cases share structure, so AMI is far from 0 as well as near it.
        b = (a * 7 + rng.integers(0, 3, 200)) % groups_b if trial % 2 else rng.integers(0, groups_b, 200)
        assert adjusted_mutual_info(a, b) == pytest.approx(_reference_ami(a, b), abs=1e-10), trial


def test_ami_window_loses_nothing_where_it_cuts_the_support():
    # Big groups: the hypergeometric of n_ij spans thousands of values, the summed window
    # ~10 standard deviations of it. Compare E[I] with the full sum over the support.
    from semid_assets.core.evaluation.stability import _expected_mutual_info

    sizes_a, sizes_b = [9000, 6000, 3000, 1500, 500], [8000, 7000, 4000, 1000]
    n = sum(sizes_a)
    full = 0.0
    for s in sizes_a:
        for t in sizes_b:
            log_const = (math.lgamma(s + 1) + math.lgamma(t + 1) + math.lgamma(n - s + 1) + math.lgamma(n - t + 1)
                         - math.lgamma(n + 1))
            for k in range(max(1, s + t - n), min(s, t) + 1):
                log_p = (log_const - math.lgamma(k + 1) - math.lgamma(s - k + 1) - math.lgamma(t - k + 1)
                         - math.lgamma(n - s - t + k + 1))
                full += k / n * math.log(n * k / (s * t)) * math.exp(log_p)
    windowed = _expected_mutual_info(np.array(sizes_a, dtype=float), np.array(sizes_b, dtype=float), n)
    assert windowed == pytest.approx(full, rel=1e-9, abs=1e-13)


def test_ami_is_one_for_the_same_partition_and_handles_trivial_ones():
    a = np.random.default_rng(13).integers(0, 30, 500)
    assert adjusted_mutual_info(a, a) == pytest.approx(1.0)
    # Only the partition counts: permuted, shifted or renamed labels change nothing.
    perm = np.random.default_rng(14).permutation(30)
    assert adjusted_mutual_info(a, perm[a] + 100) == pytest.approx(1.0)
    assert adjusted_mutual_info(a, np.array([f"g{x}" for x in a])) == pytest.approx(1.0)
    # One group each and singletons each are the same partition (the 0/0 cases); one group
    # against any split carries no information: 0.
    assert adjusted_mutual_info(np.zeros(7), np.ones(7)) == 1.0
    assert adjusted_mutual_info(np.arange(7), np.arange(7)[::-1]) == 1.0
    assert adjusted_mutual_info(np.zeros(7), np.arange(7)) == pytest.approx(0.0, abs=1e-12)
    assert adjusted_mutual_info(np.zeros(7), np.array([0, 0, 1, 1, 1, 2, 2])) == pytest.approx(0.0, abs=1e-12)


def test_ami_is_near_zero_for_independent_partitions_where_nmi_is_not():
    rng = np.random.default_rng(15)
    a, b = rng.integers(0, 2000, 20000), rng.integers(0, 2000, 20000)
    assert normalized_mutual_info(a, b) > 0.5
    assert abs(adjusted_mutual_info(a, b)) < 0.02
    # Chance correction only ever lowers NMI (E[I] >= 0).
    near = np.where(rng.random(20000) < 0.7, a, b)
    assert 0.3 < adjusted_mutual_info(a, near) < normalized_mutual_info(a, near) < 1.0


def test_independent_labelings_have_ari_near_zero():
    rng = np.random.default_rng(1)
    assert abs(adjusted_rand_index(rng.integers(0, 10, 20000), rng.integers(0, 10, 20000))) < 0.01


def test_identical_versions_agree_fully():
    codes = _codes()
    table = compare_codes(codes, codes.copy()).table
    for column in ("ari", "nmi", "ami", "matched_kept", "prefix_jaccard", "raw_unchanged"):
        assert np.allclose(table[column], 1.0), column
    assert np.allclose(table["usage_jsd"], 0.0)


def test_permuted_labels_are_recovered_exactly():
    codes = _codes(seed=2)
    rng = np.random.default_rng(3)
    perms = [rng.permutation(8) for _ in range(3)]
    permuted = np.stack([perms[level][codes[:, level]] for level in range(3)], axis=1)
    report = compare_codes(codes, permuted)
    assert np.allclose(report.table["ari"], 1.0) and np.allclose(report.table["nmi"], 1.0)
    assert np.allclose(report.table["ami"], 1.0)
    assert np.allclose(report.table["matched_kept"], 1.0) and np.allclose(report.table["prefix_jaccard"], 1.0)
    assert report.table["raw_unchanged"].iloc[-1] < 0.1
    # The level-1 matching is the permutation itself; deeper levels map every prefix to its image.
    assert np.array_equal(report.matching.mapping[0], perms[0])
    matched = report.matching.mapped_prefix(3, codes, permuted)
    for prefix, image in matched.items():
        assert image == tuple(int(perms[level][c]) for level, c in enumerate(prefix))
    for level in range(3):
        assert np.array_equal(match_level_codes(permuted[:, level], codes[:, level], 8), perms[level])


def test_level_two_matching_is_conditioned_on_the_parent():
    # Under parent 0 child 0 became 1; under parent 1 child 0 stayed 0: a global level-2
    # permutation cannot express both, the conditioned matching must.
    a = np.array([[0, 0]] * 5 + [[0, 1]] * 5 + [[1, 0]] * 5 + [[1, 1]] * 5)
    b = np.array([[0, 1]] * 5 + [[0, 0]] * 5 + [[1, 0]] * 5 + [[1, 1]] * 5)
    matching = match_prefixes(a, b)
    assert matching.kept_share == [1.0, 1.0]
    assert matching.mapped_prefix(2, a, b) == {(0, 0): (0, 1), (0, 1): (0, 0), (1, 0): (1, 0), (1, 1): (1, 1)}


def test_partial_change_gives_intermediate_figures():
    codes = _codes(seed=4)
    moved = codes.copy()
    moved[:600, 0] = (moved[:600, 0] + 1) % 8
    table = compare_codes(codes, moved).table
    assert 0.5 < table["ari"].iloc[0] < 1.0
    assert table["matched_kept"].iloc[0] == pytest.approx(0.8, abs=0.01)
    assert (np.diff(table["matched_kept"]) <= 0).all()


def test_compare_versions_aligns_items_by_id():
    codes = _codes(n=500, seed=5)
    ids = np.array([f"i{k}" for k in range(500)], dtype=object)
    order = np.random.default_rng(6).permutation(500)
    # This version lost 100 items, gained 50 and lists the rest in another order.
    keep = order[:400]
    new_ids = np.concatenate([ids[keep], np.array([f"new{k}" for k in range(50)], dtype=object)])
    new_codes = np.concatenate([codes[keep], _codes(n=50, seed=7)])
    report, figures = compare_versions(ids, codes, new_ids, new_codes)
    assert figures["items_common"] == 400 and report.n_common == 400
    assert np.allclose(report.table["ari"], 1.0)
    with pytest.raises(ValueError, match="share no item_id"):
        compare_versions(ids, codes, np.array(["x"] * 1, dtype=object), codes[:1])


def test_knn_figures_of_the_common_items_alone_are_compare_versions_figures():
    from semid_assets.core.evaluation.stability import common_item_ids, knn_figures

    rng = np.random.default_rng(10)
    ids = np.array([f"i{k}" for k in range(600)], dtype=object)
    emb_a = rng.normal(size=(600, 12)).astype(np.float32)
    keep = rng.permutation(600)[:450]
    new_ids = np.concatenate([ids[keep], np.array([f"new{k}" for k in range(40)], dtype=object)])
    emb_b = np.concatenate([emb_a[keep] + rng.normal(scale=0.3, size=(450, 12)).astype(np.float32),
                            rng.normal(size=(40, 12)).astype(np.float32)])
    codes_a, codes_b = _codes(n=600, seed=11), _codes(n=490, seed=12)
    _, whole = compare_versions(ids, codes_a, new_ids, codes_b, emb_a=emb_a, emb_b=emb_b, knn_sample=200, knn_k=5)
    common = common_item_ids(ids, new_ids)
    assert len(common) == 450
    row_a = {item: row for row, item in enumerate(ids)}
    row_b = {item: row for row, item in enumerate(new_ids)}
    gathered = knn_figures(emb_a[[row_a[i] for i in common]], emb_b[[row_b[i] for i in common]],
                           knn_sample=200, knn_k=5)
    assert 0 < whole["knn_overlap"] < 1
    assert gathered == {key: whole[key] for key in ("knn_overlap", "knn_sample", "knn_k")}
    assert knn_figures(emb_a[:5], emb_a[:5], knn_k=5) == {}


def test_nearest_neighbours_are_an_exact_flat_index_search():
    import faiss

    from semid_assets.core.evaluation.stability import nearest_neighbours

    emb = np.random.default_rng(13).normal(size=(3000, 32)).astype(np.float32)
    queries = np.sort(np.random.default_rng(14).choice(3000, 300, replace=False))
    index = faiss.IndexFlatL2(32)
    index.add(emb)
    assert np.array_equal(nearest_neighbours(queries, emb, 10), index.search(emb[queries], 11)[1])


def test_knn_overlap_is_one_for_same_embedding_and_lower_for_noise():
    X = np.random.default_rng(8).normal(size=(400, 16)).astype(np.float32)
    assert knn_overlap(X, X.copy(), sample=100, k=5) == pytest.approx(1.0)
    noisy = X + np.random.default_rng(9).normal(scale=1.0, size=X.shape).astype(np.float32)
    assert knn_overlap(X, noisy, sample=100, k=5) < 0.8


def test_jensen_shannon_bounds():
    assert jensen_shannon([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0)
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)


def _clustered(n=4000, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(32, d)).astype(np.float32) * 3
    return (centres[rng.integers(0, 32, n)] + rng.normal(size=(n, d))).astype(np.float32)


def test_anchored_retraining_on_unchanged_data_changes_no_sid():
    # Every point trains (4000 <= 256 x 16) and k-means runs to convergence, so the previous
    # codebooks are a fixed point of Lloyd's iterations on this data.
    X = _clustered()
    previous = RQKMeans(levels=3, codebook_size=16, n_iter=100, seed=0, n_threads=1)
    previous_codes = previous.fit_encode(X)
    # Another seed: unanchored, the same data would get other labels and other clusters.
    unanchored = RQKMeans(levels=3, codebook_size=16, n_iter=100, seed=1, n_threads=1).fit_encode(X)
    assert np.all(unanchored == previous_codes, axis=1).mean() < 0.5
    model = RQKMeans(levels=3, codebook_size=16, n_iter=100, seed=1, n_threads=1)
    codes, info = anchored_fit_encode(model, X, previous)
    assert np.array_equal(codes, previous_codes)
    assert info["full_sid_unchanged"] == 1.0
    assert np.array_equal(model.encode(X), codes)


def test_relabelling_keeps_the_reconstruction():
    X = _clustered(seed=1)
    model = RQKMeans(levels=2, codebook_size=8, n_iter=5, seed=0, n_threads=1)
    codes = model.fit_encode(X)
    rng = np.random.default_rng(0)
    target = np.stack([rng.permutation(8)[codes[:, level]] for level in range(2)], axis=1)
    codebooks, relabelled, moved = relabel_to_previous(model.codebooks, codes, target)
    assert np.array_equal(relabelled, target)
    before = model.decode(codes)
    model.codebooks = codebooks
    assert np.allclose(model.decode(relabelled), before)
    assert sum(moved) > 0


def test_init_codebooks_of_another_shape_is_refused():
    X = _clustered()
    previous = RQKMeans(levels=2, codebook_size=8, n_iter=2).fit(X)
    with pytest.raises(ValueError, match="same levels and codebook_size"):
        RQKMeans(levels=2, codebook_size=8).fit_encode(
            X, warm_start=WarmStart(previous, init_codebooks=np.zeros((2, 16, 16), dtype=np.float32)))


def test_prefix_jaccard_counts_other_items_and_skips_items_alone_in_both():
    a = np.array([[0], [0], [0], [1], [2]])
    b = np.array([[0], [0], [1], [1], [2]])
    row = compare_codes(a, b).table.iloc[0]
    # Items 0, 1: neighbours {1,2}/{0,2} vs {1}/{0} -> 1/2 each; item 2: {0,1} vs {3} -> 0;
    # item 3: {} vs {2} -> 0; item 4 is alone in both and not counted.
    assert row["jaccard_items"] == 4
    assert row["prefix_jaccard"] == pytest.approx((0.5 + 0.5 + 0 + 0) / 4)
    alone = compare_codes(np.arange(5).reshape(-1, 1), np.arange(5).reshape(-1, 1)).table.iloc[0]
    assert alone["jaccard_items"] == 0 and np.isnan(alone["prefix_jaccard"])


def test_anchoring_carries_the_partition_over_when_the_embeddings_move():
    # A retrained aligner moves every vector: here a random rotation of the same items.
    X = _clustered(seed=2)
    previous = RQKMeans(levels=2, codebook_size=16, n_iter=50, seed=0, n_threads=1)
    previous_codes = previous.fit_encode(X)
    rotation, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(X.shape[1], X.shape[1])))
    moved = (X @ rotation).astype(np.float32)
    known = previous_codes.copy()
    known[:200] = -1  # items the previous version never saw take no part in the carry-over
    through_old_space, _ = anchored_fit_encode(RQKMeans(levels=2, codebook_size=16, n_iter=50, seed=1,
                                                        n_threads=1), moved, previous)
    carried, info = anchored_fit_encode(RQKMeans(levels=2, codebook_size=16, n_iter=50, seed=1, n_threads=1),
                                        moved, previous, previous_codes=known)
    unchanged = np.all(carried[200:] == previous_codes[200:], axis=1).mean()
    assert info["warm_start"] == "previous partition carried over" and info["items_known_before"] == len(X) - 200
    assert unchanged > 0.95 and info["full_sid_unchanged"] == unchanged
    assert np.all(through_old_space == previous_codes, axis=1).mean() < unchanged - 0.3


def test_fewer_warm_iterations_keep_more_sids_for_about_the_same_error():
    # A month later the same items have drifted a little; every Lloyd iteration after the warm
    # start lets more border items change code.
    X = _clustered(seed=4)
    previous = RQKMeans(levels=3, codebook_size=16, n_iter=50, seed=0, n_threads=1)
    previous_codes = previous.fit_encode(X)
    drifted = (X + np.random.default_rng(5).normal(scale=0.3, size=X.shape)).astype(np.float32)
    kept, error = {}, {}
    for iterations in (1, 50):
        model = RQKMeans(levels=3, codebook_size=16, n_iter=50, seed=1, n_threads=1)
        codes, info = anchored_fit_encode(model, drifted, previous, previous_codes=previous_codes,
                                          steps=iterations)
        assert info["iterations"] == iterations and model.fit_info["warm_iterations"] == iterations
        kept[iterations] = info["full_sid_unchanged"]
        error[iterations] = float(np.square(drifted - model.decode(codes)).mean())
    assert kept[1] > kept[50] + 0.02
    assert error[1] < 1.05 * error[50]
    with pytest.raises(ValueError, match="steps must be >= 1"):
        anchored_fit_encode(RQKMeans(levels=3, codebook_size=16), drifted, previous, steps=0)
