"""The ``semid`` command line."""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace

from semid_assets.settings import Settings


def _settings(args) -> Settings:
    settings = Settings.from_env()
    if getattr(args, "dataset", None):
        settings = replace(settings, dataset=args.dataset)
    if getattr(args, "size", None):
        settings = replace(settings, size=args.size)
    return settings


def cmd_demo(args) -> int:
    import dagster as dg

    from semid_assets.definitions import build_definitions
    from semid_assets.demo import format_summary, run_demo
    from semid_assets.home import prepare_home

    settings = _settings(args)
    # Reads and checks the dataset: bad input is refused before a home or a partition exists.
    source = settings.source()
    source.check()
    months = source.months()
    prepare_home(settings)
    # The code location `dagster dev` loads later must describe the same dataset.
    os.environ.update(SEMID_DATASET=settings.dataset, SEMID_SIZE=settings.size)
    defs = build_definitions(settings)
    chosen = months[-args.months:] if args.months > 0 else months
    print(f"semid demo: dataset {settings.source().name}, months {chosen[0]} … {chosen[-1]}, home {settings.home}")
    started = time.perf_counter()
    methods = args.methods.split(",") if args.methods else list(settings.methods)
    unknown = sorted(set(methods) - set(settings.methods))
    if unknown:
        raise ValueError(f"--methods names unknown method(s) {unknown}; choose from {', '.join(settings.methods)}")
    with dg.DagsterInstance.get() as instance:
        summary = run_demo(defs, instance, chosen, methods, ranking=args.ranking)
    print()
    print(format_summary(summary))
    if set(methods) == set(settings.methods):
        from semid_assets.report import comparison_report

        print("\n" + comparison_report(settings, chosen[-1]))
    print(f"\ndone in {time.perf_counter() - started:.0f}s — browse it with `make ui`.")
    return 0


def cmd_encode(args) -> int:
    from semid_assets.encode import encode_file

    table = encode_file(Settings.from_env(), args.model, args.items, args.out)
    print(f"wrote {len(table)} semantic IDs to {args.out}")
    return 0


def cmd_embed(args) -> int:
    from semid_assets.encode import embed_file

    table = embed_file(Settings.from_env(), args.model, args.items, args.out)
    print(f"wrote {table.num_rows} aligned vectors to {args.out}")
    return 0


def cmd_report(args) -> int:
    from semid_assets.report import comparison_report

    print(comparison_report(_settings(args), args.month))
    return 0


def cmd_fetch(args) -> int:
    from semid_assets.core.data.sources import fetch_movielens_100k, movielens_dir

    target = fetch_movielens_100k(movielens_dir(Settings.from_env().data_dir))
    print(f"MovieLens-100K (GroupLens) is in {target}; run with SEMID_DATASET=movielens-100k")
    return 0


def cmd_ui(args) -> int:
    from semid_assets.home import prepare_home
    from semid_assets.ui import serve

    settings = Settings.from_env()
    # The servers would only show a bad dataset as a failed code location: refuse it here, plainly.
    settings.source().check()
    prepare_home(settings)
    return serve(settings, dagster_port=args.port, mlflow_port=args.mlflow_port)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="semid", description="Semantic IDs for recommender catalogues.")
    sub = top.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="materialise the whole lineage for the last N months in-process")
    demo.add_argument("--size", help="synthetic size: tiny, small, default, or an item count")
    demo.add_argument("--months", type=int, default=3, help="how many of the newest months (0 = all)")
    demo.add_argument("--dataset", help="synthetic (default), movielens-100k or parquet")
    demo.add_argument("--methods", help="comma-separated tokenizer methods (default: all; the comparison "
                                        "needs all)")
    demo.add_argument("--ranking", action="store_true",
                      help="also run ranking_eval for every month × method (a few minutes per month at default size)")
    demo.set_defaults(run=cmd_demo)

    encode = sub.add_parser("encode", help="semantic IDs for new items with a registered tokenizer")
    encode.add_argument("--model", required=True, help="NAME, NAME@ALIAS or NAME/VERSION in the MLflow registry")
    encode.add_argument("--items", required=True, help="Parquet with item_id and either 'embedding' or the "
                                                       "catalogue's text / emb_* columns")
    encode.add_argument("--out", required=True, help="output Parquet: item_id, c1 … cL")
    encode.set_defaults(run=cmd_encode)

    embed = sub.add_parser("embed", help="aligned vectors for new items with a registered aligner")
    embed.add_argument("--model", required=True, help="NAME, NAME@ALIAS or NAME/VERSION, e.g. "
                                                      "semid-synthetic-default-aligner@newest")
    embed.add_argument("--items", required=True, help="Parquet with item_id and the catalogue's text / emb_* columns")
    embed.add_argument("--out", required=True, help="output Parquet: item_id, embedding")
    embed.set_defaults(run=cmd_embed)

    report = sub.add_parser("report", help="the tokenizer methods compared side by side, per month")
    report.add_argument("--month", help="one month (YYYY-MM); default: every compared month")
    report.add_argument("--size", help="synthetic size the demo ran with")
    report.add_argument("--dataset", help="synthetic (default), movielens-100k or parquet")
    report.set_defaults(run=cmd_report)

    data = sub.add_parser("data", help="public datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    fetch = data_sub.add_parser("fetch", help="download a public dataset into SEMID_HOME/data")
    fetch.add_argument("name", choices=["movielens-100k"])
    fetch.set_defaults(run=cmd_fetch)

    ui = sub.add_parser("ui", help="start the Dagster UI (with daemon) and the MLflow UI on 127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--mlflow-port", type=int, default=5000)
    ui.set_defaults(run=cmd_ui)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"semid: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
