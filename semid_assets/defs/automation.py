"""Jobs, the monthly schedule, and the sensor that tokenizes each newly embedded month.

Dagster runs one partitions definition per job, so the lineage is two jobs: the monthly
stages, and the month × method tokenizer stages. The sensor chains them: whenever a
month's ``aligned_embeddings`` lands — from the schedule, a UI backfill or a manual run —
it requests that month's tokenizer run for every method.
"""


import dagster as dg

from semid_assets.partitions import METHOD, MONTH, SemidPartitions

MONTHLY_JOB = "monthly_lineage_job"
TOKENIZER_JOB = "tokenizer_job"
MONTHLY_ASSETS = ["raw_items", "raw_interactions", "multimodal_features", "item_pairs", "aligner",
                  "aligned_embeddings"]
TOKENIZER_ASSETS = ["tokenizer", "semantic_ids"]


def build(parts: SemidPartitions) -> tuple[list, list, list]:
    monthly_job = dg.define_asset_job(
        MONTHLY_JOB, selection=dg.AssetSelection.assets(*MONTHLY_ASSETS), partitions_def=parts.month,
        description="Catalogue → features → pairs → aligner → aligned embeddings for one month.")
    tokenizer_job = dg.define_asset_job(
        TOKENIZER_JOB, selection=dg.AssetSelection.assets(*TOKENIZER_ASSETS), partitions_def=parts.month_method,
        description="Fit, register and apply one tokenizer version (month × method), with its checks.")

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

    return [monthly_job, tokenizer_job], [monthly_refresh], [tokenize_new_embeddings]
