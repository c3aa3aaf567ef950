"""Benchmark one month's ``ranking_eval`` at the dataset the environment selects (default size by default).

    SEMID_HOME=/path/to/home python bench/bench_ranking.py [--month YYYY-MM] [--method rq_kmeans]

Materialises the lineage of the month (and of the month before, so the stability
comparison has an older tokenizer version) when it is missing — not timed — then times
the ``ranking_eval_job`` run of that month × method and prints its tables. Target: ≤ 5
minutes on 2 cores at default size. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dagster as dg  # noqa: E402

from semid_assets.definitions import build_definitions  # noqa: E402
from semid_assets.defs.automation import RANKING_JOB  # noqa: E402
from semid_assets.demo import _QUIET, run_demo  # noqa: E402
from semid_assets.home import prepare_home  # noqa: E402
from semid_assets.partitions import METHOD, MONTH  # noqa: E402
from semid_assets.settings import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--month", help="evaluation month (default: the dataset's last)")
    parser.add_argument("--method", default="rq_kmeans")
    args = parser.parse_args()
    settings = Settings.from_env()
    prepare_home(settings)
    defs = build_definitions(settings)
    months = settings.source().months()
    month = args.month or months[-1]
    key = dg.MultiPartitionKey({MONTH: month, METHOD: args.method})
    with dg.DagsterInstance.get() as instance:
        have = instance.get_materialized_partitions(dg.AssetKey("semantic_ids"))
        needed = [m for m in months[max(0, months.index(month) - 1): months.index(month) + 1]
                  if str(dg.MultiPartitionKey({MONTH: m, METHOD: args.method})) not in have]
        if needed:
            print(f"materialising the lineage of {', '.join(needed)} first (not timed)")
            run_demo(defs, instance, needed, [args.method], log=print)
        started = time.perf_counter()
        result = defs.resolve_job_def(RANKING_JOB).execute_in_process(
            partition_key=key, instance=instance, run_config=_QUIET)
        seconds = time.perf_counter() - started
        record = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("ranking_eval"), asset_partitions=[str(key)]),
            limit=1).records[0]
    metadata = {k: v.value for k, v in record.asset_materialization.metadata.items()}
    print(f"\nranking_eval {settings.source().name} {key}: {seconds:.0f}s wall "
          f"({'ok' if result.success else 'FAILED'}), peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")
    print(f"training rows {metadata['train_rows']} (of {metadata['train_rows_before_cap']}), evaluation rows "
          f"{metadata['eval_rows']}, cold items {metadata['cold_items']} ({metadata['cold_eval_rows']} rows)\n")
    for name in ("ranking", "versus_hash", "stability"):
        print(metadata[name], end="\n\n")


if __name__ == "__main__":
    main()
