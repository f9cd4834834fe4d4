"""A drop's tables as found, the views the checks run on, and the cast to the contract.

Why three views of one table: the *schema* checks must see the types the file really holds (a
Parquet ``position`` stored as strings is a broken exporter even if every value looks like a
number), so they run on plain Python values straight from Arrow; the *content* checks need
contract-typed columns to compare, join and group; and what flows on (``clean``) is exactly what
:func:`vsearch.contracts.read_table` would give a reader of ``data/raw``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from vsearch.contracts import (
    ContractError,
    TableContract,
    drop_kind,
    read_drop_manifest,
)
from vsearch.errors import BadInput

_DROP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

# Python value types (GX ``type_list`` names) that each contract type accepts as "castable".
# Strings accept ints because a CSV drop cannot say that the id "123" is text; floats accept
# ints for the same reason ("10" is a valid price). Ints accept floats because pandas stores a
# nullable int column (``click_order``) as float64 and writes it back to Parquet/CSV as such;
# a float with a fraction (1.5) is then refused by the safe cast (``contract_cast``).
# Timestamps arrive as ``pd.Timestamp`` because :func:`schema_frame` converts them (GX cannot
# name ``datetime.datetime``).
_TYPE_LISTS: dict[str, list[str]] = {
    "string": ["str", "int"],
    "int64": ["int", "float"],
    "double": ["float", "int"],
    "bool": ["bool"],
    "timestamp": ["Timestamp"],
}


class CastError(ContractError):
    """A column of a table did not cast to its contract type (``column`` names it)."""

    def __init__(self, message: str, column: str) -> None:
        super().__init__(message)
        self.column = column


def check_drop_id(drop_id: str) -> str:
    """Drop ids become folder names and DVC paths: letters, digits, ``._-`` only."""
    if not _DROP_ID.match(drop_id):
        raise BadInput(
            f"drop id {drop_id!r} is not usable as a folder name: use letters, digits, '.', '_' "
            "and '-' (set drop_id in the drop's drop.json or rename the folder)"
        )
    return drop_id


def drop_id_of(drop: Path) -> str:
    """The drop's id: ``drop.json``'s ``drop_id`` if present, else the folder name.

    Raises:
        BadInput: the folder does not exist or its ``drop.json`` is not valid JSON.
    """
    drop = Path(drop)
    if not drop.is_dir():
        raise BadInput(f"drop folder not found: {drop.resolve()} (pass a folder in drop format)")
    try:
        manifest = read_drop_manifest(drop)
    except ContractError as exc:
        raise BadInput(f"{exc} (fix or delete drop.json)") from None
    drop_id = manifest.get("drop_id") if isinstance(manifest, dict) else None
    return str(drop_id) if drop_id else drop.resolve().name


def drop_manifest_of(drop: Path) -> dict:
    """The drop's ``drop.json`` (empty if absent), its ``kind`` checked.

    Raises:
        BadInput: ``drop.json`` is not valid JSON or names an unknown kind.
    """
    try:
        manifest = read_drop_manifest(Path(drop))
        if not isinstance(manifest, dict):
            raise ContractError(f"{Path(drop) / 'drop.json'}: must hold a JSON object")
        drop_kind(manifest)
    except ContractError as exc:
        raise BadInput(f"{exc} (fix drop.json)") from None
    return manifest


def type_family(dtype: pa.DataType) -> str:
    """The key of :data:`_TYPE_LISTS` for a contract column type."""
    if pa.types.is_timestamp(dtype):
        return "timestamp"
    return str(dtype)


def type_list(dtype: pa.DataType) -> list[str]:
    """GX ``type_list`` of Python value types accepted for a contract column type."""
    return _TYPE_LISTS[type_family(dtype)]


def _python_values(column: pa.ChunkedArray) -> pd.Series:
    values = column.to_pylist()
    if pa.types.is_timestamp(column.type):
        values = [None if v is None else pd.Timestamp(v) for v in values]
    return pd.Series(values, dtype=object)


def schema_frame(table: pa.Table, contract: TableContract) -> pd.DataFrame:
    """Contract columns present in ``table`` as object columns of plain Python values.

    Why object columns: GX checks the type of every value in an object column (and reports the
    offending rows), whereas on typed columns it compares dtype names, which breaks on pandas 3
    extension dtypes (``str``, ``datetime64[us, UTC]``).
    """
    present = [c.name for c in contract.columns if c.name in table.column_names]
    return pd.DataFrame({name: _python_values(table.column(name)) for name in present})


def cast_table(table: pa.Table, contract: TableContract) -> pd.DataFrame:
    """Cast the contract columns present in ``table`` to the contract types (extras dropped).

    Timestamps are cast unsafely so that sub-microsecond digits are truncated rather than
    refused; every other cast is safe (``1.5`` never becomes position ``1``).

    Raises:
        CastError: a column does not cast; the message and ``column`` name it.
    """
    arrays, fields = [], []
    for col in contract.columns:
        if col.name not in table.column_names:
            continue
        data = table.column(col.name)
        try:
            both_ts = pa.types.is_timestamp(col.type) and pa.types.is_timestamp(data.type)
            if both_ts and data.type.tz is None:  # naive timestamps are UTC by contract
                data = pc.assume_timezone(data, "UTC")
            arrays.append(pc.cast(data, col.type, safe=not both_ts))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise CastError(
                f"{contract.name}.{col.name}: cannot be cast from {data.type} to {col.type}: {exc}",
                col.name,
            ) from None
        fields.append(pa.field(col.name, col.type, nullable=col.nullable))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields)).to_pandas()


def uncastable(values: pd.Series, dtype: pa.DataType) -> pd.Series:
    """Which non-null values could not be read as ``dtype`` even from their text form.

    Why: when a CSV column holds one ``"abc"`` among numbers, the whole column is stored as text
    and every row fails the type check; this finds the rows a person must actually fix.
    """
    present = values.notna()
    text = (
        values.astype(object).where(present, None).map(lambda v: v if v is None else str(v).strip())
    )
    family = type_family(dtype)
    if family in ("int64", "double"):
        parsed = pd.to_numeric(text, errors="coerce")
        bad = parsed.isna()
        if family == "int64":
            bad |= parsed.notna() & (parsed % 1 != 0)
    elif family == "timestamp":
        bad = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601").isna()
    elif family == "bool":
        bad = ~text.str.lower().isin(["true", "false", "1", "0"])
    else:
        bad = pd.Series(False, index=values.index)
    return present & bad
