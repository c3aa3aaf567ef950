"""The whole graph materialised in-process for two tiny months."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from semid_assets.core.data.embedding_table import embeddings_from_arrow
from semid_assets.core.lifecycle.archive import GenerationArchive
from semid_assets.core.storage import AssetStore, load_artifact
from semid_assets.defs.checks import figure_key
from semid_assets.partitions import METHOD, MONTH
from semid_assets.settings import METHODS


def _asset_file(settings, asset: str, partition: str, suffix: str):
    root = settings.assets_dir(settings.source().name) / asset
    return root / f"{partition}{suffix}"


def test_every_month_and_method_has_a_summary_row(tiny_run):
    _, _, summary, months = tiny_run
    assert list(dict.fromkeys(summary["month"])) == months
    assert sorted(summary["method"]) == sorted(METHODS * len(months))
    assert (summary["items"] > 0).all()
    first = summary[summary["month"] == months[0]]
    assert first["generation"].eq("1 (first)").all() and (first["new items"] == first["items"]).all()
    assert summary["candidate rel. MSE"].astype(float).between(0, 1).all()


def test_outputs_are_consistent_across_assets(tiny_run, tiny_settings):
    _, _, _, months = tiny_run
    month = months[-1]
    items = pq.read_table(_asset_file(tiny_settings, "raw_items", month, ".parquet"))
    embeddings = pq.read_table(_asset_file(tiny_settings, "aligned_embeddings", month, ".parquet"))
    ids, vectors = embeddings_from_arrow(embeddings)
    assert list(ids) == items.column("item_id").to_pylist()
    assert vectors.dtype == np.float32 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)

    sids = pd.read_parquet(_asset_file(tiny_settings, "semantic_ids", f"month={month}/method=rq_kmeans", ".parquet"))
    code_columns = [c for c in sids.columns if c.startswith("c")]
    assert list(sids["item_id"]) == list(ids)
    assert not sids.duplicated(code_columns + ["suffix"]).any()

    # The published codes are the generation's: its tokenizer's codes of the items it published first
    # (in the tiny lineage the content embedding serves, so the generation's space is the month's).
    number = int(sids["generation"].max())
    record = GenerationArchive(AssetStore(tiny_settings.assets_dir("synthetic-tiny"))).record("rq_kmeans", number)
    models = GenerationArchive(AssetStore(tiny_settings.assets_dir("synthetic-tiny"))).models(record)
    placed_here = (sids["first_month"] == record.origin_month).to_numpy() & (sids["suffix"] == 0).to_numpy()
    codes = sids[["c1", "c2", "c3"]].to_numpy()
    assert np.array_equal(models.tokenizer.encode(vectors[placed_here]), codes[placed_here])


def test_catalogue_grows_and_pairs_have_both_sources(tiny_run, tiny_settings):
    _, _, _, months = tiny_run
    counts = [pq.read_metadata(_asset_file(tiny_settings, "raw_items", m, ".parquet")).num_rows for m in months]
    assert counts[1] > counts[0]
    pairs = pd.read_parquet(_asset_file(tiny_settings, "item_pairs", months[-1], ".parquet"))
    assert set(pairs["source"].astype(str)) == {"u2i", "swing"}
    assert (pairs["item_a"] != pairs["item_b"]).all()


def _check_evaluations(instance, key: str, dataset: str) -> dict:
    # One instance serves every dataset of a home (test_bring_your_own_data runs the parquet
    # dataset's tokenizer on the same partition): judge the run that wrote this dataset's table.
    written = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("semantic_ids"), asset_partitions=[key]), limit=20).records
    run_id = next(r.run_id for r in written if dataset in r.asset_materialization.metadata["path"].value)
    found = {}
    for check in ("sid_table_not_empty", "sid_level1_utilisation", "sid_collision_rate"):
        records = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("semantic_ids"), check), limit=20)
        mine = [r for r in records if r.partition == key and r.run_id == run_id]
        assert mine, f"{check} did not run for {key}"
        found[check] = mine[0].event.dagster_event.event_specific_data
    return found


def test_checks_judge_every_version_by_its_thresholds(tiny_run, tiny_settings):
    defs, instance, summary, months = tiny_run
    thresholds = defs.resources["sid_thresholds"]
    rq_kmeans = summary[summary["method"] == "rq_kmeans"]
    for month, checks_cell in zip(months, rq_kmeans["checks"]):
        key = str(dg.MultiPartitionKey({MONTH: month, METHOD: "rq_kmeans"}))
        evaluations = _check_evaluations(instance, key, tiny_settings.source().name)
        sids = pd.read_parquet(_asset_file(tiny_settings, "semantic_ids", f"month={month}/method=rq_kmeans", ".parquet"))
        rate = float((sids["suffix"] > 0).mean())
        assert evaluations["sid_collision_rate"].passed == (rate <= thresholds.max_collision_rate)
        # Each method's figure is a number of its own (one plot per method); the threshold is text.
        check_metadata = evaluations["sid_collision_rate"].metadata
        assert check_metadata[figure_key("collision_rate", "rq_kmeans")].value == pytest.approx(rate, rel=1e-3)
        assert check_metadata["threshold"].value == f"<= {thresholds.max_collision_rate}"
        size = load_artifact(_asset_file(tiny_settings, "tokenizer", f"month={month}/method=rq_kmeans", ".npz")).codebook_size
        utilisation = sids["c1"].nunique() / size
        assert evaluations["sid_level1_utilisation"].passed == (utilisation >= thresholds.min_level1_utilisation)
        assert evaluations["sid_table_not_empty"].passed
        # Quality findings are warnings: the run stays green, the demo lists them.
        failed = [name for name, ev in evaluations.items() if not ev.passed]
        assert all(evaluations[name].severity == dg.AssetCheckSeverity.WARN for name in failed)
        assert "failed" not in checks_cell.split("; warnings:")[0]
        for name in failed:
            assert name in checks_cell and "by" in evaluations[name].description


def test_a_failing_check_says_what_fell_short(tiny_run):
    from semid_assets.resources import SidQualityThresholds

    defs, instance, _, months = tiny_run
    key = dg.MultiPartitionKey({MONTH: months[-1], METHOD: "rq_kmeans"})
    strict = SidQualityThresholds(min_items=10**6, max_collision_rate=1.0, min_level1_utilisation=0.0)
    not_empty = dg.AssetCheckKey(dg.AssetKey("semantic_ids"), "sid_table_not_empty")
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=dg.AssetSelection.assets("semantic_ids").without_checks() | dg.AssetSelection.checks(not_empty),
        partition_key=str(key), instance=instance, raise_on_error=False,
        resources={**defs.resources, "sid_thresholds": strict})
    evaluation = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert len(evaluation) == 1 and not evaluation[0].passed
    assert "at least 1000000 required" in evaluation[0].description


def test_text_tokens_are_not_encoded_twice(tiny_run):
    _, instance, _, months = tiny_run
    records = instance.fetch_materializations(dg.AssetKey("multimodal_features"), limit=10).records
    by_month = {r.partition_key: r.asset_materialization.metadata for r in records}
    second = by_month[months[1]]
    # The second month re-uses every text of the first and encodes only new items' texts.
    assert second["texts_from_cache"].value > 0
    assert second["texts_encoded"].value < second["texts_total"].value


MONTHLY_ASSETS = ("raw_items", "raw_interactions", "multimodal_features", "item_pairs", "collaborative_embeddings",
                  "aligner_candidate", "aligned_embeddings", "tokenizer_comparison")
VERSION_ASSETS = ("tokenizer", "sid_staleness", "semantic_ids", "sid_stability", "sid_hierarchy")


def _newest_metadata(instance, asset: str, partition: str, dataset: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=20).records
    mine = [r for r in records if dataset in str(r.asset_materialization.metadata.get("path", dataset))]
    assert mine, f"{asset} [{partition}] was not materialised"
    return dict(mine[0].asset_materialization.metadata)


def test_metadata_reads_links_first_a_typed_number_and_rounded_tables(tiny_run, tiny_settings):
    from semid_assets.metadata import round_sig

    _, instance, _, months = tiny_run
    month, dataset = months[-1], tiny_settings.source().name
    partitions = [(a, month) for a in MONTHLY_ASSETS] + [
        (a, str(dg.MultiPartitionKey({MONTH: month, METHOD: "rq_kmeans"}))) for a in VERSION_ASSETS]
    for asset, partition in partitions:
        values = list(_newest_metadata(instance, asset, partition, dataset).values())
        links = [i for i, v in enumerate(values) if isinstance(v, dg.UrlMetadataValue)]
        assert links == list(range(len(links))), f"{asset}: MLflow links are not first"
        assert any(isinstance(v, (dg.IntMetadataValue, dg.FloatMetadataValue)) for v in values), asset
        floats = [v.value for v in values if isinstance(v, dg.FloatMetadataValue)]
        for table in (v.value for v in values if isinstance(v, dg.TableMetadataValue)):
            floats += [c for r in table.records for c in r.data.values() if isinstance(c, float)]
        assert all(f == round_sig(f) for f in floats), f"{asset}: a number is not at 4 significant figures"
        markdown = [v.value for v in values if isinstance(v, dg.MarkdownMetadataValue)]
        assert not any("| ---" in text or "|---" in text for text in markdown), f"{asset}: a table as markdown"
