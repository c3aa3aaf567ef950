"""Tokenizer and aligner versions in the MLflow model registry (mlflow only; no orchestrator import).

Each fitted tokenizer is one MLflow run (params, per-level metrics, codebooks) and one
registered model version whose pyfunc encodes embeddings to codes and decodes codes
back to vectors — so a version in the registry can tokenize items it never saw.

Each trained aligner is one MLflow run (config, loss curves per step, the alignment
report, the ``torch.save`` weights) and one registered model version whose pyfunc embeds
items it never saw (:class:`AlignerModel`).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from semid_assets.core.markdown import markdown_table
from semid_assets.io_manager import load_artifact, save_artifact

TOKENIZER_ARTIFACT = "tokenizer"
# MLflow reserves "latest" (models:/NAME/latest is the highest version number, which a
# backfill of an old month would take over); this alias follows the newest *month*.
NEWEST_ALIAS = "newest"
# Moved only by the promotion gate (the blocking check on sid_stability).
CHAMPION_ALIAS = "champion"


class TokenizerModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: ``predict`` encodes embeddings, ``params={"direction": "decode"}`` decodes codes.

    Input for encoding: a 2-D array, or a DataFrame with an ``embedding`` column (one vector
    per row) or with only numeric columns. Output: a DataFrame ``c1 … cL``. Input for
    decoding: a DataFrame or array of codes; output: a DataFrame with an ``embedding`` column.
    """

    def load_context(self, context) -> None:
        self.tokenizer = load_artifact(Path(context.artifacts[TOKENIZER_ARTIFACT]))

    def encode(self, embeddings: np.ndarray) -> np.ndarray:
        return self.tokenizer.encode(embeddings)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return self.tokenizer.decode(codes)

    def predict(self, context, model_input, params: dict[str, Any] | None = None):
        direction = (params or {}).get("direction", "encode")
        if direction == "decode":
            codes = np.asarray(model_input, dtype=np.int64)
            vectors = self.decode(codes)
            return pd.DataFrame({"embedding": list(vectors)})
        if direction != "encode":
            raise ValueError(f"direction must be 'encode' or 'decode', not {direction!r}")
        codes = self.encode(embedding_matrix(model_input))
        return pd.DataFrame(codes, columns=[f"c{i + 1}" for i in range(codes.shape[1])])


def embedding_matrix(model_input) -> np.ndarray:
    if isinstance(model_input, pd.DataFrame):
        if "embedding" in model_input.columns:
            return np.stack(model_input["embedding"].to_numpy()).astype(np.float32)
        return model_input.to_numpy(dtype=np.float32)
    return np.asarray(model_input, dtype=np.float32)


@dataclass(frozen=True)
class RegisteredVersion:
    run_id: str
    experiment_id: str
    model_name: str
    version: str


class Registry:
    """A thin handle on one MLflow tracking store + registry."""

    def __init__(self, tracking_uri: str, artifact_root: str | Path, experiment: str = "semid"):
        self.tracking_uri = tracking_uri
        self.artifact_root = Path(artifact_root)
        self.experiment = experiment
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        self.artifact_root.mkdir(parents=True, exist_ok=True)
        return self.client.create_experiment(self.experiment, artifact_location=self.artifact_root.as_uri())

    def log_tokenizer(self, tokenizer, *, model_name: str, run_name: str, params: dict[str, Any],
                      metrics: dict[str, float], tags: dict[str, str], tables: dict[str, pd.DataFrame]) -> RegisteredVersion:
        """One run with params, metrics, report tables and the tokenizer; registered as a model version."""
        # The fluent API (start_run, log_model) reads the process-wide store.
        _use_store(self.tracking_uri)
        experiment_id = self.experiment_id()
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
            mlflow.log_params({k: (json.dumps(v) if isinstance(v, (list, tuple, dict)) else v) for k, v in params.items()})
            mlflow.log_metrics(metrics)
            with tempfile.TemporaryDirectory() as tmp:
                artifact = Path(tmp) / "tokenizer.npz"
                save_artifact(tokenizer, artifact)
                for name, table in tables.items():
                    (Path(tmp) / f"{name}.md").write_text(markdown_table(table) + "\n")
                    mlflow.log_artifact(str(Path(tmp) / f"{name}.md"), artifact_path="reports")
                np.save(Path(tmp) / "codebooks.npy", tokenizer.codebooks)
                mlflow.log_artifact(str(Path(tmp) / "codebooks.npy"), artifact_path="codebooks")
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=TokenizerModel(),
                    artifacts={TOKENIZER_ARTIFACT: str(artifact)},
                    pip_requirements=_requirements(),
                )
        version = self.client.create_model_version(
            name=self._ensure_model(model_name), source=info.model_uri, run_id=run.info.run_id, tags=tags,
        )
        return RegisteredVersion(run.info.run_id, experiment_id, model_name, str(version.version))

    def log_report(self, *, run_name: str, tags: dict[str, str], tables: dict[str, pd.DataFrame],
                   metrics: dict[str, float] | None = None) -> tuple[str, str]:
        """One run holding report tables (as markdown and CSV artifacts) and metrics; returns
        ``(experiment_id, run_id)``."""
        _use_store(self.tracking_uri)
        experiment_id = self.experiment_id()
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
            if metrics:
                mlflow.log_metrics(metrics)
            with tempfile.TemporaryDirectory() as tmp:
                for name, table in tables.items():
                    (Path(tmp) / f"{name}.md").write_text(markdown_table(table) + "\n")
                    table.to_csv(Path(tmp) / f"{name}.csv", index=False)
                    mlflow.log_artifact(str(Path(tmp) / f"{name}.md"), artifact_path="reports")
                    mlflow.log_artifact(str(Path(tmp) / f"{name}.csv"), artifact_path="reports")
        return experiment_id, run.info.run_id

    def _ensure_model(self, name: str) -> str:
        if not self.client.search_registered_models(filter_string=f"name = '{name}'"):
            self.client.create_registered_model(name, description="semid tokenizer: embeddings ↔ semantic-ID codes")
        return name

    def move_alias_if_newer(self, model_name: str, version: str, month: str, alias: str = NEWEST_ALIAS) -> bool:
        """Point ``alias`` at ``version`` unless it already names a version of a later month.

        Backfilling an old month must not pull ``newest`` back in time.
        """
        try:
            current = self.client.get_model_version_by_alias(model_name, alias)
            current_month = (current.tags or {}).get("month", "")
        except mlflow.exceptions.MlflowException:
            current, current_month = None, ""
        if current is not None and current_month > month:
            return False
        self.client.set_registered_model_alias(model_name, alias, version)
        return True

    def find_version(self, model_name: str, month: str) -> RegisteredVersion | None:
        """The newest version of ``model_name`` registered for ``month``."""
        versions = self.client.search_model_versions(filter_string=f"name = '{model_name}'")
        mine = [v for v in versions if (v.tags or {}).get("month") == month]
        if not mine:
            return None
        newest = max(mine, key=lambda v: int(v.version))
        run = self.client.get_run(newest.run_id)
        return RegisteredVersion(newest.run_id, run.info.experiment_id, model_name, str(newest.version))

    def version_by_alias(self, model_name: str, alias: str):
        """The model version ``alias`` points at, or None (also when the model does not exist yet)."""
        try:
            return self.client.get_model_version_by_alias(model_name, alias)
        except mlflow.exceptions.MlflowException:
            return None

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(model_name, alias, version)

    def run_metrics(self, run_id: str) -> dict[str, float]:
        return dict(self.client.get_run(run_id).data.metrics)

    def attach_evaluation(self, version: RegisteredVersion, metrics: dict[str, float], files: list[Path],
                       artifact_path: str) -> None:
        """Attach an evaluation of a registered version to the run that trained it: metrics and report files."""
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        finite = {k: float(v) for k, v in metrics.items() if np.isfinite(v)}
        self.client.log_batch(version.run_id, metrics=[Metric(k, v, now, 0) for k, v in finite.items()])
        for path in files:
            self.client.log_artifact(version.run_id, str(path), artifact_path=artifact_path)

    def registered_months(self, model_name: str) -> list[str]:
        """The months that have a version of ``model_name``, oldest first."""
        try:
            versions = self.client.search_model_versions(filter_string=f"name = '{model_name}'")
        except mlflow.exceptions.MlflowException:
            return []
        return sorted({(v.tags or {}).get("month") for v in versions} - {None, ""})

    def log_evaluation(self, *, run_name: str, params: dict[str, Any], metrics: dict[str, float],
                       tags: dict[str, str], tables: dict[str, pd.DataFrame],
                       files: dict[str, bytes] | None = None) -> tuple[str, str]:
        """One run for an evaluation (no model): params, metrics, markdown tables under
        ``reports/`` and files (e.g. plots) under ``plots/``. Returns (run id, experiment id)."""
        _use_store(self.tracking_uri)
        experiment_id = self.experiment_id()
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
            mlflow.log_params({k: (json.dumps(v) if isinstance(v, (list, tuple, dict)) else v)
                               for k, v in params.items()})
            mlflow.log_metrics(metrics)
            with tempfile.TemporaryDirectory() as tmp:
                for name, table in tables.items():
                    (Path(tmp) / f"{name}.md").write_text(markdown_table(table) + "\n")
                    mlflow.log_artifact(str(Path(tmp) / f"{name}.md"), artifact_path="reports")
                for name, content in (files or {}).items():
                    (Path(tmp) / name).write_bytes(content)
                    mlflow.log_artifact(str(Path(tmp) / name), artifact_path="plots")
        return run.info.run_id, experiment_id


def load_tokenizer(model_uri: str, tracking_uri: str):
    """The tokenizer behind a registry URI such as ``models:/name@newest`` or ``models:/name/3``."""
    _use_store(tracking_uri)
    return mlflow.pyfunc.load_model(model_uri).unwrap_python_model()


def _use_store(tracking_uri: str) -> None:
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)


def _requirements() -> list[str]:
    import faiss
    import numpy
    import scipy
    import torch

    # torch: RQ-VAE / LETTER versions run their encoder; scipy: balanced RQ-Kmeans.
    return [f"numpy=={numpy.__version__}", f"faiss-cpu=={faiss.__version__}", f"mlflow=={mlflow.__version__}",
            f"pandas=={pd.__version__}", f"torch=={torch.__version__.split('+')[0]}", f"scipy=={scipy.__version__}"]


# ---------------------------------------------------------------------- aligners
ALIGNER_WEIGHTS = "aligner_weights"


class AlignerModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper of a trained QFormer aligner: items in, aligned vectors out.

    The weights are the run's ``aligner.pt`` (``torch.save``), read back with
    ``torch.load(weights_only=True)``. ``predict`` takes an item table (``item_id`` plus the
    catalogue's text and ``emb_*`` columns, as a DataFrame or Arrow table) and returns a
    DataFrame ``item_id, embedding``. Texts are encoded by all-MiniLM-L6-v2 into a token
    cache: ``params={"cache_dir": ...}`` names one (``semid embed`` passes
    ``$SEMID_HOME/cache/text``), else a temporary one is used.
    """

    def load_context(self, context) -> None:
        from semid_assets.core.alignment.aligner import Aligner

        self.aligner = Aligner.load_torch(Path(context.artifacts[ALIGNER_WEIGHTS]))

    def predict(self, context, model_input, params: dict[str, Any] | None = None):
        import pyarrow as pa

        from semid_assets.core.features.multimodal import build_multimodal_features
        from semid_assets.core.features.text_encoder import TextEncoder
        from semid_assets.core.features.token_store import TokenStore

        items = model_input if isinstance(model_input, pa.Table) else pa.Table.from_pandas(
            model_input, preserve_index=False)
        encoder = TextEncoder()
        cache_dir = (params or {}).get("cache_dir")
        with tempfile.TemporaryDirectory() as tmp:
            store = TokenStore(cache_dir or tmp, encoder.name)
            features, _ = build_multimodal_features(items, encoder, store)
            vectors = self.aligner.embed(features, store=store)
        return pd.DataFrame({"item_id": features.item_ids, "embedding": list(vectors)})


def _log_aligner_run(aligner, history: pd.DataFrame, *, params: dict[str, Any], metrics: dict[str, float],
                     tables: dict[str, pd.DataFrame], client: MlflowClient):
    from mlflow.entities import Metric

    mlflow.log_params({k: (json.dumps(v) if isinstance(v, (list, dict, tuple)) else v) for k, v in params.items()})
    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)})
    run_id = mlflow.active_run().info.run_id
    stamp = int(time.time() * 1000)
    curves = [Metric(f"train_{column}", float(value), stamp, int(step))
              for column in history.columns if column != "step"
              for step, value in zip(history["step"], history[column])]
    for start in range(0, len(curves), 1000):  # MLflow's per-request limit
        client.log_batch(run_id, metrics=curves[start : start + 1000])
    with tempfile.TemporaryDirectory() as tmp:
        for name, table in tables.items():
            (Path(tmp) / f"{name}.md").write_text(markdown_table(table) + "\n")
            mlflow.log_artifact(str(Path(tmp) / f"{name}.md"), artifact_path="reports")
        history.to_csv(Path(tmp) / "loss_curve.csv", index=False)
        mlflow.log_artifact(str(Path(tmp) / "loss_curve.csv"), artifact_path="reports")
        weights = Path(tmp) / "aligner.pt"
        aligner.save_torch(weights)
        return mlflow.pyfunc.log_model(name="model", python_model=AlignerModel(),
                                       artifacts={ALIGNER_WEIGHTS: str(weights)},
                                       pip_requirements=_aligner_requirements())


def log_aligner(registry: Registry, aligner, history: pd.DataFrame, *, model_name: str, run_name: str,
                params: dict[str, Any], metrics: dict[str, float], tags: dict[str, str],
                tables: dict[str, pd.DataFrame]) -> RegisteredVersion:
    """One run (config, final metrics, per-step loss curves, report tables, the weights); one model version."""
    _use_store(registry.tracking_uri)
    experiment_id = registry.experiment_id()
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
        info = _log_aligner_run(aligner, history, params=params, metrics=metrics, tables=tables,
                                client=registry.client)
    if not registry.client.search_registered_models(filter_string=f"name = '{model_name}'"):
        registry.client.create_registered_model(model_name, description="semid aligner: items → aligned vectors")
    version = registry.client.create_model_version(name=model_name, source=info.model_uri,
                                                   run_id=run.info.run_id, tags=tags)
    return RegisteredVersion(run.info.run_id, experiment_id, model_name, str(version.version))


def load_aligner(model_uri: str, tracking_uri: str):
    """The :class:`~semid_assets.core.alignment.aligner.Aligner` behind a registry URI (weights via ``weights_only=True``)."""
    _use_store(tracking_uri)
    return mlflow.pyfunc.load_model(model_uri).unwrap_python_model().aligner


def _aligner_requirements() -> list[str]:
    import transformers

    return [*_requirements(), f"transformers=={transformers.__version__}"]
