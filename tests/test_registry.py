"""Write, then register: idempotent registration, ``newest`` never moving back in time, two
processes registering one partition at once, and models from code that load without semid's help."""

from __future__ import annotations

import io
import itertools
import logging
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from semid_assets.core.storage import AssetStore
from semid_assets.core.tokenizers.rq_kmeans import RQKMeans
from semid_assets.registry import CONTENT_TAG, NEWEST_ALIAS, Registry, load_tokenizer

ROOT = Path(__file__).resolve().parents[1]
DATA = np.random.default_rng(0).normal(size=(400, 8)).astype(np.float32)


def _fit(seed: int = 1) -> RQKMeans:
    return RQKMeans(levels=2, codebook_size=8, seed=seed).fit(DATA)


def _tags(month: str) -> dict[str, str]:
    return {"dataset": "test", "month": month, "method": "rq_kmeans"}


def _register(registry: Registry, path: Path, month: str, name: str):
    return registry.register_tokenizer(path, model_name=name, run_name=f"rq_kmeans-{month}", params={"seed": 1},
                                       metrics={"mse": 0.5}, tags=_tags(month),
                                       tables={"levels": pd.DataFrame({"level": [1]})})


_NUMBERS = itertools.count()


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """One store for the module (creating its database is the slow part); each test its own model."""
    folder = tmp_path_factory.mktemp("mlflow")
    return Registry(f"sqlite:///{folder / 'mlflow.db'}", folder / "artifacts")


@pytest.fixture
def home(tmp_path):
    return tmp_path


@pytest.fixture
def name() -> str:
    return f"semid-test{next(_NUMBERS)}-rq_kmeans"


def _versions(registry: Registry, name: str) -> list:
    return registry.client.search_model_versions(filter_string=f"name = '{name}'")


def test_registering_one_partitions_content_twice_reuses_its_version(registry, home, name):
    store = AssetStore(home / "assets")
    model = _fit()
    first = _register(registry, store.write_artifact("tokenizer", model, month="2025-02", method="rq_kmeans"),
                      "2025-02", name)
    assert not first.reused and first.newest
    # A rerun of the partition: the same model refitted (another fit time), the file rewritten.
    model.fit_info = {**model.fit_info, "seconds": model.fit_info["seconds"] + 9.0}
    again = _register(registry, store.write_artifact("tokenizer", model, month="2025-02", method="rq_kmeans"),
                      "2025-02", name)
    assert again.reused and again.version == first.version and again.run_id == first.run_id
    assert len(_versions(registry, name)) == 1

    # Other content for the same partition is a new version, and newest follows what is stored.
    changed = _register(registry, store.write_artifact("tokenizer", _fit(seed=5), month="2025-02",
                                                       method="rq_kmeans"), "2025-02", name)
    assert not changed.reused and changed.version != first.version and changed.newest
    back = _register(registry, store.write_artifact("tokenizer", model, month="2025-02", method="rq_kmeans"),
                     "2025-02", name)
    assert back.reused and back.version == first.version
    assert registry.version_by_alias(name, NEWEST_ALIAS).version == int(first.version)
    assert registry.find_version(name, "2025-02").version == first.version  # what the stored file holds
    assert len({v.tags[CONTENT_TAG] for v in _versions(registry, name)}) == len(_versions(registry, name)) == 2


def test_newest_never_moves_to_an_older_month(registry, home, name):
    store = AssetStore(home / "assets")
    march = _register(registry, store.write_artifact("tokenizer", _fit(), month="2025-03", method="rq_kmeans"),
                      "2025-03", name)
    february = _register(registry, store.write_artifact("tokenizer", _fit(seed=2), month="2025-02",
                                                        method="rq_kmeans"), "2025-02", name)
    assert march.newest and not february.newest
    assert registry.version_by_alias(name, NEWEST_ALIAS).tags["month"] == "2025-03"
    assert registry.move_alias_if_newer(name, february.version, "2025-02") is False
    assert registry.registered_months(name) == ["2025-02", "2025-03"]


def test_registration_needs_the_durable_file_and_the_partition_tags(registry, home, name):
    with pytest.raises(FileNotFoundError, match="write the asset's file before registering"):
        _register(registry, home / "missing.npz", "2025-01", name)
    path = AssetStore(home / "assets").write_artifact("tokenizer", _fit(), month="2025-01", method="rq_kmeans")
    with pytest.raises(ValueError, match="month"):
        registry.register_tokenizer(path, model_name=name, run_name="x", params={}, metrics={},
                                    tags={"dataset": "test", "method": "rq_kmeans"}, tables={})
    assert not registry.client.search_registered_models(filter_string=f"name = '{name}'")


def test_a_model_created_by_another_process_meanwhile_is_not_an_error(registry, home, name, monkeypatch):
    path = AssetStore(home / "assets").write_artifact("tokenizer", _fit(), month="2025-01", method="rq_kmeans")
    registry.client.create_registered_model(name)
    # The other process created the model between this one's check and its create.
    monkeypatch.setattr(registry.client, "search_registered_models", lambda **kwargs: [])
    assert _register(registry, path, "2025-01", name).version == "1"


def test_two_processes_registering_one_partition_at_once_make_one_version(registry, home, name):
    path = AssetStore(home / "assets").write_artifact("tokenizer", _fit(), month="2025-01", method="rq_kmeans")
    code = textwrap.dedent(f"""
        import pandas as pd
        from pathlib import Path
        from semid_assets.registry import Registry
        registry = Registry({registry.tracking_uri!r}, Path({str(registry.artifact_root)!r}))
        version = registry.register_tokenizer(
            Path({str(path)!r}), model_name={name!r}, run_name="rq_kmeans-2025-01", params={{}}, metrics={{}},
            tags={_tags("2025-01")!r}, tables={{}})
        print(version.version, version.reused)
    """)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    children = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for _ in range(2)]
    outputs = [child.communicate(timeout=600) for child in children]
    assert [child.returncode for child in children] == [0, 0], [err[-2000:] for _, err in outputs]
    results = sorted(out.split()[-2:][1] for out, _ in outputs)
    assert results == ["False", "True"], outputs  # one registered, the other found it
    assert len(_versions(registry, name)) == 1
    assert registry.version_by_alias(name, NEWEST_ALIAS).version == 1


def test_registration_warns_of_no_pickle_and_no_type_hint(registry, home, name):
    path = AssetStore(home / "assets").write_artifact("tokenizer", _fit(), month="2025-01", method="rq_kmeans")
    logged = io.StringIO()
    handler = logging.StreamHandler(logged)
    mlflow_logger = logging.getLogger("mlflow")
    mlflow_logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _register(registry, path, "2025-01", name)
    finally:
        mlflow_logger.removeHandler(handler)
    said = (logged.getvalue() + "\n".join(str(w.message) for w in caught)).lower()
    assert "pickle" not in said and "type hint" not in said and "signature" not in said, said


def test_a_version_loads_through_mlflow_pyfunc_as_a_model_from_code(registry, home, name):
    model = _fit()
    path = AssetStore(home / "assets").write_artifact("tokenizer", model, month="2025-01", method="rq_kmeans")
    _register(registry, path, "2025-01", name)
    location = Path(registry.client.get_model_version_download_uri(name, "1").removeprefix("file://"))
    assert (location / "artifacts" / "tokenizer.npz").is_file() and not list(location.rglob("*.pkl"))

    mlflow.set_tracking_uri(registry.tracking_uri)
    mlflow.set_registry_uri(registry.tracking_uri)
    served = mlflow.pyfunc.load_model(f"models:/{name}@{NEWEST_ALIAS}")
    codes = served.predict(pd.DataFrame({"embedding": list(DATA[:20])}))
    assert np.array_equal(codes.to_numpy(), model.encode(DATA[:20]))
    decoded = np.stack(served.predict(codes, params={"direction": "decode"})["embedding"])
    assert np.allclose(decoded, model.decode(codes.to_numpy()))
    assert np.array_equal(load_tokenizer(f"models:/{name}/1", registry.tracking_uri).codebooks, model.codebooks)


def test_the_store_and_the_registry_import_no_orchestrator():
    code = textwrap.dedent("""
        import sys
        def loaded(package):
            return sorted(m for m in sys.modules if m.split(".")[0] == package)
        import semid_assets.core.storage
        assert not loaded("dagster") and not loaded("mlflow"), (loaded("dagster"), loaded("mlflow"))
        import semid_assets.encode, semid_assets.registry
        assert not loaded("dagster"), loaded("dagster")
    """)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
