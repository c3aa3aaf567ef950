"""The MLflow registry round trip, `semid encode` on unseen items, and `semid demo` determinism."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from semid_assets.cli import main
from semid_assets.core.data.embedding_table import embeddings_from_arrow
from semid_assets.core.storage import AssetStore, content_sha256
from semid_assets.registry import (
    CONTENT_TAG,
    Registry,
    _use_store,
    load_tokenizer,
)

pytestmark = pytest.mark.heavy

MODEL = "semid-synthetic-tiny-rq_kmeans"


def _sids(settings, month, method="rq_kmeans"):
    path = settings.assets_dir(settings.source().name) / "semantic_ids" / f"month={month}" / f"method={method}.parquet"
    return pd.read_parquet(path)


def _embeddings(settings, month):
    path = settings.assets_dir(settings.source().name) / "aligned_embeddings" / f"{month}.parquet"
    return embeddings_from_arrow(pq.read_table(path))


def test_registered_version_encodes_and_decodes(tiny_run, tiny_settings):
    _, _, _, months = tiny_run
    registry = Registry(tiny_settings.mlflow_tracking_uri, tiny_settings.mlflow_artifacts)
    latest = registry.client.get_model_version_by_alias(MODEL, "newest")
    assert latest.tags["month"] == months[-1]
    assert {"month", "method", "dagster_run_id"} <= set(latest.tags)

    tokenizer = load_tokenizer(f"models:/{MODEL}@newest", tiny_settings.mlflow_tracking_uri)
    ids, vectors = _embeddings(tiny_settings, months[-1])
    table = _sids(tiny_settings, months[-1])
    codes = tokenizer.encode(vectors)
    assert np.array_equal(codes, table[[f"c{i + 1}" for i in range(codes.shape[1])]].to_numpy())

    # What external users load: the version as an MLflow model from code.
    _use_store(tiny_settings.mlflow_tracking_uri)
    served = mlflow.pyfunc.load_model(f"models:/{MODEL}@newest")
    served_codes = served.predict(pd.DataFrame({"embedding": list(vectors)}))
    assert np.array_equal(served_codes.to_numpy(), codes)
    decoded = np.stack(served.predict(served_codes, params={"direction": "decode"})["embedding"])
    assert decoded.shape == vectors.shape
    assert np.mean((decoded - vectors) ** 2) < np.mean((vectors - vectors.mean(0)) ** 2)


def _materialised_path(instance, asset: str, partition: str, dataset: str) -> Path:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=20).records
    return next(Path(r.asset_materialization.metadata["path"].value) for r in records
                if dataset in r.asset_materialization.metadata["path"].value)


def test_each_registered_version_is_the_file_its_asset_stored(tiny_run, tiny_settings):
    # The store's files, the event log's materialisations and the registry's versions name one version.
    _, instance, _, months = tiny_run
    dataset = tiny_settings.source().name
    registry = Registry(tiny_settings.mlflow_tracking_uri, tiny_settings.mlflow_artifacts)
    store = AssetStore(tiny_settings.assets_dir(dataset))
    for asset, model, month, method in (("tokenizer", MODEL, months[-1], "rq_kmeans"),
                                        ("aligner_candidate", "semid-synthetic-tiny-aligner", months[-1], None)):
        path = store.path(asset, month, method, ".npz")
        key = dg.MultiPartitionKey({"month": month, "method": method}) if method else month
        # The asset wrote its file itself: the materialisation names it, and the IO manager wrote nothing else.
        assert _materialised_path(instance, asset, str(key), dataset) == path
        assert month in store.months(asset, method=method)
        version = registry.client.get_model_version(model, registry.find_version(model, month).version)
        assert version.tags[CONTENT_TAG] == content_sha256(path)


def test_backfilling_an_older_month_keeps_latest_on_the_newest(tiny_run, tiny_settings):
    _, _, _, months = tiny_run
    registry = Registry(tiny_settings.mlflow_tracking_uri, tiny_settings.mlflow_artifacts)
    older = registry.find_version(MODEL, months[0])
    assert older is not None
    assert registry.move_alias_if_newer(MODEL, older.version, months[0]) is False
    assert registry.client.get_model_version_by_alias(MODEL, "newest").tags["month"] == months[-1]


def test_encode_cli_on_items_the_tokenizer_never_saw(tiny_run, tiny_settings, tmp_path, monkeypatch,
                                                     unseen_items_file):
    _, _, _, months = tiny_run
    # Items of the last month that were not in the first month's catalogue: new uploads for version months[0].
    items_file, unseen_ids = unseen_items_file
    out_file = tmp_path / "sids.parquet"
    monkeypatch.setenv("SEMID_HOME", str(tiny_settings.home))
    version = Registry(tiny_settings.mlflow_tracking_uri, tiny_settings.mlflow_artifacts).find_version(MODEL, months[0])
    assert main(["encode", "--model", f"{MODEL}/{version.version}", "--items", str(items_file),
                 "--out", str(out_file)]) == 0
    encoded = pd.read_parquet(out_file)
    assert list(encoded["item_id"]) == unseen_ids

    # The same items embedded inside the newest catalogue by the aligner serving in the tokenizer's month
    # (the space its training vectors came from) give the same codes.
    store = AssetStore(tiny_settings.assets_dir(tiny_settings.source().name))
    features = store.read_artifact("multimodal_features", month=months[-1])
    vectors = store.read_artifact("aligner", month=months[0]).embed(features)
    rows = pd.Index(features.item_ids).get_indexer(encoded["item_id"])
    model = load_tokenizer(f"models:/{MODEL}/{version.version}", tiny_settings.mlflow_tracking_uri)
    expected = model.encode(vectors[rows])
    assert np.array_equal(encoded[[f"c{i + 1}" for i in range(expected.shape[1])]].to_numpy(), expected)


def test_encode_cli_refuses_wrong_dimension(tiny_run, tiny_settings, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEMID_HOME", str(tiny_settings.home))
    items_file = tmp_path / "bad.parquet"
    vectors = np.ones((3, 7), dtype=np.float32)
    pq.write_table(pa.table({"item_id": ["a", "b", "c"],
                             "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 7)}), items_file)
    assert main(["encode", "--model", MODEL, "--items", str(items_file), "--out", str(tmp_path / "o.parquet")]) == 2
    assert "7-dim" in capsys.readouterr().err


def test_demo_twice_gives_identical_ids(tiny_run, tiny_settings, tmp_path, monkeypatch, capsys):
    _, _, _, months = tiny_run
    other_home = tmp_path / "second-home"
    monkeypatch.setenv("SEMID_HOME", str(other_home))
    monkeypatch.setenv("SEMID_DATASET", "synthetic")
    monkeypatch.setenv("DAGSTER_HOME", str(other_home / "dagster"))
    # The same months (a version anchors to the one before it, which is part of its input);
    # LETTER covers the torch path end to end (BPR embeddings, RQ-VAE training, LETTER losses).
    assert main(["demo", "--size", "tiny", "--months", str(len(months)), "--methods", "rq_kmeans,letter"]) == 0
    printed = capsys.readouterr().out
    assert months[-1] in printed and "rq_kmeans" in printed and "letter" in printed
    for month in months:
        for method in ("rq_kmeans", "letter"):
            again = pd.read_parquet(other_home / "assets" / "synthetic-tiny" / "semantic_ids" / f"month={month}"
                                    / f"method={method}.parquet")
            pd.testing.assert_frame_equal(again, _sids(tiny_settings, month, method))


def test_unknown_dataset_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("SEMID_DATASET", "imagenet")
    assert main(["demo", "--size", "tiny"]) == 2
    assert "imagenet" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["encode", "embed"])
def test_encode_and_embed_refuse_a_file_that_is_not_parquet(command, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEMID_HOME", str(tmp_path / "home"))
    items_file = tmp_path / "items.parquet"
    items_file.write_text("item_id,title\n1,red shoes\n")
    assert main([command, "--model", MODEL, "--items", str(items_file), "--out", str(tmp_path / "o.parquet")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"semid: error: the --items file '{items_file}' is not readable Parquet (")
    assert "write it again with pandas.DataFrame.to_parquet" in err
