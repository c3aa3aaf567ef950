"""The fault matrix: a `semid demo`-like process (tests/fault_driver.py) SIGKILLed at each stage of one
month × one method, then run again from failure.

The tiny data's second month (its first month is built and published beforehand, so there are earlier
outputs to keep and aliases to keep right). After each kill: the earlier month's IDs are unchanged,
every stored file is readable and ``newest`` names a version whose file is stored. After the rerun:
SIDs identical to an uninterrupted run, no temporary file or orphan cache shard left, no MLflow run
left running, and the MLflow aliases agree with the generation archive.

The kill points are calls inside this process's own steps (the driver patches its own process, never
the library): the same point in every run. Each run is a process forked by one driver server that
imported the libraries once. One home path serves every stage, restored from a snapshot before each
(its databases hold absolute paths), so the earlier month and the month's monthly stages are built
once per module.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_concurrent_publication import MODEL, check_registry_agrees_with_the_archive

from semid_assets.core.durable import is_temporary
from semid_assets.core.features.token_store import TokenStore
from semid_assets.core.lifecycle.versions import NEWEST_ALIAS
from semid_assets.core.storage import AssetStore, content_sha256
from semid_assets.defs.automation import MONTHLY_JOB, TOKENIZER_JOB
from semid_assets.registry import CONTENT_TAG, Registry
from semid_assets.settings import Settings

pytestmark = pytest.mark.heavy

ROOT = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).with_name("fault_driver.py")
METHOD = "rq_kmeans"
EARLIER, MONTH = "2025-01", "2025-02"  # the second month trains an aligner and has texts to encode


ENCODE_CHUNK = 32  # texts per text-cache shard in the features row: the month's new texts fill three


@dataclass(frozen=True)
class Fault:
    """Where the process is killed, and what then holds besides every row's checks;
    ``after_monthly``: the month's monthly stages are built already (only the tokenizer job runs)."""

    stage: str
    kill: list[str]
    after_kill: Callable[[Home], None]
    after_monthly: bool = False


def _nothing_of_the_month_stored(home: Home) -> None:
    assert not home.store.exists("raw_items", month=MONTH) and not home.store.exists("raw_interactions", month=MONTH)


def _first_shard_kept(home: Home) -> None:
    assert _cached_texts(home) == home.texts_before + ENCODE_CHUNK, "the first shard of the month's texts is kept"


def _aligner_not_stored(home: Home) -> None:
    assert not home.store.exists("aligner_candidate", month=MONTH)


def _run_left_open(home: Home) -> None:
    assert _running_runs(home), "the killed registration leaves its MLflow run RUNNING"
    assert _newest_month(home) == EARLIER


def _newest_not_moved(home: Home) -> None:
    assert _newest_month(home) == EARLIER and _registry(home).find_version(MODEL, MONTH) is not None


def _no_table_yet(home: Home) -> None:
    assert not home.store.exists("semantic_ids", month=MONTH, method=METHOD)
    assert _leftovers(home), "the killed write leaves its temporary file for the next run's sweep"


FAULTS = [
    # The month's first step, raw_items: its table is read from the source, not stored yet.
    Fault("ingest", ["--kill-at", "semid_assets.defs.ingest:text_columns_of"], _nothing_of_the_month_stored),
    # The first shard of the month's new texts is stored, the second is being encoded.
    Fault("features mid-encode", ["--kill-at", "semid_assets.core.features.text_encoder:TextEncoder.encode@2",
                                  "--encode-chunk", str(ENCODE_CHUNK)], _first_shard_kept),
    # The aligner's first optimiser step (the month trains one step of 256 pairs): losses computed, no update.
    Fault("aligner training", ["--kill-at", "torch.optim.adamw:AdamW.step"], _aligner_not_stored),
    # The tokenizer's file is stored; its MLflow run is open, the model being logged, no version yet.
    Fault("tokenizer registration, run open", ["--kill-at", "semid_assets.registry:_log_code_model"],
          _run_left_open, after_monthly=True),
    # The version is created; `newest` not moved yet.
    Fault("tokenizer registration, alias not moved",
          ["--kill-at", "semid_assets.registry:Registry.move_alias_if_newer"], _newest_not_moved, after_monthly=True),
    # The table's temporary file is complete and fsynced; the rename that publishes it is next.
    Fault("semantic_ids write", ["--kill-at-rename", "semantic_ids"], _no_table_yet, after_monthly=True),
]


@dataclass(frozen=True)
class Ran:
    returncode: int
    stderr: str


class Driver:
    """tests/fault_driver.py --serve: runs the driver's arguments in a process of their own."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.logs, self.runs = logs, 0
        self.server = subprocess.Popen([sys.executable, str(DRIVER), "--serve"], env=env, text=True,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def run(self, argv: list[str]) -> Ran:
        self.runs += 1
        out, err = self.logs / f"run{self.runs}.out", self.logs / f"run{self.runs}.err"
        self.server.stdin.write(json.dumps({"argv": argv, "stdout": str(out), "stderr": str(err)}) + "\n")
        self.server.stdin.flush()
        answer = self.server.stdout.readline()
        assert answer, f"the driver server ended with {self.server.wait()}"
        return Ran(json.loads(answer)["returncode"], err.read_text())

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait(timeout=60)


@dataclass
class Home:
    settings: Settings
    driver: Driver
    built: Path  # the earlier month built and published
    monthly: Path  # ... and the month's monthly stages
    reference: pd.DataFrame  # the month's IDs from an uninterrupted run
    texts_before: int = 0  # texts in the text cache before the month
    texts_after: int = 0  # ... and after it

    @property
    def store(self) -> AssetStore:
        return AssetStore(self.settings.assets_dir("synthetic-tiny"))

    def restore(self, snapshot: Path) -> None:
        shutil.rmtree(self.settings.home)
        shutil.copytree(snapshot, self.settings.home, symlinks=True)

    def snapshot(self, to: Path) -> Path:
        shutil.copytree(self.settings.home, to, symlinks=True)
        return to

    def drive(self, *args: str, month: str = MONTH) -> Ran:
        return self.driver.run(["--month", month, "--method", METHOD, *args])


def _driven(home: Home, *args: str, month: str = MONTH) -> None:
    done = home.drive(*args, month=month)
    assert done.returncode == 0, done.stderr[-4000:]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Home:
    """The earlier month built and published, then the month built without interruption (the reference);
    snapshots of the home before the month and after its monthly stages."""
    from semid_assets.home import prepare_home

    root = tmp_path_factory.mktemp("fault-matrix")
    settings = Settings.from_env({"SEMID_HOME": str(root / "home"), "SEMID_SIZE": "tiny",
                                  "SEMID_DATASET": "synthetic"})
    env = {**os.environ, "SEMID_HOME": str(settings.home), "DAGSTER_HOME": str(settings.dagster_home),
           "SEMID_SIZE": "tiny", "SEMID_DATASET": "synthetic", "SEMID_METHODS": METHOD,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with pytest.MonkeyPatch.context() as patch:
        # prepare_home points this process's DAGSTER_HOME and SEMID_HOME at the home: put them back after.
        patch.setenv("SEMID_HOME", str(settings.home))
        patch.setenv("DAGSTER_HOME", str(settings.dagster_home))
        # Every MLflow query of this process opens the sqlite file anew: the home is replaced between stages.
        patch.setenv("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "NullPool")
        prepare_home(settings)
        (root / "logs").mkdir()
        home = Home(settings, Driver(env, root / "logs"), Path(), Path(), pd.DataFrame())
        try:
            _driven(home, month=EARLIER)
            home.built, home.texts_before = home.snapshot(root / "built"), _cached_texts(home)
            _driven(home, "--jobs", MONTHLY_JOB)
            home.monthly = home.snapshot(root / "monthly")
            _driven(home, "--jobs", TOKENIZER_JOB)
            home.reference, home.texts_after = _ids(home, MONTH), _cached_texts(home)
            check_registry_agrees_with_the_archive(settings, MONTH)
            yield home
        finally:
            home.driver.close()


def _ids(home: Home, month: str) -> pd.DataFrame:
    return home.store.read_table("semantic_ids", month=month, method=METHOD).to_pandas()


def _read_everything(home: Home) -> int:
    """Read every stored table and array (temporary files aside); returns how many files."""
    count = 0
    for path in sorted(home.store.root.rglob("*")):
        if not path.is_file() or is_temporary(path):
            continue
        if path.suffix == ".parquet":
            pq.read_table(path)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as arrays:
                [arrays[name] for name in arrays.files]
        count += 1
    return count


def _leftovers(home: Home) -> list[Path]:
    """Temporary files in the store and the text cache, and cache shards without their index."""
    temporaries = [p for root in (home.store.root, home.settings.cache_dir) for p in root.rglob("*")
                   if p.is_file() and is_temporary(p)]
    text = home.settings.cache_dir / "text"
    orphans = [p for d in (text.iterdir() if text.is_dir() else []) if d.is_dir()
               for p in TokenStore(text, d.name).orphans()]
    return temporaries + orphans


def _registry(home: Home) -> Registry:
    return Registry(home.settings.mlflow_tracking_uri, home.settings.mlflow_artifacts)


def _check_newest_is_stored(home: Home) -> None:
    """``newest`` names a version whose month's tokenizer file is stored with that version's content."""
    newest = _registry(home).version_by_alias(MODEL, NEWEST_ALIAS)
    path = home.store.path("tokenizer", newest.tags["month"], METHOD, suffix=".npz")
    assert path.is_file() and content_sha256(path) == newest.tags[CONTENT_TAG]


def _running_runs(home: Home) -> list[str]:
    registry = _registry(home)
    experiment = registry.client.get_experiment_by_name(registry.experiment)
    runs = registry.client.search_runs([experiment.experiment_id], filter_string="attributes.status = 'RUNNING'")
    return [run.info.run_id for run in runs]


def _cached_texts(home: Home) -> int:
    """Rows of the text cache's shard indexes: a text encoded twice would count twice."""
    return sum(pq.read_metadata(p).num_rows for p in (home.settings.cache_dir / "text").rglob("shard-*.index.parquet"))


def _newest_month(home: Home) -> str:
    return _registry(home).version_by_alias(MODEL, NEWEST_ALIAS).tags["month"]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.stage for f in FAULTS])
def test_a_killed_stage_loses_nothing_and_its_rerun_gives_the_same_ids(home, fault):
    home.restore(home.monthly if fault.after_monthly else home.built)
    jobs = ["--jobs", TOKENIZER_JOB] if fault.after_monthly else []
    earlier = _ids(home, EARLIER)

    started = time.perf_counter()
    killed = home.drive(*jobs, *fault.kill)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-4000:]
    assert "killing this process" in killed.stderr
    # Previous outputs: the earlier month's IDs as they were; every stored file readable; `newest` stored.
    assert _ids(home, EARLIER).equals(earlier)
    assert _read_everything(home) > 0
    _check_newest_is_stored(home)
    fault.after_kill(home)

    rerun = home.drive(*jobs, "--rerun")
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    print(f"\n{fault.stage}: kill + rerun {time.perf_counter() - started:.0f} s")
    assert _ids(home, MONTH).equals(home.reference), "the rerun's SIDs differ from the uninterrupted run's"
    assert _ids(home, EARLIER).equals(earlier)
    assert _leftovers(home) == []
    assert _cached_texts(home) == home.texts_after, "a text was encoded twice"
    assert _running_runs(home) == []
    check_registry_agrees_with_the_archive(home.settings, MONTH)
