"""What a run's process imports before its first step: loading the definitions imports neither torch
nor MLflow, and the library an RQ-Kmeans month runs (its tokenizer, the engine's encode, a stored
aligner passed on) imports no torch. Each check runs in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

HEAVY = ("torch", "mlflow", "transformers", "sentencepiece", "matplotlib")


def _loaded_after(code: str, tmp_path) -> list[str]:
    probe = f"import sys\n{code}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    env = dict(os.environ, SEMID_HOME=str(tmp_path), SEMID_SIZE="tiny", SEMID_DATASET="synthetic")
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return eval(done.stdout.strip().splitlines()[-1])


def test_loading_the_definitions_imports_neither_torch_nor_mlflow(tmp_path):
    assert _loaded_after("import semid_assets.definitions", tmp_path) == []


def test_an_rq_kmeans_month_runs_without_torch(tmp_path):
    code = """
import numpy as np
from semid_assets.core.alignment.aligner import Aligner
from semid_assets.core.alignment.config import QFormerConfig
from semid_assets.core.engine import LocalEngine
from semid_assets.core.fanout import encode_catalogue
from semid_assets.core.tokenizers.methods import make_tokenizer
X = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
model = make_tokenizer("rq_kmeans", levels=2, codebook_size=4)
codes = model.fit_encode(X)
assert np.array_equal(encode_catalogue(LocalEngine(threads=1), model, X, chunk_rows=128), model.encode_catalogue(X))
stored = Aligner(QFormerConfig(modalities=("text",), modality_dims=(8,), max_tokens=(4,)), {}, np.zeros(0, np.int64), {})
Aligner.from_arrays(*stored.to_arrays())
"""
    assert _loaded_after(code, tmp_path) == []
