"""The aligner in the graph: its report, its registry round trip, and `semid embed` on unseen items."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from semid_assets.cli import main
from semid_assets.core.data.embedding_table import embeddings_from_arrow
from semid_assets.core.lifecycle.serving import CANDIDATE_VECTORS
from semid_assets.core.storage import AssetStore, load_artifact
from semid_assets.registry import Registry, load_aligner

MODEL = "semid-synthetic-tiny-aligner"


def _path(settings, asset: str, month: str, suffix: str):
    return settings.assets_dir(settings.source().name) / asset / f"{month}{suffix}"


def _metadata(instance, asset: str, month: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[month]), limit=1).records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def _rows(meta: dict, name: str) -> dict:
    """The rows of a table in metadata, keyed by their first column."""
    return {row.data[name]: row.data for row in meta.records}


def test_aligner_report_and_mlflow_run(tiny_run, tiny_settings):
    _, instance, _, months = tiny_run
    meta = _metadata(instance, "aligner_candidate", months[-1])
    assert meta["trained"] and meta["pairs_heldout"] > 0 and "verdict" in meta
    retrieval = _rows(meta["retrieval"], "aligner")
    assert {"none", "qformer"} <= set(retrieval) and 0 <= retrieval["qformer"]["heldout_recall@10"] <= 1
    registry = Registry(tiny_settings.mlflow_tracking_uri, tiny_settings.mlflow_artifacts)
    version = registry.client.get_model_version_by_alias(MODEL, "newest")
    assert version.tags["month"] == months[-1] and version.tags["serving"] in ("true", "false")
    run = registry.client.get_run(version.run_id)
    assert {"qformer_heldout_recall_at_10", "none_heldout_recall_at_10", "caption_loss_heldout"} <= set(run.data.metrics)
    curve = registry.client.get_metric_history(version.run_id, "train_loss")
    assert len(curve) > 1 and [m.step for m in curve] == list(range(len(curve)))


def test_a_warm_started_month_reports_how_far_it_moved(tiny_run, tiny_settings):
    _, instance, _, months = tiny_run
    first, last = (_metadata(instance, "aligner_candidate", m) for m in (months[0], months[-1]))
    assert "previous" not in _rows(first["retrieval"], "aligner") and "moved_from_previous" not in first
    # How much the term holds the space still is measured in tests/core/test_aligner.py: a tiny month
    # trains a handful of Adam steps, whose size does not depend on the loss.
    assert "previous" in _rows(last["retrieval"], "aligner")
    assert 0 < last["moved_from_previous"] < 4.0  # squared distance of unit vectors
    registry = Registry(tiny_settings.mlflow_tracking_uri, tiny_settings.mlflow_artifacts)
    run = registry.client.get_run(registry.find_version(MODEL, months[-1]).run_id)
    assert {"previous_heldout_recall_at_10", "moved_from_previous"} <= set(run.data.metrics)
    stability = registry.client.get_metric_history(run.info.run_id, "train_stability")
    assert len(stability) > 1 and any(m.value > 0 for m in stability)


def test_registered_aligner_is_the_stored_candidate_and_the_serving_one_makes_the_embeddings(tiny_run, tiny_settings):
    _, instance, _, months = tiny_run
    month = months[-1]
    store = AssetStore(tiny_settings.assets_dir("synthetic-tiny"))
    features = store.read_artifact("multimodal_features", month=month)
    registered = load_aligner(f"models:/{MODEL}@newest", tiny_settings.mlflow_tracking_uri)
    assert np.array_equal(registered.embed(features), store.read_artifact("aligner_candidate", month=month).embed(features))
    ids, vectors = embeddings_from_arrow(store.read_table("aligned_embeddings", month=month))
    serving = store.read_artifact("aligner", month=month)
    assert list(ids) == list(features.item_ids) and np.array_equal(serving.embed(features), vectors)
    # What the candidate gave every item is kept for aligned_embeddings and the next month's warm start.
    candidate_ids, candidate_vectors = embeddings_from_arrow(store.read_table(CANDIDATE_VECTORS, month=month))
    assert list(candidate_ids) == list(features.item_ids)
    assert np.array_equal(candidate_vectors, store.read_artifact("aligner_candidate", month=month).embed(features))
    assert _metadata(instance, "aligned_embeddings", month)["serving_aligner_month"] == \
        _metadata(instance, "aligner", month)["serving_aligner_month"]


def test_a_sparse_month_keeps_the_serving_aligner_and_old_items_do_not_move(tiny_run, tiny_settings):
    from semid_assets.resources import AlignerGateResource

    defs, instance, _, months = tiny_run
    store = AssetStore(tiny_settings.assets_dir("synthetic-tiny"))

    def align(month: str, gate) -> dg.ExecuteInProcessResult:
        result = dg.materialize(
            [*defs.assets], selection=dg.AssetSelection.assets("aligner_candidate", "aligner", "aligned_embeddings"),
            partition_key=month, instance=instance, resources={**defs.resources, "aligner_gate": gate})
        assert result.success
        return result

    # A generous gate lets the first month's aligner serve; the next month has too few pairs to judge one.
    align(months[0], AlignerGateResource(margin=-1.0, min_heldout_pairs=20))
    assert _metadata(instance, "aligner", months[0])["serving_aligner_month"] == months[0]
    align(months[1], AlignerGateResource(min_heldout_pairs=10**6))
    candidate, serving = (_metadata(instance, a, months[1]) for a in ("aligner_candidate", "aligner"))
    assert not candidate["trained"] and "not retrained" in candidate["verdict"]
    assert serving["serving_aligner_month"] == months[0] and not serving["changed_this_month"]
    before = dict(zip(*embeddings_from_arrow(store.read_table("aligned_embeddings", month=months[0]))))
    ids, after = embeddings_from_arrow(store.read_table("aligned_embeddings", month=months[1]))
    old = [i for i, item in enumerate(ids) if item in before]
    assert old and all(np.array_equal(after[i], before[ids[i]]) for i in old)
    # Leave the shared home as the fixture made it.
    align(months[0], defs.resources["aligner_gate"])
    align(months[1], defs.resources["aligner_gate"])


def test_embed_cli_on_items_the_aligner_never_saw(tiny_run, tiny_settings, tmp_path, monkeypatch,
                                                  unseen_items_file):
    _, _, _, months = tiny_run
    registry = Registry(tiny_settings.mlflow_tracking_uri, tiny_settings.mlflow_artifacts)
    older = registry.find_version(MODEL, months[0])
    items_file, unseen_ids = unseen_items_file
    out_file = tmp_path / "vectors.parquet"
    monkeypatch.setenv("SEMID_HOME", str(tiny_settings.home))
    assert main(["embed", "--model", f"{MODEL}/{older.version}", "--items", str(items_file),
                 "--out", str(out_file)]) == 0
    ids, vectors = embeddings_from_arrow(pq.read_table(out_file))
    assert list(ids) == unseen_ids
    # The same items embedded inside the whole newest catalogue by the same version: the same bits.
    features = load_artifact(_path(tiny_settings, "multimodal_features", months[-1], ".npz"))
    model = load_aligner(f"models:/{MODEL}/{older.version}", tiny_settings.mlflow_tracking_uri)
    rows = pd.Index(features.item_ids).get_indexer(ids)
    assert np.array_equal(vectors, model.embed(features)[rows])


def test_pairs_metadata_counts_each_source_and_their_overlap(tiny_run, tiny_settings):
    _, instance, _, months = tiny_run
    meta = _metadata(instance, "item_pairs", months[-1])
    pairs = pd.read_parquet(_path(tiny_settings, "item_pairs", months[-1], ".parquet"))
    keys = {s: set(zip(part["item_a"], part["item_b"])) for s, part in pairs.groupby("source", observed=True)}
    overlap = len(keys["swing"] & keys["u2i"])
    assert meta["distinct_pairs"] == len(keys["swing"] | keys["u2i"])
    table = _rows(meta["pairs_by_source"], "source")
    assert table["both (overlap)"]["pairs"] == overlap and table["u2i"]["pairs"] == len(keys["u2i"])
    assert table["distinct (union)"]["pairs"] == meta["distinct_pairs"] and table["u2i"]["mean_score"] is not None
    assert meta["u2i_targets_with_partner"] == int(pairs.loc[pairs["source"] == "u2i", "count"].sum())
    assert 0 < meta["u2i_targets_with_partner"] <= meta["u2i_targets"]


def test_pyfunc_predict_embeds_an_item_table(tiny_run, tiny_settings):
    import mlflow

    from semid_assets.registry import _use_store

    _, _, _, months = tiny_run
    month = months[-1]
    _use_store(tiny_settings.mlflow_tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@newest")
    items = tiny_settings.source().items_as_of(month).slice(3, 4).to_pandas()
    out = model.predict(items)
    store = AssetStore(tiny_settings.assets_dir("synthetic-tiny"))
    features = store.read_artifact("multimodal_features", month=month)
    vectors = store.read_artifact("aligner_candidate", month=month).embed(features)
    rows = pd.Index(features.item_ids).get_indexer(out["item_id"])
    assert np.array_equal(np.stack(out["embedding"].to_numpy()), vectors[rows])
