"""ranking_eval materialised in-process on the tiny lineage, with stability against the older month."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from semid_assets.defs.automation import RANKING_JOB
from semid_assets.core.evaluation.ranker_config import RankerOptions
from semid_assets.core.evaluation.ranking_options import RankingOptions
from semid_assets.core.options import options_of
from semid_assets.defs.ranking import RankerConfig, RankingEvalConfig, ranking_options, summary_of
from semid_assets.metadata import round_sig
from semid_assets.partitions import METHOD, MONTH

FAST = {"n_boot": 30, "max_train_rows": 20_000, "ranker": {"max_epochs": 2}}


def _materialise(tiny_run, method: str, config: dict) -> dict:
    defs, instance, _, months = tiny_run
    key = dg.MultiPartitionKey({MONTH: months[-1], METHOD: method})
    result = defs.resolve_job_def(RANKING_JOB).execute_in_process(
        partition_key=key, instance=instance, run_config={"ops": {"ranking_eval": {"config": config}}})
    assert result.success
    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("ranking_eval"), asset_partitions=[str(key)]), limit=1).records[0]
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def _records(table) -> pd.DataFrame:
    return pd.DataFrame([record.data for record in table.records])


def test_ranking_eval_materialises_typed_tables_plot_and_stability(tiny_run, tiny_settings):
    _, _, _, months = tiny_run
    metadata = _materialise(tiny_run, "rq_kmeans", FAST)
    assert list(metadata)[0] == "mlflow_run"
    # The budget is sized from the catalogue (items / 8) and stated.
    items = len(tiny_settings.source().items_as_of(months[-1]))
    assert metadata["budget_rows"] == items // 8 and metadata["budget_parameters"] == items // 8 * 32
    auc = _records(metadata["auc"])
    expected = {"hash", "item_id", "dense", "sid_unigram", "sid_bigram", "sid_spm"}
    assert metadata["older_sids"] == months[0]
    assert expected | {f"{v}@{months[0]}" for v in ("sid_unigram", "sid_bigram", "sid_spm")} == set(auc["model"])
    assert set(auc["slice"]) == {"all", "strictly cold", "new this month"}
    # Numbers are numbers (rounded to 4 significant figures), or the words saying why there is none.
    assert all(isinstance(v, float) and v == round_sig(v, 4) or v == "too few to decide" for v in auc["auc"])
    assert any(isinstance(v, float) for v in auc["auc"])
    columns = {c.name: c.type for c in metadata["auc"].schema.columns}
    assert columns["users low"] == columns["items high"] == "float" and columns["table rows"] == "int"
    slices = _records(metadata["slices"]).set_index("slice")
    assert slices.loc["new this month", "items"] > 0 and slices.loc["strictly cold", "impressions"] > 0
    assert set(_records(metadata["versus_hash"])["verdict"]) <= {"better", "worse", "no difference shown",
                                                                 "too few to decide"}
    assert "auc old − current" in _records(metadata["stability"]).columns
    assert "results" not in metadata and "ranking" not in metadata  # one table per subject, no JSON copy

    run_id = metadata["mlflow_run"].rstrip("/").rsplit("/", 1)[-1]
    client = MlflowClient(tiny_settings.mlflow_tracking_uri)
    run = client.get_run(run_id)
    assert run.data.tags["dagster_asset"] == "ranking_eval"
    assert {"auc_all_hash", "auc_strictly_cold_sid_spm_items_low", "old_minus_current_all_sid_spm"} \
        <= set(run.data.metrics)
    assert "plots/ranking_auc.png" in {a.path for a in client.list_artifacts(run_id, "plots")}
    assert {"reports/auc.md", "reports/slices.md"} <= {a.path for a in client.list_artifacts(run_id, "reports")}

    stored = pd.read_parquet(tiny_settings.assets_dir(tiny_settings.source().name) / "ranking_eval"
                             / f"month={months[-1]}" / "method=rq_kmeans.parquet")
    assert list(stored["model"]) == list(auc["model"]) and stored["auc"].dtype == float
    row = summary_of(metadata)
    assert set(row) == {"strictly cold auc hash", "best sid (strictly cold auc)"}


@pytest.mark.parametrize("method", ["rq_vae", "letter"])
def test_ranking_eval_compares_with_an_older_version_of_a_latent_tokenizer(tiny_run, method):
    # RQ-VAE and LETTER quantise a latent narrower than their input: the older version must be
    # checked against its input width (issue 12, point 5).
    _, _, _, months = tiny_run
    metadata = _materialise(tiny_run, method, {**FAST, "variants": ["hash", "sid_unigram"],
                                               "stability_variants": ["sid_unigram"]})
    assert metadata["older_sids"] == months[0]
    stability = _records(metadata["stability"])
    assert set(stability["model"]) == {"sid_unigram"} and set(stability["older sids"]) == {months[0]}


def test_the_launchpad_shows_every_option_with_its_description():
    for config, options in ((RankingEvalConfig, RankingOptions), (RankerConfig, RankerOptions)):
        for option in options_of(options):
            described = config.model_fields[option.name].description
            # A nested section is described by its class's docstring, every other option by its own.
            assert described and (option.name == "ranker" or described == option.doc), option.name
    assert RankingEvalConfig.model_fields["older_months"].description
    assert ranking_options(RankingEvalConfig(ranker={"dim": 8}, variants=["hash"])) == RankingOptions(
        variants=("hash",), ranker=RankerOptions(dim=8))
