"""The Dagster IO manager over the asset store: a failure mid-write leaves the previous version readable."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from semid_assets.core import storage as storage_module
from semid_assets.core.storage import load_artifact, save_artifact
from semid_assets.io_manager import SemidIOManager, partition_path



def _defs(tmp_path, value_fn):
    months = dg.MonthlyPartitionsDefinition(start_date="2025-01", end_date="2025-03", fmt="%Y-%m")

    @dg.asset(partitions_def=months)
    def table() -> pd.DataFrame:
        return value_fn()

    return table, {"io_manager": SemidIOManager(root=str(tmp_path))}


def test_failed_write_keeps_previous_output(tmp_path, monkeypatch):
    version = {"n": 1}
    asset, resources = _defs(tmp_path, lambda: pd.DataFrame({"x": np.arange(version["n"])}))
    assert dg.materialize([asset], partition_key="2025-02", resources=resources).success
    path = tmp_path / "table" / "2025-02.parquet"
    assert len(pd.read_parquet(path)) == 1

    def broken_write(table, where, *args, **kwargs):
        where.write(b"half a parquet file")
        raise OSError("disk full")

    monkeypatch.setattr(storage_module.pq, "write_table", broken_write)
    version["n"] = 5
    result = dg.materialize([asset], partition_key="2025-02", resources=resources, raise_on_error=False)
    assert not result.success
    assert len(pd.read_parquet(path)) == 1, "the previous output must still be readable"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "temporary files are cleaned up"


def test_artifacts_round_trip_without_pickle(tmp_path):
    from semid_assets.core.tokenizers.rq_kmeans import RQKMeans

    rng = np.random.default_rng(0)
    data = rng.normal(size=(400, 8)).astype(np.float32)
    model = RQKMeans(levels=2, codebook_size=8, seed=1).fit(data)
    save_artifact(model, tmp_path / "tok.npz")
    again = load_artifact(tmp_path / "tok.npz")
    assert np.array_equal(again.encode(data), model.encode(data))
    with np.load(tmp_path / "tok.npz", allow_pickle=False) as stored:
        assert all(stored[k].dtype != object for k in stored.files)


def test_untrusted_classes_are_refused(tmp_path):
    from semid_assets.core.artifact import save_npz

    save_npz(tmp_path / "evil.npz", {"x": np.zeros(2)}, {"__class__": "os:system"})
    with pytest.raises(ValueError, match="untrusted"):
        load_artifact(tmp_path / "evil.npz")


def test_partition_paths():
    key = dg.MultiPartitionKey({"month": "2025-03", "method": "rq_kmeans"})
    assert partition_path(key) == "month=2025-03/method=rq_kmeans"
    assert partition_path("2025-03") == "2025-03"


def test_an_asset_that_stored_its_own_file_is_not_written_again(tmp_path, monkeypatch):
    from semid_assets.core.storage import AssetStore
    from semid_assets.core.tokenizers.rq_kmeans import RQKMeans

    parts = dg.MultiPartitionsDefinition({
        "month": dg.MonthlyPartitionsDefinition(start_date="2025-01", end_date="2025-03", fmt="%Y-%m"),
        "method": dg.StaticPartitionsDefinition(["rq_kmeans"])})
    data = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)
    store = AssetStore(tmp_path)
    writes = []
    real_write = AssetStore.write_artifact

    def counted(self, *args, **kwargs):
        writes.append(args[0])
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(AssetStore, "write_artifact", counted)

    @dg.asset(partitions_def=parts)
    def model(context):
        key = context.partition_key.keys_by_dimension
        path = store.write_artifact("model", RQKMeans(levels=1, codebook_size=4, seed=0).fit(data),
                                    month=key["month"], method=key["method"])
        return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(path))})

    @dg.asset(partitions_def=parts)
    def codes(model):
        return pd.DataFrame({"c1": model.encode(data)[:, 0]})

    key = dg.MultiPartitionKey({"month": "2025-02", "method": "rq_kmeans"})
    result = dg.materialize([model, codes], partition_key=str(key),
                            resources={"io_manager": SemidIOManager(root=str(tmp_path))})
    assert result.success and writes == ["model"]
    path = tmp_path / "model" / "month=2025-02" / "method=rq_kmeans.npz"
    assert result.asset_materializations_for_node("model")[0].metadata["path"].value == str(path)
    assert len(pd.read_parquet(tmp_path / "codes" / "month=2025-02" / "method=rq_kmeans.parquet")) == len(data)
