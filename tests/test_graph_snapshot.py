"""A snapshot of the asset graph — keys, deps, partitions, checks, jobs — so any change shows in review.

Regenerate after an intended change with: SEMID_UPDATE_SNAPSHOTS=1 make test PYTEST_ARGS=tests/test_graph_snapshot.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg

from semid_assets.definitions import build_definitions

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"


def _partitions(partitions_def) -> str | dict | None:
    if partitions_def is None:
        return None
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        return {dim.name: _partitions(dim.partitions_def) for dim in partitions_def.partitions_defs}
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return f"monthly {partitions_def.get_first_partition_key()}…{partitions_def.get_last_partition_key()}"
    return sorted(partitions_def.get_partition_keys())


def graph_snapshot(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "partitions": _partitions(node.partitions_def),
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "checks": sorted(check.name for check in node.check_keys),
        }
    return {
        "assets": assets,
        "jobs": sorted(job.name for job in defs.jobs or []),
        "schedules": sorted(s.name for s in defs.schedules or []),
        "sensors": sorted(s.name for s in defs.sensors or []),
    }


def test_asset_graph_matches_snapshot(tiny_settings):
    current = graph_snapshot(build_definitions(tiny_settings))
    if os.environ.get("SEMID_UPDATE_SNAPSHOTS") or not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


def test_definitions_load_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMID_HOME", str(tmp_path))
    monkeypatch.setenv("SEMID_SIZE", "tiny")
    import importlib

    import semid_assets.definitions as module

    defs = importlib.reload(module).defs
    assert defs.resolve_job_def("monthly_lineage_job") is not None
    assert defs.resolve_job_def("tokenizer_job") is not None
