"""Every tokenizer method through the graph: registered versions, the per-month comparison,
`semid report`, and the ``reassign`` collision strategy on the real asset."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from semid_assets.cli import main
from semid_assets.core.data.embedding_table import embeddings_from_arrow
from semid_assets.core.tokenizers.metrics import collision_stats
from semid_assets.defs.tokenizer import SemanticIdConfig
from semid_assets.core.storage import load_artifact
from semid_assets.registry import NEWEST_ALIAS, Registry, load_tokenizer
from semid_assets.settings import METHODS


def _assets(settings):
    return settings.assets_dir(settings.source().name)


def _embeddings(settings, month):
    return embeddings_from_arrow(pq.read_table(_assets(settings) / "aligned_embeddings" / f"{month}.parquet"))


def test_every_method_is_registered_and_reproduces_its_semantic_ids(tiny_run, tiny_settings):
    _, _, summary, months = tiny_run
    assert sorted(summary["method"].unique()) == sorted(METHODS)
    month = months[-1]
    _, vectors = _embeddings(tiny_settings, month)
    registry = Registry(tiny_settings.mlflow_tracking_uri, tiny_settings.mlflow_artifacts)
    for method in METHODS:
        sids = pd.read_parquet(_assets(tiny_settings) / "semantic_ids" / f"month={month}" / f"method={method}.parquet")
        codes = sids[["c1", "c2", "c3"]].to_numpy()
        tokenizer = load_tokenizer(f"models:/semid-synthetic-tiny-{method}@newest", tiny_settings.mlflow_tracking_uri)
        assert np.array_equal(tokenizer.encode_catalogue(vectors), codes), method
        decoded = tokenizer.decode(tokenizer.encode(vectors[:20]))
        assert decoded.shape == (20, vectors.shape[1])
        # The run's params are the method's own options plus the pipeline's, not every method's.
        version = registry.version_by_alias(f"semid-synthetic-tiny-{method}", NEWEST_ALIAS)
        params = registry.client.get_run(version.run_id).data.params
        assert set(params) == set(tokenizer.get_params()) | {
            "anchor_to_previous", "anchor_iterations", "method", "n_items", "dim", "anchored_to"}, method


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
    assert "rq_kmeans vs rq_vae" in metadata["rq_kmeans_vs_rq_vae"].value
    assert metadata["mlflow_run"].value.startswith("http://127.0.0.1:5000/#/experiments/")
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


def test_reassign_strategy_keeps_l_tokens_and_lowers_collisions(tiny_run, tiny_settings):
    defs, _, _, months = tiny_run
    month = months[-1]
    ids, vectors = _embeddings(tiny_settings, month)
    model = load_artifact(_assets(tiny_settings) / "tokenizer" / f"month={month}" / "method=rq_kmeans.npz")
    key = dg.MultiPartitionKey({"month": month, "method": "rq_kmeans"})
    asset = defs.get_assets_def("semantic_ids")
    with dg.build_asset_context(partition_key=str(key)) as context:
        result = asset(context=context, config=SemanticIdConfig(collision_strategy="reassign"), tokenizer=model,
                       aligned_embeddings=pq.read_table(_assets(tiny_settings) / "aligned_embeddings" / f"{month}.parquet"))
    table, meta = result.value, result.metadata
    assert list(table.columns) == ["item_id", "c1", "c2", "c3", "suffix"] and list(table["item_id"]) == list(ids)
    before = model.encode(vectors)
    assert meta["collision_rate_before"] == collision_stats(before)[0]
    assert meta["collision_rate"] < meta["collision_rate_before"] and meta["moved_to_free_code"] > 0
    # Prefixes are untouched; only the last level moved.
    assert np.array_equal(table[["c1", "c2"]].to_numpy(), before[:, :2])
    assert not table.duplicated(["c1", "c2", "c3", "suffix"]).any()


def test_comparison_skips_nmi_with_a_reason_without_ground_truth():
    import pyarrow as pa

    from semid_assets.defs.comparison import _truth

    truth, note = _truth(pa.table({"item_id": ["a", "b"], "title": ["x", "y"]}), np.array(["a", "b"]))
    assert truth is None and "skipped" in note and "truth_category" in note
