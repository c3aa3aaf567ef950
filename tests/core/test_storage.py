"""The asset store: its layout, durable writes, months listing, and the sweep of dead writers' leftovers."""

from __future__ import annotations


import dataclasses
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from semid_assets.core import durable
from semid_assets.core.durable import (
    UNTAGGED_GRACE_SECONDS,
    FileLock,
    atomic_write,
    writer_tag,
)
from semid_assets.core.storage import (
    AssetStore,
    content_sha256,
    load_artifact,
    save_artifact,
)
from semid_assets.core.tokenizers.rq_kmeans import RQKMeans

ROOT = Path(__file__).resolve().parents[2]


def _child(code: str) -> subprocess.Popen:
    """A Python process running ``code`` with this checkout first on its path."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.PIPE,
                            text=True)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture(scope="module")
def tokenizer():
    data = np.random.default_rng(0).normal(size=(400, 8)).astype(np.float32)
    return RQKMeans(levels=2, codebook_size=8, seed=1).fit(data)


def test_the_layout_is_the_one_assets_have_always_used(tmp_path):
    store = AssetStore(tmp_path)
    assert store.path("aligner", "2025-10", suffix=".npz") == tmp_path / "aligner" / "2025-10.npz"
    assert store.path("semantic_ids", "2025-10", "rq_kmeans") == \
        tmp_path / "semantic_ids" / "month=2025-10" / "method=rq_kmeans.parquet"
    assert store.path("report") == tmp_path / "report" / "all.parquet"
    with pytest.raises(ValueError, match="needs a month"):
        store.path("tokenizer", method="rq_kmeans")


def test_tables_are_written_in_row_groups_with_vectors_outside_any_dictionary(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from semid_assets.core import storage
    from semid_assets.core.data.embedding_table import embeddings_from_arrow, embeddings_to_arrow, gather_vectors

    monkeypatch.setattr(storage, "ROW_GROUP_ROWS", 4)
    vectors = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)
    table = embeddings_to_arrow(np.array([f"i{i}" for i in range(10)]), vectors)
    path = AssetStore(tmp_path).write_table("aligned_embeddings", table, month="2025-01")
    metadata = pq.ParquetFile(path).metadata
    assert [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)] == [4, 4, 2]
    columns = {metadata.row_group(0).column(c).path_in_schema: metadata.row_group(0).column(c)
               for c in range(metadata.num_columns)}
    assert columns["item_id"].has_dictionary_page and not columns["embedding.list.element"].has_dictionary_page
    ids, back = embeddings_from_arrow(pq.read_table(path))
    assert list(ids) == list(table.column("item_id").to_pylist()) and np.array_equal(back, vectors)
    # Read back a row group at a time: what a reader of a large table holds at once.
    batches = list(AssetStore(tmp_path).iter_batches("aligned_embeddings", month="2025-01"))
    assert [b.num_rows for b in batches] == [4, 4, 2]
    assert np.array_equal(gather_vectors(iter(batches), ids[::-1]), vectors[::-1])


def test_vector_columns_are_read_into_one_buffer_with_the_files_values(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from semid_assets.core import storage
    from semid_assets.core.data.embedding_table import embeddings_from_arrow, embeddings_to_arrow

    monkeypatch.setattr(storage, "ROW_GROUP_ROWS", 64)
    vectors = np.random.default_rng(2).standard_normal((300, 5)).astype(np.float32)
    table = embeddings_to_arrow(np.array([f"i{i}" for i in range(300)]), vectors).append_column(
        "rank", pa.array(np.arange(300)))
    path = AssetStore(tmp_path).write_table("aligned_embeddings", table, month="2025-01")
    read = AssetStore(tmp_path).read_table("aligned_embeddings", month="2025-01")
    assert pq.ParquetFile(path).num_row_groups == 5 and read.column("embedding").num_chunks == 1
    assert read.equals(pq.read_table(path)) and read.schema.equals(pq.read_table(path).schema, check_metadata=True)
    _, back = embeddings_from_arrow(read)
    assert np.array_equal(back, vectors)
    picked = storage.read_parquet(path, columns=["rank", "embedding"])
    assert picked.column_names == ["rank", "embedding"] and picked.equals(pq.read_table(path, columns=["rank", "embedding"]))
    # A vector with a null value is read as the file holds it (chunks and all).
    holed = pa.array([[None, 1.0], [2.0, 3.0]], type=pa.list_(pa.float32(), 2))
    path = storage.write_parquet_atomically(pa.table({"embedding": holed}), tmp_path / "holed.parquet")
    assert storage.read_parquet(path).equals(pq.read_table(path))


def test_tables_and_artifacts_round_trip(tmp_path, tokenizer):
    store = AssetStore(tmp_path)
    frame = pd.DataFrame({"item_id": ["a", "b"], "x": [1.0, 2.0]})
    path = store.write_table("items", frame, month="2025-01")
    assert path == tmp_path / "items" / "2025-01.parquet" and store.exists("items", month="2025-01")
    assert store.read_table("items", month="2025-01", columns=["x"]).column_names == ["x"]
    assert store.columns("items", month="2025-01") == ["item_id", "x"]
    store.write_table("items", pa.table({"item_id": ["c"]}), month="2025-02")
    assert store.read_table("items", month="2025-02").num_rows == 1

    npz = store.write_artifact("tokenizer", tokenizer, month="2025-01", method="rq_kmeans")
    assert npz == tmp_path / "tokenizer" / "month=2025-01" / "method=rq_kmeans.npz"
    again = store.read_artifact("tokenizer", month="2025-01", method="rq_kmeans")
    assert np.array_equal(again.codebooks, tokenizer.codebooks)
    assert store.stored_path("tokenizer", month="2025-01", method="rq_kmeans") == npz


def test_missing_or_mistyped_partitions_say_what_to_do(tmp_path, tokenizer):
    store = AssetStore(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"tokenizer \[month=2025-01/method=rq_kmeans\].*materialise"):
        store.read_artifact("tokenizer", month="2025-01", method="rq_kmeans")
    store.write_artifact("tokenizer", tokenizer, month="2025-01", method="rq_kmeans")
    with pytest.raises(TypeError, match="read_artifact"):
        store.read_table("tokenizer", month="2025-01", method="rq_kmeans")
    with pytest.raises(TypeError, match="to_arrays"):
        store.write_artifact("tokenizer", object(), month="2025-01", method="rq_kmeans")


def test_months_lists_materialised_partitions_oldest_first(tmp_path):
    store = AssetStore(tmp_path)
    for month in ("2025-03", "2025-01", "2025-02"):
        store.write_table("aligned_embeddings", pd.DataFrame({"x": [1]}), month=month)
    for month, method in (("2025-02", "rq_kmeans"), ("2024-12", "rq_kmeans"), ("2025-03", "letter")):
        store.write_table("semantic_ids", pd.DataFrame({"x": [1]}), month=month, method=method)
    (tmp_path / "aligned_embeddings" / ".2025-04.parquet.host-1.abcdefgh.tmp").write_bytes(b"partial")
    assert store.months("aligned_embeddings") == ["2025-01", "2025-02", "2025-03"]
    assert store.months("semantic_ids", method="rq_kmeans") == ["2024-12", "2025-02"]
    assert store.months("semantic_ids", method="letter") == ["2025-03"]
    assert store.months("never_materialised") == []


def test_atomic_write_syncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    def replace(src, dst):
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(durable.os, "fsync", fsync)
    monkeypatch.setattr(durable.os, "replace", replace)
    AssetStore(tmp_path).write_table("t", pd.DataFrame({"x": [1]}), month="2025-01")
    assert events == ["file", "rename", "folder"]


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "x.bin"
    atomic_write(target, lambda fh: fh.write(b"old"))

    def fails(fh):
        fh.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fails)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]


def test_temporary_files_name_their_writer(tmp_path):
    seen = []

    def peek(fh):
        seen.extend(p.name for p in tmp_path.iterdir())
        fh.write(b"x")

    atomic_write(tmp_path / "2025-01.parquet", peek)
    assert seen[0].startswith(f".2025-01.parquet.{writer_tag()}.") and seen[0].endswith(".tmp")


def test_sweep_removes_a_killed_writers_temporary_and_keeps_a_live_ones(tmp_path):
    store = AssetStore(tmp_path)
    target = tmp_path / "aligner" / "2025-01.npz"
    # A writer that stops half-way through its write: alive, then killed.
    writer = _child(f"""
        import time
        from pathlib import Path
        from semid_assets.core.durable import atomic_write
        def stall(fh):
            fh.write(b"half an artefact"); fh.flush(); print("writing", flush=True); time.sleep(600)
        atomic_write(Path({str(target)!r}), stall)
    """)
    try:
        assert writer.stdout.readline().strip() == "writing"
        temporaries = list(target.parent.glob(".*.tmp"))
        assert len(temporaries) == 1
        log = []
        assert store.sweep_temporaries(log=log.append) == [] and log == []
        assert temporaries[0].exists(), "a live writer's temporary file must never be removed"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    log = []
    assert store.sweep_temporaries(log=log.append) == temporaries
    assert not temporaries[0].exists() and len(log) == 1 and "writer is gone" in log[0]
    assert not target.exists()


def test_sweep_judges_names_it_cannot_check_by_host_and_age(tmp_path):
    folder = tmp_path / "tokenizer" / "month=2025-01"
    folder.mkdir(parents=True)
    dead = folder / f".method=a.npz.{durable._host()}-{_dead_pid()}.abcdefgh.tmp"
    foreign = folder / ".method=b.npz.another-host-1.abcdefgh.tmp"
    old_untagged = folder / ".method=c.npz.abcdefgh.tmp"  # named by an older semid
    fresh_untagged = folder / ".method=d.npz.abcdefgh.tmp"
    for path in (dead, foreign, old_untagged, fresh_untagged):
        path.write_bytes(b"partial")
    long_ago = time.time() - UNTAGGED_GRACE_SECONDS - 60
    os.utime(old_untagged, (long_ago, long_ago))
    log = []
    removed = AssetStore(tmp_path).sweep_temporaries(log=log.append)
    assert sorted(removed) == sorted([dead, old_untagged]) and len(log) == 2
    assert foreign.exists() and fresh_untagged.exists()


def test_content_digest_ignores_the_container_and_the_fit_diagnostics(tmp_path, tokenizer):
    first = save_artifact(tokenizer, tmp_path / "a.npz")
    time.sleep(1.1)  # a later zip timestamp
    tokenizer.fit_info = {**tokenizer.fit_info, "seconds": 123.0}
    second = save_artifact(tokenizer, tmp_path / "b.npz")
    assert content_sha256(first) == content_sha256(second)
    other = RQKMeans(levels=2, codebook_size=8, seed=2).fit(np.random.default_rng(3).normal(size=(400, 8))
                                                          .astype(np.float32))
    assert content_sha256(save_artifact(other, tmp_path / "c.npz")) != content_sha256(first)
    changed = load_artifact(first)
    # A parameter that changes the codes, with the same arrays (options are frozen: replace them).
    changed.options = dataclasses.replace(changed.options, beam_size=4)
    assert content_sha256(save_artifact(changed, tmp_path / "d.npz")) != content_sha256(first)


def test_the_file_lock_excludes_other_processes_until_they_release_or_die(tmp_path):
    lock, marker = tmp_path / "registry.lock", tmp_path / "released"
    holder = _child(f"""
        import time
        from pathlib import Path
        from semid_assets.core.durable import FileLock
        with FileLock.of(Path({str(lock)!r})):
            print("held", flush=True); time.sleep(1.0); Path({str(marker)!r}).touch()
    """)
    assert holder.stdout.readline().strip() == "held"
    with FileLock.of(lock), FileLock.of(lock):  # re-entrant within this process
        assert marker.exists(), "the lock was granted while another process held it"
    holder.wait()

    killed = _child(f"""
        import time
        from pathlib import Path
        from semid_assets.core.durable import FileLock
        with FileLock.of(Path({str(lock)!r})):
            print("held", flush=True); time.sleep(600)
    """)
    assert killed.stdout.readline().strip() == "held"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    with FileLock.of(lock):  # a killed holder does not block the next one
        pass
