"""Two Parquet files following the contract run the same lineage; MovieLens files are read as documented."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pyarrow.parquet as pq

from semid_assets.core.data.sources import MovieLensSource
from semid_assets.definitions import build_definitions
from semid_assets.demo import run_demo


def test_parquet_contract_runs_the_whole_lineage(tiny_run, tiny_settings, tmp_path):
    _, instance, _, months = tiny_run
    source = tiny_settings.source()
    month = months[-1]
    items = source.items_as_of(month).drop_columns(["truth_category", "truth_subcategory", "truth_topic",
                                                    "truth_community"])
    interactions = source.interactions_as_of(month)
    items_path, interactions_path = tmp_path / "items.parquet", tmp_path / "interactions.parquet"
    pq.write_table(items, items_path)
    interactions.to_parquet(interactions_path, index=False)

    # Same home: the text-token cache is shared, so only the lineage itself runs again.
    settings = replace(tiny_settings, dataset="parquet", items_path=str(items_path),
                       interactions_path=str(interactions_path), codebook_size_override=16)
    parquet_months = settings.source().months()
    assert parquet_months[-1] == month
    summary = run_demo(build_definitions(settings), instance, [month], ["rq_kmeans"], log=lambda s: None)
    assert summary.loc[0, "items"] == items.num_rows
    sids = pd.read_parquet(settings.assets_dir("parquet") / "semantic_ids" / f"month={month}" / "method=rq_kmeans.parquet")
    assert list(sids["item_id"]) == items.column("item_id").to_pylist()


def test_movielens_files_are_read_as_documented(tmp_path):
    (tmp_path / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "1\t10\t5\t875000000\n"      # 1997-09-23
        "2\t10\t2\t876000000\n"      # 1997-10-04
        "2\t20\t4\t880000000\n")     # 1997-11-20
    (tmp_path / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "10\tToy Story\t1995\tAnimation Children's Comedy\n"
        "20\tHeat\t1995\tAction Crime Thriller\n"
        "30\tNever Rated\t1996\tDrama\n")
    source = MovieLensSource(str(tmp_path))
    assert source.months() == ["1997-09", "1997-10", "1997-11"]
    september = source.items_as_of("1997-09")
    assert september.column("item_id").to_pylist() == [10]
    assert september.column("title").to_pylist() == ["Toy Story (1995)"]
    assert september.column("genres").to_pylist() == ["Animation, Children's, Comedy"]
    november = source.interactions_as_of("1997-11")
    assert list(november["label"]) == [1, 0, 1]
    assert source.items_as_of("1997-11").num_rows == 2, "a movie nobody rated never entered the catalogue"
