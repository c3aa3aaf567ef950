"""Generations in the tiny in-process lineage: published IDs stay, staleness and verdicts, a cut on request
with its migration and aliases, stability and hierarchy on the published IDs."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd

from semid_assets.cli import main
from semid_assets.core.lifecycle.archive import GenerationArchive
from semid_assets.core.lifecycle.generations import published
from semid_assets.core.lifecycle.versions import CHAMPION_ALIAS, generation_alias
from semid_assets.core.storage import AssetStore
from semid_assets.partitions import METHOD, MONTH
from semid_assets.registry import Registry

MODEL = "semid-synthetic-tiny-rq_kmeans"


def _key(month: str, method: str = "rq_kmeans") -> str:
    return str(dg.MultiPartitionKey({MONTH: month, METHOD: method}))


def _metadata(instance, asset: str, partition: str) -> dict:
    """The newest materialisation's metadata of the tiny dataset (other tests run other datasets
    through the same instance)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=20).records
    mine = [r for r in records if "synthetic-tiny" in str(r.asset_materialization.metadata.get("path", "synthetic-tiny"))]
    assert mine, f"{asset} [{partition}] was not materialised"
    return {k: v.value for k, v in mine[0].asset_materialization.metadata.items()}


def _store(settings) -> AssetStore:
    return AssetStore(settings.assets_dir("synthetic-tiny"))


def _table(settings, month: str, method: str = "rq_kmeans") -> pd.DataFrame:
    return _store(settings).read_table("semantic_ids", month=month, method=method).to_pandas()


def test_first_month_starts_generation_one_and_later_months_keep_published_ids(tiny_run, tiny_settings):
    _, instance, _, months = tiny_run
    first = _metadata(instance, "sid_staleness", _key(months[0]))
    assert first["decision"] == "first" and "generation 1" in first["verdict"]
    for method in ("rq_kmeans", "rq_kmeans_balanced", "rq_vae", "letter"):
        before, after = _table(tiny_settings, months[0], method), _table(tiny_settings, months[1], method)
        decision = _metadata(instance, "sid_staleness", _key(months[1], method))["decision"]
        kept = after.set_index("item_id").loc[before["item_id"]].reset_index()
        if decision in ("keep", "refused"):
            # Inside a generation every published row is the same, bit for bit.
            pd.testing.assert_frame_equal(kept, before)
        assert not after.duplicated(["c1", "c2", "c3", "suffix"]).any(), method
        assert after["first_month"].isin(months).all() and set(after["generation"]) <= {1, 2}


def test_semantic_ids_link_first_to_the_model_version_of_their_generation(tiny_run, tiny_settings):
    _, instance, _, months = tiny_run
    registry = Registry(tiny_settings.mlflow_tracking_uri, tiny_settings.mlflow_artifacts)
    for month in months:
        meta = _metadata(instance, "semantic_ids", _key(month))
        version = registry.version_by_alias(MODEL, generation_alias(meta["generation"]))
        assert list(meta)[0] == "mlflow_model_version", list(meta)
        assert meta["mlflow_model_version"].endswith(f"/versions/{version.version}"), (month, meta["generation"])


def test_staleness_figures_reach_metadata_and_mlflow(tiny_run, tiny_settings):
    _, instance, _, months = tiny_run
    meta = _metadata(instance, "sid_staleness", _key(months[1]))
    assert list(meta)[:2] == ["mlflow_model_version", "mlflow_run"]
    assert meta["decision"] in ("keep", "cut", "refused")
    for figure in ("mse_gain", "new_item_collision_rate", "literal_kept", "matched_kept"):
        assert figure in meta, figure
    # Literal and matched-after-renaming sit side by side; the literal share never exceeds the matched one.
    assert meta["literal_kept"] <= meta["matched_kept"] + 1e-9
    registry = Registry(tiny_settings.mlflow_tracking_uri, tiny_settings.mlflow_artifacts)
    metrics = registry.run_metrics(registry.find_version(MODEL, months[1]).run_id)
    assert metrics["staleness_mse_gain"] == meta["mse_gain"] or abs(metrics["staleness_mse_gain"] - meta["mse_gain"]) < 1e-3
    # The report over the months: one row per month so far, as metadata and as a plot on the run.
    over = meta["over_months"].records
    assert [row.data["month"] for row in over] == months[:2]
    assert [row.data["decision"] for row in over][0] == "first"
    assert abs(over[-1].data["mse_gain"] - meta["mse_gain"]) < 1e-3
    run_id = registry.find_version(MODEL, months[1]).run_id
    names = [a.path for a in registry.client.list_artifacts(run_id, "staleness")]
    assert "staleness/staleness_over_months.png" in names


def test_stability_and_hierarchy_read_the_published_ids(tiny_run, tiny_settings):
    _, instance, _, months = tiny_run
    assert _metadata(instance, "sid_stability", _key(months[0]))["compared_with"].startswith("none")
    meta = _metadata(instance, "sid_stability", _key(months[1]))
    assert meta["compared_with_month"] == months[0]
    decision = _metadata(instance, "sid_staleness", _key(months[1]))["decision"]
    if decision in ("keep", "refused"):
        assert meta["literal_kept_full"] == 1.0
    table = _store(tiny_settings).read_table("sid_stability", month=months[1], method="rq_kmeans").to_pandas()
    assert list(table["prefix_length"]) == [1, 2, 3]
    assert (table["raw_unchanged"] <= table["matched_kept"] + 1e-9).all()
    hierarchy = _store(tiny_settings).read_table("sid_hierarchy", month=months[1], method="rq_kmeans").to_pandas()
    assert (hierarchy["mean_cosine"] > hierarchy["random_cosine"]).all()
    assert (hierarchy["centred_cosine"] > hierarchy["random_centred_cosine"]).all()
    registry = Registry(tiny_settings.mlflow_tracking_uri, tiny_settings.mlflow_artifacts)
    metrics = registry.run_metrics(registry.find_version(MODEL, months[1]).run_id)
    assert "stability_ari_p1" in metrics and "hierarchy_centred_cosine_p3" in metrics


def test_a_cut_on_request_writes_the_migration_the_aliases_and_an_anchored_tokenizer(
        tiny_run, tiny_settings, tmp_path, monkeypatch):
    defs, instance, _, months = tiny_run
    month = months[1]
    previous = published(_table(tiny_settings, months[0]))

    def run(**staleness):
        return dg.materialize(
            [*defs.assets, *defs.asset_checks], partition_key=_key(month), instance=instance,
            selection=dg.AssetSelection.assets("tokenizer", "sid_staleness", "semantic_ids", "sid_migration",
                                               "sid_prefix_migration"),
            run_config={"ops": {"sid_staleness": {"config": staleness}}}, resources=defs.resources)

    assert run(cut_generation=True).success
    table = _table(tiny_settings, month)
    number = int(previous.generation.max()) + 1
    assert set(table["generation"]) == {number}
    migration = _store(tiny_settings).read_table("sid_migration", month=month, method="rq_kmeans").to_pandas()
    assert len(migration) == len(previous.item_ids) and set(migration["item_id"]) == set(previous.item_ids)
    flows = _store(tiny_settings).read_table("sid_prefix_migration", month=month, method="rq_kmeans").to_pandas()
    assert set(flows["length"]) == {1, 2, 3}
    assert flows.groupby(["length", "old_prefix"])["share"].sum().round(9).eq(1.0).all()
    tokenizer = _metadata(instance, "tokenizer", _key(month))
    assert tokenizer["anchored_to"] == months[0]
    record = GenerationArchive(_store(tiny_settings)).record("rq_kmeans", number)
    assert record.origin_month == month and "on request" in record.reason

    registry = Registry(tiny_settings.mlflow_tracking_uri, tiny_settings.mlflow_artifacts)
    version = registry.version_by_alias(MODEL, generation_alias(number))
    assert version.tags["month"] == month
    assert registry.version_by_alias(MODEL, CHAMPION_ALIAS).version == version.version

    # `semid encode` with the generation's alias gives the cut's codes to items it is given as vectors.
    vectors = _store(tiny_settings).read_table("aligned_embeddings", month=month).to_pandas()
    items, out = tmp_path / "items.parquet", tmp_path / "sids.parquet"
    vectors.head(20).to_parquet(items)
    monkeypatch.setenv("SEMID_HOME", str(tiny_settings.home))
    assert main(["encode", "--model", f"{MODEL}@{generation_alias(number)}", "--items", str(items),
                 "--out", str(out)]) == 0
    encoded = pd.read_parquet(out)
    assert np.array_equal(encoded[["c1", "c2", "c3"]].to_numpy(), table[["c1", "c2", "c3"]].to_numpy()[:20])

    # Leave the shared home as the fixture made it: the month without a requested cut.
    assert run(cut_generation=False).success
