"""One thread policy: a partition's codes are the same whatever thread counts the process started with.

faiss, torch and numpy's BLAS each keep a process-wide thread count whose default depends on
how the process was launched: an in-process `semid demo` whose earlier step left faiss at 1,
a daemon-launched run with every core, a shell with ``OMP_NUM_THREADS`` set. Every fit and
encode sets its counts from its options (``core/threads.py``) and restores them.

The size matters: on a few hundred points faiss does not split its work and any thread count
gives the same bits. At 20,000 × 64 with 64 codes per level, faiss' BLAS distance products and
progressive-dimension k-means run on two threads, whose sums can round differently from one
thread's: where they do, a fit that followed the process's setting lands on other codes for
nearly every item (checked below), which is what the pinned fit prevents. Some CPUs' BLAS kernels
(OpenBLAS on AVX-512) keep the same bits at any thread count at this size; there the check asks
instead that following the process changes no code at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import faiss
import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info

# Imported before any thread count is read: they load scipy's own BLAS, whose default is the core count.
from semid_assets.compute import ComputeEngineResource
from semid_assets.core.lifecycle.candidate import fit_candidate
from semid_assets.core.lifecycle.hysteresis import candidate_margin
from semid_assets.core.threads import blas_threads, compute_threads, faiss_threads, torch_threads
from semid_assets.core.tokenizers.methods import make_tokenizer
from semid_assets.defs.tokenizer import TokenizerConfig, tokenizer_options

ROOT = Path(__file__).resolve().parents[1]
N_ITEMS, DIM, CODES = 20_000, 64, 64
METHOD = "rq_kmeans"


def partition_vectors() -> np.ndarray:
    """The month's aligned embeddings: 20,000 unit vectors around 50 topics."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(50, DIM)).astype(np.float32)
    x = centres[rng.integers(0, 50, N_ITEMS)] + 0.7 * rng.normal(size=(N_ITEMS, DIM)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def fit_partition(n_threads: int | None = None) -> np.ndarray:
    """The ``tokenizer`` asset's fit of a first month (``defs/tokenizer.py``): its launchpad config
    (``codebook_size`` set), the month's candidate, the catalogue codes on the default compute engine.
    ``n_threads``: override the config's (what a fit following the process's setting would use)."""
    config = TokenizerConfig(codebook_size=CODES)
    options = tokenizer_options(config, METHOD, CODES)
    model = make_tokenizer(METHOD, options, **({} if n_threads is None else {"n_threads": n_threads}))
    vectors = partition_vectors()
    codes, _ = fit_candidate(model, vectors, np.arange(N_ITEMS), previous=None, published=None, steps=None,
                             hysteresis=candidate_margin(METHOD, config.hysteresis),
                             encode_catalogue=ComputeEngineResource().encode_catalogue())
    return codes


def process_threads() -> dict[str, int]:
    blas = sorted({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"})
    return {"faiss": faiss.omp_get_max_threads(), "torch": torch.get_num_threads(), "blas": blas}


# A fresh process whose defaults all say 2: as a daemon-launched run on this 2-core machine.
_TWO_THREAD_PROCESS = textwrap.dedent("""
    import json, sys
    import faiss, numpy as np, torch
    torch.set_num_threads(2)
    faiss.omp_set_num_threads(2)
    from test_thread_policy import fit_partition, process_threads
    before = process_threads()
    pinned = fit_partition()                       # the config's count, as the asset fits
    after = process_threads()
    following = fit_partition(faiss.omp_get_max_threads())   # the process's count, as before the pin
    np.savez(sys.argv[1], pinned=pinned, following=following)
    print(json.dumps({"before": before, "after": after}))
""")


@pytest.fixture(scope="module")
def two_thread_codes(tmp_path_factory) -> tuple[dict, dict]:
    out = tmp_path_factory.mktemp("threads") / "codes.npz"
    env = {**os.environ, "OMP_NUM_THREADS": "2",
           # A spinning OpenMP barrier on a machine whose other core is busy makes the 2-thread
           # fit ~7x slower; passive waiting changes the speed, not the arithmetic.
           "OMP_WAIT_POLICY": "PASSIVE",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _TWO_THREAD_PROCESS, str(out)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out, allow_pickle=False) as codes:
        return dict(codes), json.loads(done.stdout.strip().splitlines()[-1])


def test_a_partition_fits_to_the_same_codes_in_process_and_in_a_two_thread_process(two_thread_codes):
    codes, threads = two_thread_codes
    assert threads["before"] == {"faiss": 2, "torch": 2, "blas": [2]}, threads
    assert threads["after"] == threads["before"], "the fit left the process's thread counts changed"
    # Here the process defaults are 1, as an in-process demo had them after a step set faiss to 1.
    with blas_threads(1), faiss_threads(1), torch_threads(1):
        here = fit_partition()
        assert process_threads() == {"faiss": 1, "torch": 1, "blas": [1]}
    assert here.shape == (N_ITEMS, 3) and len(np.unique(here[:, 0])) > CODES // 2
    np.testing.assert_array_equal(here, codes["pinned"])


def _kmeans_bits_depend_on_threads() -> bool:
    """Whether this machine's faiss k-means at the partition's size gives other centroids on two threads.

    Not every CPU's BLAS kernels split their sums with the thread count: OpenBLAS's SkylakeX (AVX-512)
    kernels give the same bits on one thread and two at this size, so no fit here could show the pin
    matters."""
    x = partition_vectors()
    centroids = []
    for n in (1, 2):
        with faiss_threads(n), blas_threads(n):
            kmeans = faiss.Kmeans(DIM, CODES, niter=10, seed=1)
            kmeans.train(x)
            centroids.append(kmeans.centroids.copy())
    return not np.array_equal(*centroids)


def test_a_fit_that_followed_the_process_differs_exactly_where_kmeans_depends_on_threads(two_thread_codes):
    codes, _ = two_thread_codes
    differ = float(np.any(codes["pinned"] != codes["following"], axis=1).mean())
    if _kmeans_bits_depend_on_threads():
        assert differ > 0.5, f"only {differ:.1%} of the items changed code: is faiss splitting work at this size?"
    else:
        # Where k-means keeps its bits at any thread count, nothing else in the fit may depend on it either.
        assert differ == 0, f"{differ:.1%} of the items changed code although this CPU's k-means does not " \
                            "depend on the thread count: another part of the fit does"


def test_compute_threads_sets_every_library_and_restores_it():
    before = process_threads()
    with compute_threads(1) as n:
        assert n == 1 and process_threads() == {"faiss": 1, "torch": 1, "blas": [1]}
        with compute_threads(2):
            assert process_threads() == {"faiss": 2, "torch": 2, "blas": [2]}
        assert process_threads() == {"faiss": 1, "torch": 1, "blas": [1]}
    assert process_threads() == before
    with compute_threads(None) as n:  # None is one thread, never "the process's"
        assert n == 1 and process_threads()["faiss"] == 1
    with pytest.raises(ValueError, match="thread count"):
        with compute_threads(0):
            pass
