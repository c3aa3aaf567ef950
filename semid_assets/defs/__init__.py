"""The Dagster layer: one module per stage of the lineage, each a factory of thin assets."""
