"""Nothing semid loads from the MLflow store can run code: a malicious pickle planted where an
old-style (cloudpickled pyfunc) model sits is never unpickled by `semid encode`, `semid embed`,
warm starts or the loaders the promotion gate and the ranker use."""

from __future__ import annotations

import contextlib
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from semid_assets.cli import main
from semid_assets.core.data.embedding_table import embeddings_from_arrow
from semid_assets.core.storage import AssetStore
from semid_assets.registry import NEWEST_ALIAS, Registry, load_aligner, load_tokenizer
from semid_assets.settings import Settings

DATASET = "synthetic-tiny"
TOKENIZER = f"semid-{DATASET}-rq_kmeans"
ALIGNER = f"semid-{DATASET}-aligner"


class _Payload:
    """Unpickling this creates the marker file: the proof that a pickle was executed."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _plant_old_style_model(model_dir: Path, marker: Path) -> None:
    """Make ``model_dir`` look like a model of the old registry: a cloudpickled ``python_model.pkl``
    that its MLmodel tells pyfunc to unpickle."""
    (model_dir / "python_model.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    flavor = mlmodel["flavors"]["python_function"]
    flavor.pop("model_code_path", None)
    flavor.update(loader_module="mlflow.pyfunc.model", python_model="python_model.pkl")
    (model_dir / "MLmodel").write_text(yaml.safe_dump(mlmodel))


def _model_dir(registry: Registry, name: str, version: str) -> Path:
    return Path(registry.client.get_model_version_download_uri(name, version).removeprefix("file://"))


@pytest.fixture
def planted(tiny_run, tiny_settings, tmp_path, monkeypatch):
    """A home whose registry holds the tiny run's first-month tokenizer and aligner, each version's
    model folder holding a malicious pickle; returns (settings, registry, months, marker)."""
    _, _, _, months = tiny_run
    month = months[0]
    settings = Settings.from_env({"SEMID_HOME": str(tmp_path / "home"), "SEMID_DATASET": "synthetic",
                                  "SEMID_SIZE": "tiny"})
    settings.mlflow_dir.mkdir(parents=True)
    for key, value in {"SEMID_HOME": str(settings.home), "SEMID_DATASET": "synthetic", "SEMID_SIZE": "tiny"}.items():
        monkeypatch.setenv(key, value)
    registry = Registry(settings.mlflow_tracking_uri, settings.mlflow_artifacts)
    stored = AssetStore(tiny_settings.assets_dir(DATASET))
    tags = {"dataset": DATASET, "month": month}
    tokenizer = registry.register_tokenizer(
        stored.path("tokenizer", month, "rq_kmeans", ".npz"), model_name=TOKENIZER, run_name="t", params={},
        metrics={}, tags={**tags, "method": "rq_kmeans"}, tables={})
    aligner = registry.register_aligner(
        stored.path("aligner", month, suffix=".npz"), pd.DataFrame({"step": [0, 1], "loss": [2.0, 1.0]}),
        model_name=ALIGNER, run_name="a", params={}, metrics={}, tags={**tags, "method": "aligner"}, tables={})
    marker = tmp_path / "pickle-was-executed"
    for name, version in ((TOKENIZER, tokenizer.version), (ALIGNER, aligner.version)):
        _plant_old_style_model(_model_dir(registry, name, version), marker)
    return settings, registry, months, marker


def test_no_semid_load_path_executes_a_planted_pickle(planted, tiny_settings, unseen_items_file, tmp_path):
    import mlflow

    from semid_assets.defs.alignment import CANDIDATE, _stored_before

    settings, registry, months, marker = planted
    stored = AssetStore(tiny_settings.assets_dir(DATASET))
    expected = stored.read_artifact("tokenizer", month=months[0], method="rq_kmeans")

    tokenizer = load_tokenizer(f"models:/{TOKENIZER}@{NEWEST_ALIAS}", settings.mlflow_tracking_uri)
    assert np.array_equal(tokenizer.codebooks, expected.codebooks)
    aligner = load_aligner(f"models:/{ALIGNER}/1", settings.mlflow_tracking_uri)
    assert aligner.out_dim == stored.read_artifact("aligner_candidate", month=months[0]).out_dim
    # The aligner's warm start of the next month reads the asset store's plain arrays, never MLflow
    # (the publication stages and the ranker go through load_tokenizer or the store).
    warm = _stored_before(stored, CANDIDATE, months[1])
    assert warm is not None and warm.out_dim == aligner.out_dim

    # `semid encode` with an embedding column, and with item texts (through the registered aligner).
    _, vectors = embeddings_from_arrow(stored.read_table("aligned_embeddings", month=months[0]))
    with_vectors = tmp_path / "vectors.parquet"
    pq.write_table(pa.table({"item_id": [f"i{i}" for i in range(5)],
                             "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors[:5].ravel()),
                                                                            vectors.shape[1])}), with_vectors)
    assert main(["encode", "--model", TOKENIZER, "--items", str(with_vectors), "--out", str(tmp_path / "a.parquet")]) == 0
    codes = pd.read_parquet(tmp_path / "a.parquet")[["c1", "c2", "c3"]].to_numpy()
    assert np.array_equal(codes, expected.encode(vectors[:5]))
    items_file, _ = unseen_items_file
    assert main(["encode", "--model", f"{TOKENIZER}/1", "--items", str(items_file),
                 "--out", str(tmp_path / "b.parquet")]) == 0
    assert main(["embed", "--model", f"{ALIGNER}@{NEWEST_ALIAS}", "--items", str(items_file),
                 "--out", str(tmp_path / "c.parquet")]) == 0
    assert not marker.exists(), "a semid load path unpickled what the MLflow store holds"

    # The planted pickle is live: loading the version the old way (a pyfunc) executes it.
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    with contextlib.suppress(Exception):  # what it unpickles is a file object, not a model
        mlflow.pyfunc.load_model(f"models:/{TOKENIZER}/1")
    assert marker.exists()


def test_an_old_aligner_whose_weights_are_a_pickle_is_refused(planted, tmp_path):
    settings, registry, _, marker = planted
    # An aligner of the old registry kept torch weights (aligner.pt) and no aligner.npz.
    folder = tmp_path / "old-aligner"
    (folder / "artifacts").mkdir(parents=True)
    (folder / "artifacts" / "aligner.pt").write_bytes(pickle.dumps(_Payload(marker)))
    (folder / "MLmodel").write_text(yaml.safe_dump({"flavors": {"python_function": {
        "loader_module": "mlflow.pyfunc.model", "python_model": "python_model.pkl"}}}))
    (folder / "python_model.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    registry.client.create_registered_model("semid-old-aligner")
    registry.client.create_model_version("semid-old-aligner", source=folder.as_uri())
    with pytest.raises(pickle.UnpicklingError):
        load_aligner("models:/semid-old-aligner/1", settings.mlflow_tracking_uri)
    assert not marker.exists()
