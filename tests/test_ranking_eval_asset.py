"""ranking_eval materialised in-process on the tiny lineage, with stability against the older month."""

from __future__ import annotations

import dagster as dg
import pandas as pd
from mlflow.tracking import MlflowClient

from semid_assets.defs.automation import RANKING_JOB
from semid_assets.demo import ranking_summary
from semid_assets.partitions import METHOD, MONTH

FAST = {"n_boot": 30, "max_epochs": 2, "max_train_rows": 20_000}


def test_ranking_eval_materialises_with_table_plot_and_stability(tiny_run, tiny_settings):
    defs, instance, _, months = tiny_run
    key = dg.MultiPartitionKey({MONTH: months[-1], METHOD: "rq_kmeans"})
    result = defs.resolve_job_def(RANKING_JOB).execute_in_process(
        partition_key=key, instance=instance,
        run_config={"ops": {"ranking_eval": {"config": FAST}}})
    assert result.success
    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("ranking_eval"), asset_partitions=[str(key)]), limit=1).records[0]
    metadata = {k: v.value for k, v in record.asset_materialization.metadata.items()}
    results = pd.DataFrame(metadata["results"])
    # Every variant, plus the SID variants retrained on the older month's SIDs (clipped to what exists).
    assert metadata["older_sids"] == months[0]
    expected = {"hash", "dense", "sid_unigram", "sid_bigram", "sid_spm"}
    assert expected | {f"{v}@{months[0]}" for v in ("sid_unigram", "sid_bigram", "sid_spm")} == set(results["model"])
    assert results["auc"].between(0, 1).all() and results["cold auc"].between(0, 1).all()
    assert "| model |" in metadata["ranking"] and "auc old − current" in metadata["stability"]

    run_id = metadata["mlflow_run"].rstrip("/").rsplit("/", 1)[-1]
    client = MlflowClient(tiny_settings.mlflow_tracking_uri)
    run = client.get_run(run_id)
    assert run.data.tags["dagster_asset"] == "ranking_eval"
    assert {"auc_hash", "auc_cold_sid_spm", "auc_old_minus_current_sid_spm"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run_id, "plots")}
    assert "plots/ranking_auc.png" in artifacts

    stored = pd.read_parquet(tiny_settings.assets_dir(tiny_settings.source().name) / "ranking_eval"
                             / f"month={months[-1]}" / "method=rq_kmeans.parquet")
    assert list(stored["model"]) == list(results["model"])
    # The row `semid demo --ranking` prints for this partition.
    row = ranking_summary(instance, str(key))
    assert set(row) == {"cold auc hash", "best sid (cold auc)"} and row["best sid (cold auc)"].startswith("sid_")
