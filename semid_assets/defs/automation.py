"""Jobs, the monthly schedule, and the sensor that tokenizes each newly embedded month.

Dagster runs one partitions definition per job, so the lineage is two jobs: the monthly
stages, and the month × method tokenizer stages. The sensor chains them: whenever a
month's ``aligned_embeddings`` lands — from the schedule, a UI backfill or a manual run —
it requests that month's tokenizer run for every method.

The short jobs (a month × method's tokenizer, a month's comparison, a version's ranking)
run their steps in the run's own process: with one process per step, a daemon-launched
tokenizer run spent most of its time starting eight Python processes.
"""


import dagster as dg

from semid_assets.partitions import METHOD, MONTH, SemidPartitions

MONTHLY_JOB = "monthly_lineage_job"
TOKENIZER_JOB = "tokenizer_job"
COMPARISON_JOB = "tokenizer_comparison_job"
MONTHLY_ASSETS = ["raw_items", "raw_interactions", "multimodal_features", "item_pairs", "aligner",
                  "aligned_embeddings", "collaborative_embeddings"]
TOKENIZER_ASSETS = ["tokenizer", "semantic_ids", "sid_stability", "sid_hierarchy"]
COMPARISON_ASSETS = ["tokenizer_comparison"]
# Minutes, not seconds: its own job, run on demand or by `semid demo --ranking`, never by the sensor.
RANKING_JOB = "ranking_eval_job"
RANKING_ASSETS = ["ranking_eval"]


def build(parts: SemidPartitions) -> tuple[list, list, list]:
    monthly_job = dg.define_asset_job(
        MONTHLY_JOB, selection=dg.AssetSelection.assets(*MONTHLY_ASSETS), partitions_def=parts.month,
        description="Catalogue → features → pairs → aligner → aligned embeddings for one month.")
    tokenizer_job = dg.define_asset_job(
        TOKENIZER_JOB, selection=dg.AssetSelection.assets(*TOKENIZER_ASSETS), partitions_def=parts.month_method,
        executor_def=dg.in_process_executor,
        description="Fit, register and apply one tokenizer version (month × method), with its checks.")
    ranking_job = dg.define_asset_job(
        RANKING_JOB, selection=dg.AssetSelection.assets(*RANKING_ASSETS), partitions_def=parts.month_method,
        executor_def=dg.in_process_executor,
        description="Judge one tokenizer version (month × method) by ranking AUC with its SIDs as features.")

    comparison_job = dg.define_asset_job(
        COMPARISON_JOB, selection=dg.AssetSelection.assets(*COMPARISON_ASSETS), partitions_def=parts.month,
        executor_def=dg.in_process_executor,
        description="Compare every method's tokenizer version of one month.")

    @dg.schedule(job=monthly_job, cron_schedule="0 3 1 * *", execution_timezone="UTC",
                 default_status=dg.DefaultScheduleStatus.RUNNING)
    def monthly_refresh(context: dg.ScheduleEvaluationContext):
        """On the 1st of each month, rebuild the newest month the dataset has."""
        newest = parts.month.get_last_partition_key()
        if newest is None:
            return dg.SkipReason("the dataset spans no complete month yet")
        return dg.RunRequest(run_key=f"monthly-{newest}", partition_key=newest)

    @dg.sensor(job=tokenizer_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
    def tokenize_new_embeddings(context: dg.SensorEvaluationContext):
        """Request every method's tokenizer for each month whose embeddings were just materialised."""
        if not context.cursor:
            # First tick: months materialised before the sensor existed (e.g. by `semid demo`,
            # which tokenizes them itself) are not tokenized a second time.
            newest = context.instance.fetch_materializations(
                dg.AssetKey("aligned_embeddings"), limit=1, ascending=False).records
            context.update_cursor(str(newest[0].storage_id) if newest else "0")
            return dg.SkipReason("sensor started; watching for new aligned_embeddings from now on")
        after = int(context.cursor)
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("aligned_embeddings"), after_storage_id=after),
            limit=100, ascending=True).records
        if not records:
            return dg.SkipReason("no new aligned_embeddings materialisation")
        requests = []
        for record in records:
            month = record.partition_key
            for method in parts.method.get_partition_keys():
                key = dg.MultiPartitionKey({MONTH: month, METHOD: method})
                requests.append(dg.RunRequest(run_key=f"{record.storage_id}-{key}", partition_key=key))
        return dg.SensorResult(run_requests=requests, cursor=str(records[-1].storage_id))

    @dg.sensor(job=comparison_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
    def compare_complete_months(context: dg.SensorEvaluationContext):
        """Request a month's comparison once every method's semantic IDs of that month have landed
        since the cursor (each new method version re-triggers it once all are present)."""
        if not context.cursor:
            # As tokenize_new_embeddings: months compared before the sensor started are not redone.
            newest = context.instance.fetch_materializations(
                dg.AssetKey("semantic_ids"), limit=1, ascending=False).records
            context.update_cursor(str(newest[0].storage_id) if newest else "0")
            return dg.SkipReason("sensor started; watching for new semantic_ids from now on")
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("semantic_ids"), after_storage_id=int(context.cursor)),
            limit=100, ascending=True).records
        if not records:
            return dg.SkipReason("no new semantic_ids materialisation")
        done = context.instance.get_materialized_partitions(dg.AssetKey("semantic_ids"))
        methods = parts.method.get_partition_keys()
        requests, seen = [], set()
        for record in records:
            month = parts.month_method.get_partition_key_from_str(record.partition_key).keys_by_dimension[MONTH]
            if month in seen:
                continue
            seen.add(month)
            if all(str(parts.month_method_key(month, m)) in done for m in methods):
                requests.append(dg.RunRequest(run_key=f"compare-{month}-{record.storage_id}", partition_key=month))
        return dg.SensorResult(run_requests=requests, cursor=str(records[-1].storage_id))

    return ([monthly_job, tokenizer_job, comparison_job, ranking_job], [monthly_refresh],
            [tokenize_new_embeddings, compare_complete_months])
