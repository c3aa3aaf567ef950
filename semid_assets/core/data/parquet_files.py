"""Reading a Parquet file a user brings: a missing, corrupt or non-Parquet file is one clear refusal."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from semid_assets.core.data.errors import ContractError


def read_parquet_file(path: str | Path, role: str) -> pa.Table:
    """The whole table in ``path``; ``role`` says what the file is for (e.g. "the items file")."""
    path = Path(path)
    if not path.is_file():
        raise ContractError(f"{role} {str(path)!r} does not exist or is not a file; check the path.")
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        # pyarrow repeats the path before its reason; the message names the file once.
        reason = str(exc).strip().split("': ", 1)[-1]
        raise ContractError(
            f"{role} {str(path)!r} is not readable Parquet ({reason}); write it again with "
            f"pandas.DataFrame.to_parquet or pyarrow.parquet.write_table — a CSV or JSON file renamed to "
            f".parquet, or a copy cut short, gives this error."
        ) from exc
