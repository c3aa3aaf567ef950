"""semid_assets.inline.run_job: a partition run in this process that does not hold its outputs."""

import gc
import weakref

import dagster as dg

from semid_assets import inline
from semid_assets.inline import run_job

MADE: list[weakref.ref] = []


class Blob:
    """Stands in for a large table: weakly referenceable, so the test can see whether anything holds it."""


class DiscardingIOManager(dg.ConfigurableIOManager):
    def handle_output(self, context, obj) -> None:
        pass

    def load_input(self, context):
        return None


PARTS = dg.MultiPartitionsDefinition({"month": dg.StaticPartitionsDefinition(["2025-01", "2025-02"]),
                                      "method": dg.StaticPartitionsDefinition(["rq_kmeans", "letter"])})


@dg.asset(partitions_def=PARTS)
def blob(context: dg.AssetExecutionContext) -> Blob:
    made = Blob()
    MADE.append(weakref.ref(made))
    context.log.info(f"made for {context.partition_key}")
    return made


def _definitions() -> dg.Definitions:
    return dg.Definitions(assets=[blob], jobs=[dg.define_asset_job("blob_job", [blob], partitions_def=PARTS)],
                          resources={"io_manager": DiscardingIOManager()}, executor=dg.in_process_executor)


def test_run_job_materialises_the_partition_and_keeps_no_output(tmp_path):
    defs = _definitions()
    key = dg.MultiPartitionKey({"month": "2025-02", "method": "letter"})
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = run_job(defs, "blob_job", key, instance=instance)
        gc.collect()
        assert result.success
        assert MADE[-1]() is None, "the run's output is still held after the run"
        assert not inline._REGISTERED, "the definitions stay registered after the run"
        materialised = instance.fetch_materializations(dg.AssetKey("blob"), limit=1).records
        assert materialised[0].partition_key == str(key)

        # What run_job avoids: execute_in_process holds every output while its result lives.
        held = defs.resolve_job_def("blob_job").execute_in_process(partition_key=key, instance=instance)
        gc.collect()
        assert held.success and MADE[-1]() is not None
