"""Every tokenizer method through the graph: registered versions, the per-month comparison,
`semid report`, and the ``reassign`` collision strategy on the real asset."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from semid_assets.cli import main
from semid_assets.core.data.embedding_table import embeddings_from_arrow
from semid_assets.core.lifecycle.hysteresis import CANDIDATE_MARGINS
from semid_assets.core.storage import AssetStore
from semid_assets.registry import Registry, load_tokenizer
from semid_assets.settings import METHODS


def _assets(settings):
    return settings.assets_dir(settings.source().name)


def _embeddings(settings, month):
    return embeddings_from_arrow(pq.read_table(_assets(settings) / "aligned_embeddings" / f"{month}.parquet"))


def test_every_method_is_registered_and_its_first_month_publishes_its_catalogue_codes(tiny_run, tiny_settings):
    _, _, summary, months = tiny_run
    assert sorted(summary["method"].unique()) == sorted(METHODS)
    registry = Registry(tiny_settings.mlflow_tracking_uri, tiny_settings.mlflow_artifacts)
    month = months[0]
    _, vectors = _embeddings(tiny_settings, month)
    for method in METHODS:
        sids = pd.read_parquet(_assets(tiny_settings) / "semantic_ids" / f"month={month}" / f"method={method}.parquet")
        version = registry.find_version(f"semid-synthetic-tiny-{method}", month)
        tokenizer = load_tokenizer(f"models:/{version.model_name}/{version.version}", tiny_settings.mlflow_tracking_uri)
        # The first publication is the first version's own catalogue codes.
        assert np.array_equal(tokenizer.encode_catalogue(vectors), sids[["c1", "c2", "c3"]].to_numpy()), method
        assert tokenizer.decode(tokenizer.encode(vectors[:20])).shape == (20, vectors.shape[1])
        # The run's params are the method's own options plus the pipeline's, not every method's.
        params = registry.client.get_run(version.run_id).data.params
        assert set(params) == set(tokenizer.get_params()) | {
            "anchor_to_previous", "anchor_iterations", "hysteresis", "n_items", "dim"}, method
        # The config leaves hysteresis unset: the run records the method's own margin.
        assert float(params["hysteresis"]) == CANDIDATE_MARGINS[method], method


def test_comparison_covers_every_method_with_ground_truth(tiny_run, tiny_settings):
    _, instance, _, months = tiny_run
    for month in months:
        frame = pd.read_parquet(_assets(tiny_settings) / "tokenizer_comparison" / f"{month}.parquet")
        assert sorted(frame["method"]) == sorted(METHODS)
        assert (frame["mse_beam8"] <= frame["mse_beam1"] * (1 + 1e-6)).sum() >= 2
        assert frame["nmi_l1_category"].between(0, 1).all() and frame["nmi_l1_category"].gt(0.2).all()
        assert (frame["collision_rate_reassign"] <= frame["collision_rate"]).all()
    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("tokenizer_comparison"), asset_partitions=[months[-1]]),
        limit=1).records[0]
    metadata = record.asset_materialization.metadata
    assert list(metadata)[0] == "mlflow_run"
    assert metadata["mlflow_run"].value.startswith("http://127.0.0.1:5000/#/experiments/")
    relative = metadata["rq_kmeans_vs_rq_vae"].value
    assert "rq_kmeans vs rq_vae" in [c.name for c in relative.schema.columns]
    assert {r.data["method"] for r in metadata["comparison"].value.records} == set(METHODS)
    best = frame.loc[frame["relative_mse"].idxmin()]
    assert metadata["lowest_relative_mse_method"].value == best["method"]
    assert metadata["lowest_relative_mse"].value == pytest.approx(best["relative_mse"], rel=1e-3)
    assert metadata["ground_truth"].value.startswith("NMI")


def test_report_cli_prints_the_comparison(tiny_run, tiny_settings, monkeypatch, capsys):
    _, _, _, months = tiny_run
    monkeypatch.setenv("SEMID_HOME", str(tiny_settings.home))
    assert main(["report", "--size", "tiny", "--month", months[-1]]) == 0
    out = capsys.readouterr().out
    assert f"## {months[-1]}: {len(METHODS)} methods" in out and "OneRec Table 11" in out
    assert all(method in out for method in METHODS)
    assert main(["report", "--size", "tiny", "--month", "1999-01"]) == 2
    assert "no tokenizer_comparison" in capsys.readouterr().err


def test_reassign_strategy_keeps_l_tokens_and_lowers_collisions(one_month_home):
    # A home of its own: in the shared one, publishing an old month again would be judged a backfill
    # of the newer publication (it takes the newer IDs), so the strategy would not show.
    from semid_assets.definitions import build_definitions

    settings, month = one_month_home
    defs = build_definitions(settings)
    key = str(dg.MultiPartitionKey({"month": month, "method": "rq_kmeans"}))
    store = AssetStore(_assets(settings))

    def publish(strategy: str, *assets: str) -> pd.DataFrame:
        result = dg.materialize(
            [*defs.assets, *defs.asset_checks], selection=dg.AssetSelection.assets(*assets), partition_key=key,
            instance=instance, resources=defs.resources,
            run_config={"ops": {"semantic_ids": {"config": {"collision_strategy": strategy}}}})
        assert result.success
        return store.read_table("semantic_ids", month=month, method="rq_kmeans").to_pandas()

    with dg.DagsterInstance.get() as instance:
        suffix = publish("suffix", "tokenizer", "sid_staleness", "semantic_ids")
        moved = publish("reassign", "semantic_ids")
    assert (suffix["suffix"] > 0).any(), "the tiny month has collisions to move"
    assert list(moved.columns) == list(suffix.columns) and list(moved["item_id"]) == list(suffix["item_id"])
    assert (moved["suffix"] > 0).mean() < (suffix["suffix"] > 0).mean()
    # Prefixes are untouched; only the last level moved.
    assert np.array_equal(moved[["c1", "c2"]].to_numpy(), suffix[["c1", "c2"]].to_numpy())
    assert not moved.duplicated(["c1", "c2", "c3", "suffix"]).any()


def test_comparison_skips_nmi_with_a_reason_without_ground_truth():
    import pyarrow as pa

    from semid_assets.defs.comparison import _truth

    truth, note = _truth(pa.table({"item_id": ["a", "b"], "title": ["x", "y"]}), np.array(["a", "b"]))
    assert truth is None and "skipped" in note and "truth_category" in note
