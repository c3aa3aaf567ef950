"""Tokenizer and aligner versions in the MLflow model registry (mlflow only; no orchestrator import).

**Write, then register.** An asset first writes its fitted object through
:class:`~semid_assets.core.storage.AssetStore` (fsynced file and folder) and then hands that
durable file to :meth:`Registry.register_tokenizer` / :meth:`Registry.register_aligner`: the
model version and the ``newest`` alias only ever name an output that is already on disk.
Registration is idempotent: a version is identified by its ``dataset``/``month``/``method``
tags and the ``content_sha256`` of the file (:func:`~semid_assets.core.storage.content_sha256`),
so registering one partition's content twice returns the first version (and marks it as the
partition's latest registration, which :meth:`Registry.find_version` returns). ``newest``
never moves to an older month. Registration and alias moves hold one ``fcntl`` lock under the
MLflow folder (``registry.lock``), so a ``semid demo`` and daemon-launched runs on one home
do not interleave. Every run semid opens carries its process (``semid.writer``); a run left
RUNNING by a killed step is marked KILLED by the next registration.

**No pickles.** Each version is one MLflow run (params, metrics, report tables) and one
*model from code* (``semid_assets/pyfunc``): the fitted object as a plain ``.npz`` plus a code
file, so ``mlflow.pyfunc.load_model`` works for external users. semid's own loaders
(:func:`load_tokenizer`, :func:`load_aligner`) never use pyfunc: they resolve the version,
download its ``.npz`` only and build the object with semid's classes (``allow_pickle=False``),
so nothing written to the store can run code in semid.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from semid_assets.core.durable import FileLock, Writer, tag_state, writer_tag
from semid_assets.core.markdown import markdown_table
from semid_assets.core.storage import content_sha256, load_artifact
from semid_assets.pyfunc.models import (
    ALIGNER_ARTIFACT,
    ALIGNER_CODE,
    TOKENIZER_ARTIFACT,
    TOKENIZER_CODE,
)

# MLflow reserves "latest" (models:/NAME/latest is the highest version number, which a
# backfill of an old month would take over); this alias follows the newest *month*.
NEWEST_ALIAS = "newest"
# Moved only by the promotion gate (the blocking check on sid_stability).
CHAMPION_ALIAS = "champion"
IDENTITY_TAGS = ("dataset", "month", "method")
CONTENT_TAG = "content_sha256"
REGISTERED_TAG = "registered_ms"  # when the partition's content was last registered (epoch ms)
LOCK_FILE = "registry.lock"
WRITER_TAG = "semid.writer"  # host-pid of the process that opened a run (core/durable.writer_tag)
_DESCRIPTIONS = {TOKENIZER_ARTIFACT: "semid tokenizer: embeddings ↔ semantic-ID codes",
                 ALIGNER_ARTIFACT: "semid aligner: items → aligned vectors"}
_TOKENIZER_MODULES = "semid_assets.core.tokenizers."


@dataclass(frozen=True)
class RegisteredVersion:
    run_id: str
    experiment_id: str
    model_name: str
    version: str
    reused: bool = False
    """Registration found this partition's content already registered and returned that version."""
    newest: bool = False
    """Registration pointed ``newest`` at this version (False: ``newest`` is on a later month)."""


class Registry:
    """A thin handle on one MLflow tracking store + registry."""

    def __init__(self, tracking_uri: str, artifact_root: str | Path, experiment: str = "semid",
                 lock_path: str | Path | None = None):
        self.tracking_uri = tracking_uri
        self.artifact_root = Path(artifact_root)
        self.experiment = experiment
        self.lock_path = Path(lock_path) if lock_path else self.artifact_root.parent / LOCK_FILE
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def lock(self) -> FileLock:
        """The cross-process lock every registration and alias move holds (re-entrant)."""
        return FileLock.of(self.lock_path)

    def experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        self.artifact_root.mkdir(parents=True, exist_ok=True)
        try:
            return self.client.create_experiment(self.experiment, artifact_location=self.artifact_root.as_uri())
        except MlflowException as exc:  # another process created it first
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return self.client.get_experiment_by_name(self.experiment).experiment_id

    # ------------------------------------------------------------------ registration
    def register_tokenizer(self, artifact: Path, *, model_name: str, run_name: str, params: dict[str, Any],
                           metrics: dict[str, float], tags: dict[str, str],
                           tables: dict[str, pd.DataFrame]) -> RegisteredVersion:
        """Register the tokenizer stored (durably) at ``artifact`` as a version of ``model_name``.

        ``tags`` must hold ``dataset``, ``month`` and ``method``. A new version is one run with
        params, per-level metrics, report tables, the codebooks and the model; the same
        partition's same content returns its existing version (``reused``).
        """
        def log_run() -> None:
            _log_params_metrics(params, metrics)
            _log_tables(tables)
            with tempfile.TemporaryDirectory() as tmp:
                np.save(Path(tmp) / "codebooks.npy", load_artifact(Path(artifact)).codebooks)
                mlflow.log_artifact(str(Path(tmp) / "codebooks.npy"), artifact_path="codebooks")

        return self._register(TOKENIZER_ARTIFACT, Path(artifact), model_name=model_name, run_name=run_name,
                              tags=tags, log_run=log_run)

    def register_aligner(self, artifact: Path, history: pd.DataFrame, *, model_name: str, run_name: str,
                         params: dict[str, Any], metrics: dict[str, float], tags: dict[str, str],
                         tables: dict[str, pd.DataFrame]) -> RegisteredVersion:
        """Register the aligner stored (durably) at ``artifact``: as :meth:`register_tokenizer`, the
        run also holding the per-step loss curves (``history``: a ``step`` column and one per loss)."""
        def log_run() -> None:
            _log_params_metrics(params, metrics)
            _log_curves(self.client, history)
            _log_tables(tables)
            with tempfile.TemporaryDirectory() as tmp:
                history.to_csv(Path(tmp) / "loss_curve.csv", index=False)
                mlflow.log_artifact(str(Path(tmp) / "loss_curve.csv"), artifact_path="reports")

        return self._register(ALIGNER_ARTIFACT, Path(artifact), model_name=model_name, run_name=run_name,
                              tags=tags, log_run=log_run)

    def _register(self, kind: str, artifact: Path, *, model_name: str, run_name: str, tags: dict[str, str],
                  log_run: Callable[[], None]) -> RegisteredVersion:
        missing = [key for key in IDENTITY_TAGS if not tags.get(key)]
        if missing:
            raise ValueError(f"registering {model_name} needs the tag(s) {missing}: they identify the partition")
        if not artifact.is_file():
            raise FileNotFoundError(f"{artifact} does not exist: write the asset's file before registering it")
        tags = {**tags, CONTENT_TAG: content_sha256(artifact)}
        with self.lock():
            self.end_killed_runs()
            self._ensure_model(model_name, _DESCRIPTIONS[kind])
            existing = self._same_content(model_name, tags)
            tags[REGISTERED_TAG] = str(int(time.time() * 1000))
            if existing is not None:
                # The stored file now holds this version's content again: it is the partition's current one.
                self.client.set_model_version_tag(model_name, str(existing.version), REGISTERED_TAG,
                                                  tags[REGISTERED_TAG])
                found = self.client.get_run(existing.run_id)
                version = RegisteredVersion(existing.run_id, found.info.experiment_id, model_name,
                                            str(existing.version), reused=True)
            else:
                version = self._log_version(kind, artifact, model_name=model_name, run_name=run_name, tags=tags,
                                            log_run=log_run)
            moved = self.move_alias_if_newer(model_name, version.version, tags["month"])
        return RegisteredVersion(version.run_id, version.experiment_id, model_name, version.version,
                                 reused=version.reused, newest=moved)

    def _log_version(self, kind: str, artifact: Path, *, model_name: str, run_name: str, tags: dict[str, str],
                     log_run: Callable[[], None]) -> RegisteredVersion:
        _use_store(self.tracking_uri)  # the fluent API (start_run, log_model) reads the process-wide store
        experiment_id = self.experiment_id()
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=_with_writer(tags)) as run:
            log_run()
            with tempfile.TemporaryDirectory() as tmp:
                # The model's copy is named after its kind, whatever the partition's file is called.
                staged = Path(tmp) / f"{kind}.npz"
                shutil.copyfile(artifact, staged)
                info = _log_code_model(kind, staged)
        created = self.client.create_model_version(name=model_name, source=info.model_uri,
                                                   run_id=run.info.run_id, tags=tags)
        return RegisteredVersion(run.info.run_id, experiment_id, model_name, str(created.version))

    def end_killed_runs(self) -> list[str]:
        """Mark KILLED the experiment's runs still RUNNING whose process is gone (a step killed while it
        logged a version or a report); returns their ids. A live writer's runs are left alone."""
        found = self.client.get_experiment_by_name(self.experiment)
        if found is None:
            return []
        running = self.client.search_runs([found.experiment_id], filter_string="attributes.status = 'RUNNING'")
        ended = []
        for run in running:
            if tag_state(run.data.tags.get(WRITER_TAG)) is Writer.DEAD:
                self.client.set_tag(run.info.run_id, "semid.ended", "its process was killed; a later "
                                                                    "registration ended the run")
                self.client.set_terminated(run.info.run_id, status="KILLED")
                ended.append(run.info.run_id)
        return ended

    def _ensure_model(self, name: str, description: str) -> None:
        if self.client.search_registered_models(filter_string=f"name = '{name}'"):
            return
        try:
            self.client.create_registered_model(name, description=description)
        except MlflowException as exc:  # a process outside this lock created it first
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    def _same_content(self, model_name: str, tags: dict[str, str]) -> ModelVersion | None:
        """The first version of ``model_name`` with the same partition tags and content digest."""
        keys = (*IDENTITY_TAGS, CONTENT_TAG)
        same = [v for v in self.client.search_model_versions(filter_string=f"name = '{model_name}'")
                if all((v.tags or {}).get(key) == tags[key] for key in keys)]
        return min(same, key=lambda v: int(v.version)) if same else None

    # ------------------------------------------------------------------ aliases
    def move_alias_if_newer(self, model_name: str, version: str, month: str, alias: str = NEWEST_ALIAS) -> bool:
        """Point ``alias`` at ``version`` unless it already names a version of a later month.

        Backfilling an old month must not pull ``newest`` back in time.
        """
        with self.lock():
            current = self.version_by_alias(model_name, alias)
            if current is not None and (current.tags or {}).get("month", "") > month:
                return False
            self.client.set_registered_model_alias(model_name, alias, version)
            return True

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        with self.lock():
            self.client.set_registered_model_alias(model_name, alias, version)

    # ------------------------------------------------------------------ lookups
    def find_version(self, model_name: str, month: str) -> RegisteredVersion | None:
        """The version of ``model_name`` last registered for ``month`` (the content its stored file holds)."""
        versions = self.client.search_model_versions(filter_string=f"name = '{model_name}'")
        mine = [v for v in versions if (v.tags or {}).get("month") == month]
        if not mine:
            return None
        newest = max(mine, key=lambda v: (int((v.tags or {}).get(REGISTERED_TAG, v.creation_timestamp or 0)),
                                          int(v.version)))
        run = self.client.get_run(newest.run_id)
        return RegisteredVersion(newest.run_id, run.info.experiment_id, model_name, str(newest.version))

    def version_holding(self, model_name: str, month: str, artifact: Path) -> RegisteredVersion | None:
        """The version of ``model_name`` for ``month`` whose content is the stored file ``artifact``'s
        (:func:`~semid_assets.core.storage.content_sha256`), or None when no registration holds it."""
        digest = content_sha256(Path(artifact))
        versions = self.client.search_model_versions(filter_string=f"name = '{model_name}'")
        same = [v for v in versions if (v.tags or {}).get("month") == month and (v.tags or {}).get(CONTENT_TAG) == digest]
        if not same:
            return None
        first = min(same, key=lambda v: int(v.version))
        run = self.client.get_run(first.run_id)
        return RegisteredVersion(first.run_id, run.info.experiment_id, model_name, str(first.version))

    def version_by_alias(self, model_name: str, alias: str) -> ModelVersion | None:
        """The model version ``alias`` points at, or None (also when the model does not exist yet)."""
        try:
            return self.client.get_model_version_by_alias(model_name, alias)
        except MlflowException:
            return None

    def resolve(self, model_uri: str) -> ModelVersion:
        """The version a ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` URI names."""
        return resolve_version(self.client, model_uri)

    def run_metrics(self, run_id: str) -> dict[str, float]:
        return dict(self.client.get_run(run_id).data.metrics)

    def registered_months(self, model_name: str) -> list[str]:
        """The months that have a version of ``model_name``, oldest first."""
        try:
            versions = self.client.search_model_versions(filter_string=f"name = '{model_name}'")
        except MlflowException:
            return []
        return sorted({(v.tags or {}).get("month") for v in versions} - {None, ""})

    # ------------------------------------------------------------------ reports
    def attach_evaluation(self, version: RegisteredVersion, metrics: dict[str, float], files: list[Path],
                          artifact_path: str) -> None:
        """Attach an evaluation of a registered version to the run that trained it: metrics and report files."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        finite = {k: float(v) for k, v in metrics.items() if np.isfinite(v)}
        self.client.log_batch(version.run_id, metrics=[Metric(k, v, now, 0) for k, v in finite.items()])
        for path in files:
            self.client.log_artifact(version.run_id, str(path), artifact_path=artifact_path)

    def log_report(self, *, run_name: str, tags: dict[str, str], tables: dict[str, pd.DataFrame],
                   metrics: dict[str, float] | None = None) -> tuple[str, str]:
        """One run holding report tables (as markdown and CSV artifacts) and metrics; returns
        ``(experiment_id, run_id)``."""
        _use_store(self.tracking_uri)
        experiment_id = self.experiment_id()
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=_with_writer(tags)) as run:
            if metrics:
                mlflow.log_metrics(metrics)
            _log_tables(tables, csv=True)
        return experiment_id, run.info.run_id

    def log_evaluation(self, *, run_name: str, params: dict[str, Any], metrics: dict[str, float],
                       tags: dict[str, str], tables: dict[str, pd.DataFrame],
                       files: dict[str, bytes] | None = None) -> tuple[str, str]:
        """One run for an evaluation (no model): params, metrics, markdown tables under
        ``reports/`` and files (e.g. plots) under ``plots/``. Returns (run id, experiment id)."""
        _use_store(self.tracking_uri)
        experiment_id = self.experiment_id()
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=_with_writer(tags)) as run:
            mlflow.log_params({k: (json.dumps(v) if isinstance(v, (list, tuple, dict)) else v)
                               for k, v in params.items()})
            mlflow.log_metrics(metrics)
            _log_tables(tables)
            with tempfile.TemporaryDirectory() as tmp:
                for name, content in (files or {}).items():
                    (Path(tmp) / name).write_bytes(content)
                    mlflow.log_artifact(str(Path(tmp) / name), artifact_path="plots")
        return run.info.run_id, experiment_id


# ---------------------------------------------------------------------- loading (no pyfunc, no pickle)
def resolve_version(client: MlflowClient, model_uri: str) -> ModelVersion:
    """The version a ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` URI names."""
    spec = model_uri.removeprefix("models:/")
    name, at, alias = spec.partition("@")
    if at:
        return client.get_model_version_by_alias(name, alias)
    name, _, number = spec.rpartition("/")
    if not name or not number.isdigit():
        raise ValueError(f"{model_uri!r} names no version: use models:/NAME@ALIAS or models:/NAME/VERSION")
    return client.get_model_version(name, number)


def load_tokenizer(model_uri: str, tracking_uri: str):
    """The tokenizer of a registered version (``models:/name@newest``, ``models:/name/3``), built by
    semid's own classes from the version's ``tokenizer.npz``: nothing in the store is executed."""
    client = _reading_client(tracking_uri)
    version = resolve_version(client, model_uri)
    with tempfile.TemporaryDirectory() as tmp:
        path = _download_model_file(client, version, f"{TOKENIZER_ARTIFACT}.npz", Path(tmp))
        if path is None:
            raise FileNotFoundError(f"{model_uri} (version {version.version}) holds no {TOKENIZER_ARTIFACT}.npz; "
                                    f"it was not registered by semid")
        tokenizer = load_artifact(path)
    if not type(tokenizer).__module__.startswith(_TOKENIZER_MODULES):
        raise TypeError(f"{model_uri} holds a {type(tokenizer).__qualname__}, not a semid tokenizer")
    return tokenizer


def load_aligner(model_uri: str, tracking_uri: str):
    """The :class:`~semid_assets.core.alignment.aligner.Aligner` of a registered version, from its
    ``aligner.npz`` (or, for a version registered by an earlier semid, its ``aligner.pt`` read with
    ``torch.load(weights_only=True)``): nothing in the store is executed."""
    from semid_assets.core.alignment.aligner import Aligner

    client = _reading_client(tracking_uri)
    version = resolve_version(client, model_uri)
    with tempfile.TemporaryDirectory() as tmp:
        path = _download_model_file(client, version, f"{ALIGNER_ARTIFACT}.npz", Path(tmp))
        if path is not None:
            aligner = load_artifact(path)
        elif (weights := _download_model_file(client, version, "aligner.pt", Path(tmp))) is not None:
            aligner = Aligner.load_torch(weights)
        else:
            raise FileNotFoundError(f"{model_uri} (version {version.version}) holds no {ALIGNER_ARTIFACT}.npz; "
                                    f"it was not registered by semid")
    if not isinstance(aligner, Aligner):
        raise TypeError(f"{model_uri} holds a {type(aligner).__qualname__}, not an Aligner")
    return aligner


def _download_model_file(client: MlflowClient, version: ModelVersion, name: str, into: Path) -> Path | None:
    """One file of the version's model artifacts (``artifacts/<name>``), or None when it has none."""
    from mlflow.artifacts import download_artifacts

    location = client.get_model_version_download_uri(version.name, version.version)
    try:
        return Path(download_artifacts(artifact_uri=f"{location.rstrip('/')}/artifacts/{name}", dst_path=str(into)))
    except (OSError, MlflowException):
        return None


def _reading_client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


# ---------------------------------------------------------------------- run contents
def _with_writer(tags: dict[str, str]) -> dict[str, str]:
    return {**tags, WRITER_TAG: writer_tag()}


def _use_store(tracking_uri: str) -> None:
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)


def _log_params_metrics(params: dict[str, Any], metrics: dict[str, float]) -> None:
    mlflow.log_params({k: (json.dumps(v) if isinstance(v, (list, dict, tuple)) else v) for k, v in params.items()})
    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)})


def _log_tables(tables: dict[str, pd.DataFrame], csv: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, table in tables.items():
            (Path(tmp) / f"{name}.md").write_text(markdown_table(table) + "\n")
            mlflow.log_artifact(str(Path(tmp) / f"{name}.md"), artifact_path="reports")
            if csv:
                table.to_csv(Path(tmp) / f"{name}.csv", index=False)
                mlflow.log_artifact(str(Path(tmp) / f"{name}.csv"), artifact_path="reports")


def _log_curves(client: MlflowClient, history: pd.DataFrame) -> None:
    from mlflow.entities import Metric

    run_id = mlflow.active_run().info.run_id
    stamp = int(time.time() * 1000)
    curves = [Metric(f"train_{column}", float(value), stamp, int(step))
              for column in history.columns if column != "step"
              for step, value in zip(history["step"], history[column])]
    for start in range(0, len(curves), 1000):  # MLflow's per-request limit
        client.log_batch(run_id, metrics=curves[start : start + 1000])


def _log_code_model(kind: str, staged: Path):
    """Log the model from code of ``kind`` with ``staged`` (``<kind>.npz``) as its one artifact."""
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec

    code, params, requirements = ((TOKENIZER_CODE, [ParamSpec("direction", "string", "encode")], _requirements())
                                  if kind == TOKENIZER_ARTIFACT else
                                  (ALIGNER_CODE, [ParamSpec("cache_dir", "string", ""),
                                                  ParamSpec("text_precision", "string", "fp32")],
                                   _aligner_requirements()))
    # The inputs (embeddings, or item tables whose columns depend on the catalogue) have no fixed
    # schema, so the signature declares the params only and no input example is logged.
    signature = ModelSignature(inputs=None, params=ParamSchema(params))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*An input example was not provided.*")
        return mlflow.pyfunc.log_model(name="model", python_model=str(code), artifacts={kind: str(staged)},
                                       signature=signature, pip_requirements=requirements)


def _requirements() -> list[str]:
    import faiss
    import numpy
    import scipy
    import torch

    # torch: RQ-VAE / LETTER versions run their encoder; scipy: balanced RQ-Kmeans.
    return [f"numpy=={numpy.__version__}", f"faiss-cpu=={faiss.__version__}", f"mlflow=={mlflow.__version__}",
            f"pandas=={pd.__version__}", f"torch=={torch.__version__.split('+')[0]}", f"scipy=={scipy.__version__}"]


def _aligner_requirements() -> list[str]:
    import transformers

    return [*_requirements(), f"transformers=={transformers.__version__}"]
