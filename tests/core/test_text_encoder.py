from __future__ import annotations

import numpy as np
import pytest

from semid_assets.core.features.text_encoder import MODEL_DIM, TextEncoder, default_model_path

SENTENCES = [
    "A cat sleeps on the warm windowsill in the afternoon sun.",
    "Quick pasta recipe with garlic, olive oil and chili flakes",
    "Highlights of the weekend football match",
    "hello",
    "Rocket launch countdown from the space centre tonight, live coverage",
]


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    # A small batch keeps the fixed-shape filler rows cheap on these tiny inputs.
    return TextEncoder(batch_size=8)


def test_construction_is_lazy():
    enc = TextEncoder()
    assert not enc.loaded
    assert enc.name == "all-MiniLM-L6-v2" and enc.dim == MODEL_DIM == 384


def test_name_records_truncation():
    assert TextEncoder(max_tokens=32).name == "all-MiniLM-L6-v2-max32"
    with pytest.raises(ValueError):
        TextEncoder(max_tokens=1000)


def test_token_shapes_match_tokenizer(encoder):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(default_model_path(), local_files_only=True)
    tokens, pooled = encoder.encode(SENTENCES)
    assert pooled.shape == (len(SENTENCES), 384) and pooled.dtype == np.float32
    for text, t in zip(SENTENCES, tokens):
        ids = tok(text)["input_ids"]
        assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
        assert t.shape == (len(ids), 384) and t.dtype == np.float32


def test_pooled_is_normalised_mean_of_tokens(encoder):
    tokens, pooled = encoder.encode(SENTENCES)
    for t, p in zip(tokens, pooled):
        mean = t.astype(np.float64).mean(axis=0)
        np.testing.assert_allclose(p, mean / np.linalg.norm(mean), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-6)


def test_pooled_matches_sentence_transformers(encoder):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(default_model_path(), device="cpu")
    expected = st.encode(SENTENCES, convert_to_numpy=True, normalize_embeddings=False)
    _, pooled = encoder.encode(SENTENCES)
    cos = (pooled * expected).sum(1) / np.linalg.norm(expected, axis=1)
    assert cos.min() > 0.9999, cos


def test_batch_composition_does_not_change_bits():
    # batch_size=2 forces partial batches, several batches per length and filler rows.
    enc = TextEncoder(batch_size=2)
    target = "a cat sits on the mat"
    same_length = ["a dog sits on the rug", "the bird sat on a box", "a cow lies in the hay"]
    alone_tok, alone_pooled = enc.encode([target])
    n = len(enc.tokenize([target])[0])
    assert all(len(x) == n for x in enc.tokenize(same_length)), "neighbours should share the target's length"
    batches = [
        same_length + [target],
        [target] + same_length,
        same_length[:1] + [target] + SENTENCES,
        SENTENCES + [target, target],
    ]
    for batch in batches:
        toks, pooled = enc.encode(batch)
        for i, text in enumerate(batch):
            if text == target:
                assert np.array_equal(toks[i], alone_tok[0])
                assert np.array_equal(pooled[i], alone_pooled[0])
    # and the same call twice is bit-identical
    a_tok, a_pooled = enc.encode(SENTENCES)
    b_tok, b_pooled = enc.encode(list(reversed(SENTENCES)))
    assert np.array_equal(a_pooled, b_pooled[::-1])
    assert all(np.array_equal(x, y) for x, y in zip(a_tok, reversed(b_tok)))


def test_empty_texts(encoder):
    tokens, pooled = encoder.encode(["", "hello world", "   "])
    assert tokens[0].shape == (0, 384) and tokens[2].shape == (0, 384)
    assert not pooled[0].any() and not pooled[2].any()
    assert tokens[1].shape[0] == 4 and np.isclose(np.linalg.norm(pooled[1]), 1.0)
    tokens, pooled = encoder.encode([])
    assert tokens == [] and pooled.shape == (0, 384)
    tokens, pooled = encoder.encode([""])
    assert tokens[0].shape == (0, 384) and pooled.shape == (1, 384) and not pooled.any()


def test_truncation():
    enc = TextEncoder(max_tokens=8)
    tokens, _ = enc.encode(["one two three four five six seven eight nine ten eleven"])
    assert tokens[0].shape == (8, 384)


def test_encode_runs_with_its_own_thread_count_and_restores_the_process(encoder):
    import torch

    seen = []
    encoder.encode(["warm up"])  # loads the model
    hook = encoder._model.register_forward_pre_hook(lambda module, args: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        encoder.encode(SENTENCES[:2])
        assert torch.get_num_threads() == 2
    finally:
        hook.remove()
        torch.set_num_threads(before)
    assert seen and set(seen) == {encoder.threads} == {1}


def test_tokenizing_in_chunks_gives_the_ids_of_one_call(encoder, monkeypatch):
    from semid_assets.core.features import text_encoder

    texts = ["a cat", "", "the dog sat on a mat", "  ", "x y z", "semantic ids for items"]
    whole = encoder.tokenize(texts)
    monkeypatch.setattr(text_encoder, "_TOKENIZE_CHUNK", 2)
    assert encoder.tokenize(texts) == whole
    assert whole[1] == [] and whole[3] == [] and all(whole[i] for i in (0, 2, 4, 5))


def test_bf16_is_named_apart_and_stays_within_a_cosine_of_fp32(encoder):
    import warnings

    assert TextEncoder(precision="bf16").name == "all-MiniLM-L6-v2-bf16"
    assert TextEncoder(max_tokens=32, precision="bf16").name == "all-MiniLM-L6-v2-max32-bf16"
    with pytest.raises(ValueError, match="precision"):
        TextEncoder(precision="int8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a CPU without native bf16 warns that it is slow
        fast = TextEncoder(batch_size=8, precision="bf16")
        tokens, pooled = fast.encode(SENTENCES)
    ref_tokens, ref_pooled = encoder.encode(SENTENCES)
    assert pooled.dtype == np.float32 and not np.array_equal(pooled, ref_pooled)
    assert (pooled * ref_pooled).sum(1).min() > 0.999
    for t, r in zip(tokens, ref_tokens):
        assert t.shape == r.shape and t.dtype == np.float32
        cos = (t * r).sum(1) / np.linalg.norm(t, axis=1) / np.linalg.norm(r, axis=1)
        assert cos.min() > 0.99


def test_bf16_outputs_do_not_depend_on_the_batch():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        enc = TextEncoder(batch_size=2, precision="bf16")
        target = "a cat sits on the mat"
        alone_tok, alone_pooled = enc.encode([target])
        toks, pooled = enc.encode(["a dog sits on the rug", target, *SENTENCES])
    assert np.array_equal(toks[1], alone_tok[0]) and np.array_equal(pooled[1], alone_pooled[0])


def test_the_precision_and_thread_count_come_from_the_environment():
    from semid_assets.resources import TextEncoderResource
    from semid_assets.settings import Settings

    settings = Settings.from_env({"SEMID_TEXT_PRECISION": "bf16"})
    assert settings.text_precision == "bf16" and Settings.from_env({}).text_precision == "fp32"
    resource = TextEncoderResource(cache_dir="unused", precision=settings.text_precision)
    assert resource.encoder().name == "all-MiniLM-L6-v2-bf16"
    with pytest.raises(ValueError, match="SEMID_TEXT_PRECISION"):
        Settings.from_env({"SEMID_TEXT_PRECISION": "fp8"})
    assert Settings.from_env({"SEMID_TEXT_THREADS": "2"}).text_threads == 2 and Settings.from_env({}).text_threads == 1
    for wrong in ("0", "two", "-1"):
        with pytest.raises(ValueError, match="SEMID_TEXT_THREADS"):
            Settings.from_env({"SEMID_TEXT_THREADS": wrong})


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_batches_in_parallel_give_the_bits_of_one_thread(precision):
    import warnings

    texts = SENTENCES * 3 + ["a dog sits on the rug", "the bird sat on a box", "x"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one_tok, one = TextEncoder(batch_size=2, precision=precision).encode(texts)
        two_tok, two = TextEncoder(batch_size=2, precision=precision, threads=2).encode(texts)
    assert np.array_equal(one, two) and all(np.array_equal(a, b) for a, b in zip(one_tok, two_tok))
