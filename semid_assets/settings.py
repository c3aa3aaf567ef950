"""Where semid keeps its files and which dataset it runs on, read from the environment.

Everything lives under one home directory (``SEMID_HOME``, default ``./.semid``):

    dagster/    Dagster instance storage (runs, event log, schedules)
    assets/     asset outputs, one folder per dataset
    mlflow/     MLflow tracking store (sqlite) and artifacts
    cache/      content-addressed text-token cache shared by all months
    data/       fetched public datasets (MovieLens)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from semid_assets.core.data.sources import DATASETS, CatalogSource, open_source

METHODS = ("rq_kmeans", "rq_kmeans_balanced", "rq_vae", "letter")



def _methods(text: str | None) -> tuple[str, ...]:
    if not text:
        return METHODS
    chosen = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = sorted(set(chosen) - set(METHODS))
    if unknown or not chosen:
        raise ValueError(f"SEMID_METHODS={text!r} names unknown method(s) {unknown}; choose from {', '.join(METHODS)}.")
    return chosen


def _text_precision(text: str | None) -> str:
    from semid_assets.core.features.text_encoder import PRECISIONS

    chosen = (text or "fp32").strip().lower()
    if chosen not in PRECISIONS:
        raise ValueError(f"SEMID_TEXT_PRECISION={text!r} is not a precision the text encoder has; choose "
                         f"{' or '.join(PRECISIONS)}.")
    return chosen


def _text_threads(text: str | None) -> int:
    chosen = (text or "1").strip()
    if not chosen.isdigit() or int(chosen) < 1:
        raise ValueError(f"SEMID_TEXT_THREADS={text!r} is not a count of batches; give a whole number >= 1, "
                         "e.g. the number of cores.")
    return int(chosen)


def _step_processes(text: str | None) -> int:
    chosen = (text or "0").strip()
    if not chosen.isdigit():
        raise ValueError(f"SEMID_STEP_PROCESSES={text!r} is not a count of processes; give 0 (every step of a run "
                         "in the run's own process) or a whole number >= 1 (each step in a process of its own, "
                         "at most that many at once).")
    return int(chosen)


@dataclass(frozen=True)
class Settings:
    home: Path
    dataset: str = "synthetic"
    size: str = "default"
    seed: int = 0
    items_path: str | None = None
    interactions_path: str | None = None
    methods: tuple[str, ...] = METHODS
    mlflow_ui_url: str = "http://127.0.0.1:5000"
    codebook_size_override: int | None = None
    # Production stores (docs/scale-out.md): a database URI for MLflow's tracking and registry
    # store instead of the home's sqlite file, and the Dagster instance file to install.
    mlflow_tracking_uri_override: str | None = None
    dagster_config: str | None = None
    # Where the data-parallel stages run (the compute_engine resource): "local" or "ray", and
    # the Ray cluster to join (none: a private local one).
    engine: str = "local"
    ray_address: str | None = None
    # The text encoder's arithmetic: "fp32" (the reference) or "bf16" (faster where the CPU has it).
    text_precision: str = "fp32"
    # Batches of texts encoded at once, each on one core (any count gives the same vectors).
    text_threads: int = 1
    # 0: a run's steps execute one after another in the run's process; N >= 1: each step in a
    # process of its own (Dagster's multiprocess executor), at most N at once, so a step's memory
    # is handed back when it ends instead of staying with the run for its later steps.
    step_processes: int = 0

    @classmethod
    def from_env(cls, environ: dict | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        dataset = env.get("SEMID_DATASET", "synthetic")
        if dataset not in DATASETS:
            raise ValueError(f"SEMID_DATASET={dataset!r} is not a dataset semid knows; choose one of {', '.join(DATASETS)}.")
        return cls(
            home=Path(env.get("SEMID_HOME", ".semid")).expanduser().resolve(),
            dataset=dataset,
            size=env.get("SEMID_SIZE", "default").strip(),
            seed=int(env.get("SEMID_SEED", "0")),
            items_path=env.get("SEMID_ITEMS"),
            interactions_path=env.get("SEMID_INTERACTIONS"),
            mlflow_ui_url=env.get("SEMID_MLFLOW_UI", "http://127.0.0.1:5000"),
            codebook_size_override=int(env["SEMID_CODEBOOK_SIZE"]) if env.get("SEMID_CODEBOOK_SIZE") else None,
            methods=_methods(env.get("SEMID_METHODS")),
            mlflow_tracking_uri_override=env.get("SEMID_MLFLOW_TRACKING_URI") or None,
            dagster_config=env.get("SEMID_DAGSTER_CONFIG") or None,
            engine=env.get("SEMID_ENGINE", "local").strip() or "local",
            ray_address=env.get("SEMID_RAY_ADDRESS") or None,
            text_precision=_text_precision(env.get("SEMID_TEXT_PRECISION")),
            text_threads=_text_threads(env.get("SEMID_TEXT_THREADS")),
            step_processes=_step_processes(env.get("SEMID_STEP_PROCESSES")),
        )

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def mlflow_tracking_uri(self) -> str:
        """``SEMID_MLFLOW_TRACKING_URI`` (e.g. ``postgresql://…``) if set, else the home's sqlite file."""
        return self.mlflow_tracking_uri_override or f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.mlflow_dir / "artifacts"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def source(self) -> CatalogSource:
        return open_source(
            self.dataset, size=self.size, seed=self.seed, items_path=self.items_path,
            interactions_path=self.interactions_path, data_root=self.data_dir,
        )

    def assets_dir(self, source_name: str) -> Path:
        return self.home / "assets" / source_name
