"""Benchmark Swing similarity and pair construction on a synthetic interaction log.

    python bench/bench_swing.py [--interactions N] [--items N] [--users N] [--seed S]

Uses ``semid_assets.core.data.synthetic`` when it is importable and no size is overridden;
otherwise a built-in generator: Zipf-like item popularity, log-normal user activity,
hidden communities (users favour their community's items, so co-consumption has
structure, as on a real platform) and ~35 % positives. Prints wall time, peak memory
and output sizes. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semid_assets.core.data import schema  # noqa: E402
from semid_assets.core.collaborative.pairs import PairConfig, build_item_pairs  # noqa: E402
from semid_assets.core.collaborative.swing import swing_similarity, top_k_neighbours  # noqa: E402


def generate(n_interactions: int, n_items: int, n_users: int, seed: int,
             n_communities: int = 50, in_community: float = 0.7) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Popularity ∝ 1/rank, shuffled so popular items are spread over the id space.
    popularity = 1.0 / np.arange(1, n_items + 1)
    popularity = popularity[rng.permutation(n_items)]
    item_comm = rng.integers(0, n_communities, n_items)
    by_comm = np.argsort(item_comm, kind="stable")
    cum = np.cumsum(popularity[by_comm])
    comm_hi = np.searchsorted(item_comm[by_comm], np.arange(n_communities), side="right")
    comm_lo = np.concatenate(([0], comm_hi[:-1]))
    cum_lo = np.where(comm_lo > 0, cum[np.maximum(comm_lo - 1, 0)], 0.0)
    cum_hi = cum[np.maximum(comm_hi - 1, 0)]

    activity = rng.lognormal(0.0, 1.0, n_users)
    per_user = rng.multinomial(n_interactions, activity / activity.sum())
    users = np.repeat(np.arange(n_users), per_user)
    user_comm = rng.integers(0, n_communities, n_users)[users]

    local = rng.random(n_interactions) < in_community
    x = rng.random(n_interactions)
    x = np.where(local, cum_lo[user_comm] + x * (cum_hi[user_comm] - cum_lo[user_comm]), x * cum[-1])
    items = by_comm[np.minimum(np.searchsorted(cum, x, side="right"), n_items - 1)]
    # Community items are liked more often; the mix averages to ~35 % positives.
    p_pos = np.where(local, 0.42, 0.35 - 0.07 * in_community / (1 - in_community))
    labels = (rng.random(n_interactions) < p_pos).astype(np.int8)

    start = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
    span = 180 * 86_400 * 1_000_000
    ts = (start + rng.integers(0, span, n_interactions)).astype("datetime64[us]")
    item_ids = (1_000_000 + np.arange(n_items)).astype(np.int64)
    frame = pd.DataFrame({
        schema.USER_ID: users.astype(np.int64),
        schema.ITEM_ID: item_ids[items],
        schema.TS: ts,
        schema.LABEL: labels,
    })
    return frame, item_ids


def load_data(args: argparse.Namespace) -> tuple[pd.DataFrame, np.ndarray, str]:
    if not args.builtin and args.interactions is None:
        try:
            from semid_assets.core.data.synthetic import generate as synth_generate, spec_for_size
            data = synth_generate(spec_for_size("default"))
            inter = data["interactions"] if isinstance(data, dict) else data.interactions
            items = data["items"] if isinstance(data, dict) else data.items
            return inter, np.asarray(items[schema.ITEM_ID]), "semid_assets.core.data.synthetic default"
        except Exception as exc:  # noqa: BLE001 — any failure means "use the built-in generator"
            print(f"synthetic generator unavailable ({type(exc).__name__}: {exc}); using built-in")
    n = args.interactions or 1_000_000
    frame, item_ids = generate(n, args.items, args.users, args.seed)
    return frame, item_ids, f"built-in generator (seed {args.seed})"


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interactions", type=int, default=None, help="size of the built-in log (default 1M)")
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=8_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--builtin", action="store_true", help="skip semid_assets.core.data.synthetic")
    parser.add_argument("--target-days", type=float, default=30.0,
                        help="u2i targets are positives of the last N days (0: all positives)")
    args = parser.parse_args()

    t = time.perf_counter()
    frame, item_ids, origin = load_data(args)
    print(f"data: {origin}; {len(frame):,} interactions, {item_ids.size:,} items, "
          f"{frame[schema.USER_ID].nunique():,} users, {frame[schema.LABEL].mean():.1%} positive "
          f"({time.perf_counter() - t:.1f} s)")

    pos = frame[frame[schema.LABEL] == 1]
    users = pd.factorize(pos[schema.USER_ID], sort=True)[0]
    items = pd.Index(item_ids).get_indexer(pos[schema.ITEM_ID])
    recency = pos[schema.TS].to_numpy().view(np.int64)
    per_item = np.bincount(items, minlength=item_ids.size)
    print(f"positives: {len(pos):,}; users per item: max {per_item.max():,}, "
          f"items over the 200 cap: {(per_item > 200).sum():,}")

    config = PairConfig()
    t = time.perf_counter()
    sim = swing_similarity(users, items, int(users.max()) + 1, item_ids.size,
                           alpha=config.swing_alpha, user_weight_power=config.user_weight_power,
                           max_users_per_item=config.max_users_per_item, recency=recency)
    t_swing = time.perf_counter() - t
    print(f"swing_similarity: {t_swing:.2f} s; nnz {sim.nnz:,} "
          f"({sim.nnz / max(item_ids.size, 1):.0f} per item, "
          f"{(sim.data.nbytes + sim.indices.nbytes) / 1e6:.0f} MB)")
    t = time.perf_counter()
    rows, _, _ = top_k_neighbours(sim, config.swing_top_k)
    print(f"top_k_neighbours(k={config.swing_top_k}): {time.perf_counter() - t:.2f} s; {rows.size:,} entries")
    del sim

    target_start = None
    if args.target_days > 0:
        target_start = pd.Timestamp(frame[schema.TS].max()) - pd.Timedelta(days=args.target_days)
    t = time.perf_counter()
    pairs, stats = build_item_pairs(frame, item_ids, config, target_start=target_start)
    t_pairs = time.perf_counter() - t
    print(f"build_item_pairs: {t_pairs:.2f} s (swing part {stats['swing_seconds']:.2f} s); "
          f"{len(pairs):,} rows")
    for key, value in stats.items():
        print(f"  {key}: {value}")
    print(f"peak RSS: {peak_rss_gb():.2f} GB")


if __name__ == "__main__":
    main()
