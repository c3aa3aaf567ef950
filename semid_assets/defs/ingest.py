"""Stage 1 — the catalogue and its interaction log as of each month's end."""


import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from semid_assets import metadata as md
from semid_assets.core.data import schema
from semid_assets.core.data.contracts import embedding_columns, validate_interactions
from semid_assets.core.data.sources import month_start
from semid_assets.core.features.multimodal import text_columns_of
from semid_assets.partitions import SemidPartitions, month_of
from semid_assets.resources import CatalogResource

GROUP = "ingest"


def build(parts: SemidPartitions) -> list:
    @dg.asset(partitions_def=parts.month, group_name=GROUP, kinds={"parquet"})
    def raw_items(context: dg.AssetExecutionContext, catalog: CatalogResource) -> dg.MaterializeResult:
        """The catalogue as of the month's end: every item created before the next month starts.

        Columns: ``item_id``, ``created_at``, text fields, optional ``emb_<modality>``
        vectors and, for the synthetic platform, evaluation-only ``truth_*`` columns.
        """
        month = month_of(context)
        items = catalog.source().items_as_of(month)
        created = items.column(schema.CREATED_AT)
        start = pa.scalar(month_start(month).to_datetime64(), pa.timestamp("us"))
        new_items = int(pc.sum(pc.greater_equal(created, start)).as_py() or 0)
        text_columns = text_columns_of(items)
        preview = items.select([schema.ITEM_ID, *text_columns[:3]]).slice(max(0, items.num_rows - 5)).to_pandas()
        context.log.info(f"{month}: {items.num_rows} items, {new_items} new this month")
        return dg.MaterializeResult(value=items, metadata={
            "new_items_this_month": md.number(new_items), "dagster/row_count": items.num_rows,
            "text_columns": ", ".join(text_columns),
            "embedding_columns": ", ".join(embedding_columns(items)) or "none",
            "newest_items": md.table(preview),
        })

    @dg.asset(partitions_def=parts.month, group_name=GROUP, kinds={"parquet"},
              ins={"raw_items": dg.AssetIn(metadata={"columns": [schema.ITEM_ID]})})
    def raw_interactions(context: dg.AssetExecutionContext, catalog: CatalogResource,
                         raw_items: pd.DataFrame) -> dg.MaterializeResult:
        """Every impression up to the month's end: ``user_id, item_id, ts, label`` (1 = positive).

        Rows on items the catalogue does not know are dropped and counted in the metadata;
        more than ``max_unknown_item_share`` of them fails the step (an id mismatch).
        """
        month = month_of(context)
        raw = catalog.source().interactions_as_of(month)
        interactions, report = validate_interactions(
            raw, raw_items[schema.ITEM_ID].to_numpy(), where=f"interactions as of {month}",
            max_unknown_share=catalog.max_unknown_item_share)
        if report.unknown_item_rows:
            context.log.warning(
                f"dropped {report.unknown_item_rows} interaction(s) on {report.unknown_items} item(s) "
                f"unknown to the catalogue, e.g. {report.unknown_examples}")
        this_month = interactions[schema.TS] >= month_start(month)
        return dg.MaterializeResult(value=interactions, metadata={
            "rows_this_month": md.number(int(this_month.sum())), "dagster/row_count": len(interactions),
            "users": md.number(int(interactions[schema.USER_ID].nunique())),
            "positive_share": md.number(float(interactions[schema.LABEL].mean()) if len(interactions) else 0.0),
            "dropped_unknown_item_rows": md.number(report.unknown_item_rows),
            "dropped_unknown_items": md.number(report.unknown_items),
        })

    return [raw_items, raw_interactions]
