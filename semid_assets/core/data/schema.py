"""Column names and conventions of the tables every stage exchanges.

Item table (one row per item, keyed by ``item_id``):
  - ``item_id``: string or int64, unique.
  - ``created_at``: timestamp (UTC, tz-naive, microseconds): when the item entered the catalogue.
  - text columns: every string column other than ``item_id`` and the ``truth_*`` columns
    (e.g. ``caption``, ``tags``, ``asr``, ``ocr``; MovieLens: ``title``, ``genres``).
    Empty strings / nulls mean "this item has no such text".
  - embedding columns ``emb_<modality>``: precomputed vectors of one modality, either a
    fixed-size list of floats (one token per item) or a list of such lists (several tokens
    per item, e.g. a cover and 5 frames). All vectors of one column share one dimension.
  - ``truth_*`` columns: ground truth for evaluation only (synthetic data). No training
    step may read them.

Interaction table (one row per impression):
  - ``user_id``: string or int64; ``item_id``: same type as the item table's;
  - ``ts``: timestamp (UTC, tz-naive, microseconds); ``label``: int8, 1 positive / 0 negative.

Sources bring both timestamp columns to that convention when they read their files
(``timestamps.py``: zones converted to UTC, naive values taken as UTC, numbers read as
Unix seconds).

Month keys are ``YYYY-MM`` strings; a month's snapshot holds everything with a timestamp
strictly before the first instant of the next month.
"""

from __future__ import annotations

ITEM_ID = "item_id"
CREATED_AT = "created_at"
USER_ID = "user_id"
TS = "ts"
LABEL = "label"

EMBEDDING_PREFIX = "emb_"
TRUTH_PREFIX = "truth_"

ITEM_REQUIRED = (ITEM_ID, CREATED_AT)
INTERACTION_REQUIRED = (USER_ID, ITEM_ID, TS, LABEL)

# Synthetic-platform ground truth, coarse to fine, plus the hidden co-consumption community.
TRUTH_CATEGORY = "truth_category"
TRUTH_SUBCATEGORY = "truth_subcategory"
TRUTH_TOPIC = "truth_topic"
TRUTH_COMMUNITY = "truth_community"
