"""Run a job of the definitions from this process, as ``semid demo`` does, without holding its outputs.

``JobDefinition.execute_in_process`` keeps every step's output in memory until its result is
dropped (for ``result.output_for_node``): a run holds every table it produced, and a caller that
keeps the result holds them into the next run. At a million items that is gigabytes. Runs launched
from the UI or a schedule never hold them; :func:`run_job` runs the same way, through
``dg.execute_job`` with the job's own executor, so outputs live only as long as the step that made
them and the steps that read them through the IO manager.

``dg.execute_job`` takes a reconstructable job. With the in-process executor the definitions are
registered here under a token and the job is rebuilt from them by name: it never leaves this
process. With step processes (``SEMID_STEP_PROCESSES``) each step's process rebuilds the job
itself, so it is pointed at a function it can import: by default :func:`environment_job`, which
builds semid's definitions from the environment the step processes inherit.
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


def environment_job(name: str) -> dg.JobDefinition:
    """The job ``name`` of semid's definitions as the environment (``SEMID_*``) describes them: the
    ones ``semid_assets.definitions`` builds when it is imported, built once per process."""
    from semid_assets.definitions import defs

    return defs.resolve_job_def(name)


def runs_in_process(job: dg.JobDefinition) -> bool:
    return job.executor_def.name == dg.in_process_executor.name


def run_job(defs: dg.Definitions, name: str, partition_key: str | dg.MultiPartitionKey, *,
            instance: dg.DagsterInstance, run_config: dict[str, Any] | None = None,
            raise_on_error: bool = False,
            rebuild: tuple[str, str] = (__name__, environment_job.__name__)) -> dg.JobExecutionResult:
    """Run the partition ``partition_key`` of the job ``name``, as a launched run would.

    When the job's steps run in processes of their own, those processes rebuild it by calling the
    function ``rebuild`` names (module, function) with ``name``: it must give the same job as ``defs``.
    """
    job_def = defs.resolve_job_def(name)
    tags = job_def.get_tags_for_partition_key(str(partition_key), None)
    if not runs_in_process(job_def):
        job = dg.build_reconstructable_job(rebuild[0], rebuild[1], reconstructable_args=(name,))
        return dg.execute_job(job, instance, run_config=run_config, tags=tags, raise_on_error=raise_on_error)
    token = f"{id(defs):x}-{next(_TOKENS)}"
    _REGISTERED[token] = defs
    try:
        job = dg.build_reconstructable_job(__name__, registered_job.__name__, reconstructable_args=(token, name))
        return dg.execute_job(job, instance, run_config=run_config, tags=tags, raise_on_error=raise_on_error)
    finally:
        del _REGISTERED[token]
