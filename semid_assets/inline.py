"""Run a job of the definitions in this process, as ``semid demo`` does, without holding its outputs.

``JobDefinition.execute_in_process`` keeps every step's output in memory until its result is
dropped (for ``result.output_for_node``): a run holds every table it produced, and a caller that
keeps the result holds them into the next run. At a million items that is gigabytes. Runs launched
from the UI or a schedule never hold them; :func:`run_job` runs the same way, through
``dg.execute_job`` with the job's own executor (in-process), so outputs live only as long as the
step that made them and the steps that read them through the IO manager.

``dg.execute_job`` takes a reconstructable job. The definitions are registered here under a token
and the job is rebuilt from them by name: enough for the in-process executor, which never leaves
this process. A job whose executor starts other processes cannot be run this way.
"""

from __future__ import annotations

import itertools
from typing import Any

import dagster as dg

# Held only while a run executes: each call registers under a token of its own and drops it after.
_REGISTERED: dict[str, dg.Definitions] = {}
_TOKENS = itertools.count()


def registered_job(token: str, name: str) -> dg.JobDefinition:
    """The job ``name`` of the definitions registered under ``token`` (what ``dg.execute_job`` rebuilds)."""
    return _REGISTERED[token].resolve_job_def(name)


def run_job(defs: dg.Definitions, name: str, partition_key: str | dg.MultiPartitionKey, *,
            instance: dg.DagsterInstance, run_config: dict[str, Any] | None = None,
            raise_on_error: bool = False) -> dg.JobExecutionResult:
    """Run the partition ``partition_key`` of the job ``name`` in this process, as a launched run would."""
    token = f"{id(defs):x}-{next(_TOKENS)}"
    tags = defs.resolve_job_def(name).get_tags_for_partition_key(str(partition_key), None)
    _REGISTERED[token] = defs
    try:
        job = dg.build_reconstructable_job(__name__, registered_job.__name__, reconstructable_args=(token, name))
        return dg.execute_job(job, instance, run_config=run_config, tags=tags, raise_on_error=raise_on_error)
    finally:
        del _REGISTERED[token]
