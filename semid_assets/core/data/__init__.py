"""Catalogue data: the table contracts, the sources (embedded synthetic platform, Parquet, MovieLens)."""
