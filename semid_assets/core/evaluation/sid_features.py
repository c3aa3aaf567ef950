"""Item features for a ranking model: hashed ids, N-gram and SentencePiece sub-words of a semantic ID.

Every feature is a *bag* of row indices into one embedding table: an item is
represented by the sum of its rows (Singh et al., "Better Generalization with Semantic
IDs"). Bags are int64 ``[n_items, width]`` with ``-1`` padding; ``rows`` is the table
size. A table never exceeds its budget: features whose natural vocabulary is larger
(random hashing of item ids, bigrams of 256-code levels) are hashed into it.

- ``hash_bags``: one row per item id, hashed — the baseline; an item first seen at
  serving time lands on a row it shares with unrelated items, or on the OOV row.
- ``id_bags``: one row per item, no hashing — the unconstrained item-ID reference.
- ``ngram_bags``: overlapping windows of ``n`` consecutive codes (unigram: ``c1, c2,
  c3``; bigram: ``c1c2, c2c3``), each window position its own vocabulary.
- ``SidPieces``: a SentencePiece model trained on the SID "sentences" of the training
  catalogue picks variable-length runs of codes by frequency within a vocabulary
  budget; an item's pieces are its bag.

A SID is written as a string with one private-use Unicode character per (level, code),
so the same code number on two levels is two symbols and a piece is a run of codes.

Features the training never reached (``fold_rare_rows``): an n-gram, piece or hashed id
that no item the ranker trains on carries would keep an untrained row. Such a row is not
"no information": it is its own random vector, shrunk by weight decay but different for
every feature, so each cold item gets an arbitrary score offset of its own. Every such
feature shares one *OOV row* instead, which starts at zero. With ``min_items = 1`` nothing
trains it: an unseen n-gram adds nothing, the same for every unseen n-gram, and the item
is represented by the n-grams it shares with trained items. With ``min_items >= 2`` the
features that fewer trained items carry share it too and train it: it learns what a rare
feature is worth, at the price of the rows that told those items apart.

A shared row was chosen over backing off to the unigram rows because

- it costs one row, so the variants still compare at one budget, whereas unigram rows
  would take ``levels × K`` rows of a bigram table's budget (most of it at small budgets),
  and they would be trained only by the rare bigrams that fall back on them;
- the variants stay apart: what the unigrams know is what ``sid_unigram`` measures.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["hash_bags", "id_bags", "ngram_bags", "sid_strings", "SidPieces", "bag_width", "fold_rare_rows", "Folded"]

# Supplementary Private Use Area-A then -B: 2 × 65,534 symbols no text normaliser touches.
_PUA_RANGES = ((0xF0000, 0xFFFFD), (0x100000, 0x10FFFD))
_MAX_SYMBOLS = sum(hi - lo + 1 for lo, hi in _PUA_RANGES)


def _stable_hash(values: np.ndarray, salt: str) -> np.ndarray:
    """uint64 hashes that depend only on the values and the salt (pandas' SipHash with a fixed key)."""
    key = (salt + "0123456789abcdef")[:16]
    return pd.util.hash_array(np.asarray(values), hash_key=key, categorize=False).astype(np.uint64)


def hash_bags(item_ids: np.ndarray, table_size: int, salt: str = "semid-item") -> tuple[np.ndarray, int]:
    """One hashed row per item id: ``([n, 1], table_size)``."""
    _check_table(table_size)
    ids = np.asarray(item_ids).astype(str).astype(object)
    rows = (_stable_hash(ids, salt) % np.uint64(table_size)).astype(np.int64)
    return rows[:, None], int(table_size)


def id_bags(n_items: int) -> tuple[np.ndarray, int]:
    """One row per catalogue item, no hashing: the unconstrained item-ID model's features."""
    return np.arange(int(n_items), dtype=np.int64)[:, None], int(max(n_items, 1))


def _check_codes(codes: np.ndarray, codebook_size: int) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] < 1 or not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"codes must be an integer array [n_items, levels], got {codes.dtype} {codes.shape}")
    if codes.size and (codes.min() < 0 or codes.max() >= codebook_size):
        raise ValueError(f"codes must lie in [0, {codebook_size - 1}] (the codebook size), "
                         f"found [{int(codes.min())}, {int(codes.max())}]")
    return codes.astype(np.int64)


def _check_table(table_size: int) -> None:
    if int(table_size) < 1:
        raise ValueError(f"table_size must be a positive number of rows, got {table_size}")


def ngram_bags(codes: np.ndarray, n: int, codebook_size: int, table_size: int) -> tuple[np.ndarray, int]:
    """Windows of ``n`` consecutive codes, one feature per window position.

    The natural vocabulary is ``(L − n + 1) · K^n`` rows; when that exceeds
    ``table_size`` the windows are hashed into ``table_size`` rows.
    """
    codes = _check_codes(codes, codebook_size)
    _check_table(table_size)
    levels = codes.shape[1]
    if not 1 <= n <= levels:
        raise ValueError(f"n must be between 1 and the number of levels ({levels}), got {n}")
    windows = levels - n + 1
    per_window = codebook_size ** n
    natural = windows * per_window
    ids = np.zeros((len(codes), windows), dtype=np.int64)
    for start in range(windows):
        value = np.zeros(len(codes), dtype=np.int64)
        for level in range(start, start + n):
            value = value * codebook_size + codes[:, level]
        ids[:, start] = start * per_window + value
    if natural <= table_size:
        return ids, int(natural)
    hashed = _stable_hash(ids.reshape(-1).astype(np.uint64), f"semid-{n}gram") % np.uint64(table_size)
    return hashed.astype(np.int64).reshape(ids.shape), int(table_size)


def sid_strings(codes: np.ndarray, codebook_size: int) -> list[str]:
    """Each SID as a string of one private-use character per (level, code)."""
    codes = _check_codes(codes, codebook_size)
    levels = codes.shape[1]
    if levels * codebook_size > _MAX_SYMBOLS:
        raise ValueError(f"{levels} levels × {codebook_size} codes exceed the {_MAX_SYMBOLS} symbols "
                         f"SentencePiece features can spell; use fewer levels or codes.")
    symbol = (np.arange(levels) * codebook_size)[None, :] + codes
    first_size = _PUA_RANGES[0][1] - _PUA_RANGES[0][0] + 1
    points = np.where(symbol < first_size, _PUA_RANGES[0][0] + symbol, _PUA_RANGES[1][0] + symbol - first_size)
    return ["".join(map(chr, row)) for row in points.tolist()]


def _codes_of_string(text: str, codebook_size: int) -> list[tuple[int, int]]:
    first_size = _PUA_RANGES[0][1] - _PUA_RANGES[0][0] + 1
    out = []
    for char in text:
        point = ord(char)
        symbol = point - _PUA_RANGES[0][0] if point <= _PUA_RANGES[0][1] else point - _PUA_RANGES[1][0] + first_size
        out.append(divmod(symbol, codebook_size))
    return out


class SidPieces:
    """A SentencePiece model over semantic IDs, trained in memory and deterministic.

    ``vocab_size`` is the budget (pieces, including the unknown piece); training uses one
    thread, fixed options and the input order, so the same SIDs give the same model.
    When the SIDs do not support that many pieces, the model is smaller
    (``hard_vocab_limit=False``); ``rows`` is the size it reached.
    """

    def __init__(self, proto: bytes, codebook_size: int, levels: int):
        import sentencepiece as spm

        self.proto = proto
        self.codebook_size = int(codebook_size)
        self.levels = int(levels)
        self._processor = spm.SentencePieceProcessor(model_proto=proto)

    @classmethod
    def fit(cls, codes: np.ndarray, codebook_size: int, vocab_size: int, model_type: str = "unigram") -> "SidPieces":
        import sentencepiece as spm

        codes = _check_codes(codes, codebook_size)
        if not len(codes):
            raise ValueError("SentencePiece needs at least one training SID")
        sentences = sid_strings(codes, codebook_size)
        symbols = len(set("".join(sentences)))
        if vocab_size <= symbols:
            raise ValueError(f"vocab_size {vocab_size} leaves no room for multi-code pieces: the training SIDs "
                             f"already use {symbols} distinct (level, code) symbols; raise it above {symbols}.")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=model, vocab_size=int(vocab_size),
            model_type=model_type, character_coverage=1.0, normalization_rule_name="identity",
            add_dummy_prefix=False, remove_extra_whitespaces=False, split_by_whitespace=False,
            max_sentencepiece_length=codes.shape[1], hard_vocab_limit=False, num_threads=1,
            shuffle_input_sentence=False, input_sentence_size=0, bos_id=-1, eos_id=-1, unk_id=0,
            minloglevel=2)
        return cls(model.getvalue(), codebook_size, codes.shape[1])

    @property
    def rows(self) -> int:
        return int(self._processor.get_piece_size())

    def encode(self, codes: np.ndarray) -> list[list[int]]:
        """Piece ids of each SID; a code the training SIDs never used maps to the unknown piece (0)."""
        codes = _check_codes(codes, self.codebook_size)
        if codes.shape[1] != self.levels:
            raise ValueError(f"this model was trained on {self.levels}-level SIDs, got {codes.shape[1]} levels")
        return self._processor.encode(sid_strings(codes, self.codebook_size), out_type=int)

    def pieces(self, codes: np.ndarray) -> list[list[tuple[int, ...]]]:
        """Each SID as its pieces, every piece the tuple of codes it spans."""
        out = []
        for ids in self.encode(codes):
            row = []
            for piece_id in ids:
                text = self._processor.id_to_piece(piece_id)
                row.append(tuple(code for _, code in _codes_of_string(text, self.codebook_size))
                           if not self._processor.is_unknown(piece_id) else ())
            out.append(row)
        return out

    def bags(self, codes: np.ndarray) -> tuple[np.ndarray, int]:
        return _pad(self.encode(codes)), self.rows


def _pad(rows: list[list[int]]) -> np.ndarray:
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), max(width, 1)), -1, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def bag_width(bags: np.ndarray) -> float:
    """Mean number of features per item (non-padding entries)."""
    return float((bags >= 0).sum(axis=1).mean()) if len(bags) else 0.0


@dataclass(frozen=True)
class Folded:
    """Bags after ``fold_rare_rows``: rows renumbered densely, the OOV row last."""

    bags: np.ndarray
    rows: int  # table rows, the OOV row included
    oov_row: int
    kept_rows: int  # feature rows that enough trained items carry
    folded_rows: int  # feature rows sent to the OOV row (carried by some item, too few trained ones)


def fold_rare_rows(bags: np.ndarray, rows: int, trained: np.ndarray, min_items: int = 1) -> Folded:
    """Send every row that fewer than ``min_items`` trained items carry to one shared OOV row.

    ``bags`` int64 ``[n_items, width]`` (-1 padding) over a table of ``rows`` rows;
    ``trained`` is a bool per item: the ranker trains on it. The rows kept are renumbered
    ``0 … kept_rows − 1`` in their original order and the OOV row is ``kept_rows``, so
    the folded table has ``kept_rows + 1 <= rows + 1`` rows. An item counts once per row
    however often the row appears in its bag. See the module docstring for why.
    """
    bags = np.asarray(bags, dtype=np.int64)
    trained = np.asarray(trained, dtype=bool)
    if bags.ndim != 2 or trained.shape != (len(bags),):
        raise ValueError(f"need bags [n_items, width] and one trained flag per item, got {bags.shape} "
                         f"and {trained.shape}")
    if int(min_items) < 1:
        raise ValueError(f"min_items must be at least 1, got {min_items}")
    if bags.size and bags.max() >= rows:
        raise ValueError(f"bag entries reach {int(bags.max())} but the table has {rows} rows")
    carriers = np.zeros(rows, dtype=np.int64)
    for column_rows in _distinct_rows(bags[trained]):
        carriers += np.bincount(column_rows, minlength=rows)
    kept = carriers >= int(min_items)
    new_index = np.cumsum(kept) - 1
    oov = int(kept.sum())
    present = bags >= 0
    safe = np.where(present, bags, 0)
    folded = np.where(present, np.where(kept[safe], new_index[safe], oov), -1)
    used = np.zeros(rows, dtype=bool)
    used[bags[present]] = True
    return Folded(folded.astype(np.int64), oov + 1, oov, oov, int((used & ~kept).sum()))


def _distinct_rows(bags: np.ndarray):
    """Per bag column, the rows of items whose row differs from the earlier columns' (each item once per row)."""
    for column in range(bags.shape[1]):
        row = bags[:, column]
        fresh = row >= 0
        for earlier in range(column):
            fresh &= row != bags[:, earlier]
        yield row[fresh]
