"""Schemas of every table vsearch exchanges (docs/data_contracts.md), in one place.

Why one module: the demo-world generator writes these tables, ``vsearch ingest`` reads drops in
this format, the Great Expectations suites are derived from it and mining/training read it. If a
column changes, it changes here and every side follows.

A *drop* is a folder::

    DROP/
      drop.json                 optional: {"drop_id": ..., "kind": "snapshot" | "delta",
                                           "created_at": ..., "source": ...}
      catalog.parquet|.csv
      queries.parquet|.csv
      impressions.parquet|.csv
      removed.parquet|.csv      delta drops only, optional: listings taken down
      images/...                image files, referenced by path relative to DROP/

A *snapshot* carries the whole catalog; a *delta* carries only new and changed listings and the
ids of removed ones, with the click logs since the previous drop. Ingested drops are recorded,
oldest first, in the drop ledger (:func:`read_ledger`), which is also the validation history.

Ground truth (demo world only) is written to a *separate* folder that only evaluation reads::

    TRUTH/
      query_truth.parquet       query_id, sku, box_x0, box_y0, box_x1, box_y1 (pixels)
      item_truth.parquet        item_id, sku
      products.parquet          sku, category, lookalike_group, attributes
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

TS = pa.timestamp("us", tz="UTC")
DROP_MANIFEST = "drop.json"
IMAGES_DIR = "images"
SNAPSHOT = "snapshot"
DELTA = "delta"
DROP_KINDS = (SNAPSHOT, DELTA)


def unsafe_image_path(root: Path, rel: str) -> str | None:
    """Why the table path ``rel`` may not be followed from the drop folder ``root``, or
    ``None`` when it names a place inside it.

    Why here, in the contract: validation refuses such a drop (``image_path_safe``), and the
    ingest and the window, which copy or link every referenced file, check again before
    touching one; all three apply this one rule. A path is refused when it is absolute, has a
    ``..`` part, a backslash or a NUL, or leads (through any symlink) outside ``root``. Nothing
    here opens the file.
    """
    if "\x00" in rel or "\\" in rel:
        return "path has a NUL or backslash character"
    candidate = Path(rel)
    if candidate.is_absolute():
        return "absolute path (image paths are relative to the drop folder)"
    if ".." in candidate.parts:
        return "path has a '..' part (image paths stay inside the drop folder)"
    base = Path(root).resolve()
    try:
        full = (base / candidate).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        return f"path cannot be resolved: {exc}"
    if not full.is_relative_to(base):
        return "path leads outside the drop folder (a symlink)"
    return None


@dataclass(frozen=True)
class Column:
    """One column: arrow type, whether nulls are allowed, a short meaning for docs and reports."""

    name: str
    type: pa.DataType
    nullable: bool = False
    doc: str = ""
    required: bool = True  # optional columns (``dwell_ms?``) may be absent from a drop


@dataclass(frozen=True)
class TableContract:
    """A table's name, columns and primary key."""

    name: str
    columns: tuple[Column, ...]
    key: str | None = None
    doc: str = ""
    _by_name: dict[str, Column] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {c.name: c for c in self.columns})

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_names(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        return self._by_name[name]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns])

    def empty(self) -> pd.DataFrame:
        """An empty frame with this contract's columns and dtypes."""
        return self.schema.empty_table().to_pandas()


CATALOG = TableContract(
    name="catalog",
    key="item_id",
    doc="one row per listing; several sellers may list the same product",
    columns=(
        Column("item_id", pa.string(), doc="listing id, unique"),
        Column("category", pa.string(), doc="seller-assigned category"),
        Column("seller_id", pa.string()),
        Column("title", pa.string()),
        Column("price", pa.float64(), doc="price, > 0"),
        Column("image", pa.string(), doc="path relative to the drop folder"),
        Column("listed_at", TS, doc="UTC"),
        Column("quality", pa.float64(), doc="content quality score 0..1"),
        Column("sales", pa.int64(), doc="units sold, >= 0"),
        Column(
            "stock",
            pa.int64(),
            nullable=True,
            required=False,
            doc="units in stock, >= 0; absent or null = unknown (passes an in-stock filter)",
        ),
    ),
)

QUERIES = TableContract(
    name="queries",
    key="query_id",
    doc="a search request as logged",
    columns=(
        Column("query_id", pa.string()),
        Column("image", pa.string(), doc="path relative to the drop folder"),
        Column("user_id", pa.string()),
        Column("session_id", pa.string()),
        Column("ts", TS),
        Column("predicted_category", pa.string(), doc="what the engine predicted at the time"),
        Column(
            "selected_category",
            pa.string(),
            nullable=True,
            required=False,
            doc="category the user picked, if any",
        ),
    ),
)

IMPRESSIONS = TableContract(
    name="impressions",
    key="event_id",
    doc="one row per shown result",
    columns=(
        Column("event_id", pa.string()),
        Column("query_id", pa.string(), doc="-> queries.query_id"),
        Column("session_id", pa.string()),
        Column("item_id", pa.string(), doc="-> catalog.item_id"),
        Column("position", pa.int64(), doc="0-based rank shown"),
        Column("clicked", pa.bool_()),
        Column(
            "click_order",
            pa.int64(),
            nullable=True,
            doc="0 = first click, 1.. = switch clicks; null if not clicked",
        ),
        Column("dwell_ms", pa.int64(), nullable=True, required=False),
        Column("ts", TS),
    ),
)

QUERY_TRUTH = TableContract(
    name="query_truth",
    key="query_id",
    doc="demo only: the product in each query photo and its box in pixels",
    columns=(
        Column("query_id", pa.string()),
        Column("sku", pa.string()),
        Column("box_x0", pa.float64()),
        Column("box_y0", pa.float64()),
        Column("box_x1", pa.float64()),
        Column("box_y1", pa.float64()),
    ),
)

ITEM_TRUTH = TableContract(
    name="item_truth",
    key="item_id",
    doc="demo only: the product behind each listing",
    columns=(Column("item_id", pa.string()), Column("sku", pa.string())),
)

PRODUCTS_TRUTH = TableContract(
    name="products",
    key="sku",
    doc="demo only: each product's attributes; look-alikes share lookalike_group",
    columns=(
        Column("sku", pa.string()),
        Column("category", pa.string()),
        Column("lookalike_group", pa.string()),
        Column("attributes", pa.string(), doc="JSON of the rendering attributes"),
    ),
)

REMOVED = TableContract(
    name="removed",
    key="item_id",
    doc="delta drops only (optional table): listings taken down since the previous drop",
    columns=(
        Column("item_id", pa.string(), doc="-> catalog.item_id of an earlier drop"),
        Column("removed_at", TS, nullable=True, required=False, doc="UTC, when known"),
    ),
)

DROP_TABLES: tuple[TableContract, ...] = (CATALOG, QUERIES, IMPRESSIONS)
OPTIONAL_DROP_TABLES: tuple[TableContract, ...] = (REMOVED,)
TRUTH_TABLES: tuple[TableContract, ...] = (QUERY_TRUTH, ITEM_TRUTH, PRODUCTS_TRUTH)


class ContractError(ValueError):
    """A table file is missing or cannot be read in the contract format."""


def conform(df: pd.DataFrame, contract: TableContract) -> pa.Table:
    """Cast a frame to the contract's arrow schema (column order fixed, extras dropped).

    Raises ``ContractError`` naming the column when a required one is missing or does not cast.
    Used by writers, so what we write is always in contract format.
    """
    missing = [n for n in contract.required_names if n not in df.columns]
    if missing:
        raise ContractError(f"{contract.name}: missing required column(s) {missing}")
    arrays, fields = [], []
    for col in contract.columns:
        if col.name not in df.columns:
            continue
        try:
            arr = pa.array(df[col.name], type=col.type, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            raise ContractError(
                f"{contract.name}.{col.name}: cannot be read as {col.type}: {exc}"
            ) from None
        arrays.append(arr)
        fields.append(pa.field(col.name, col.type, nullable=col.nullable))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def write_table(df: pd.DataFrame, contract: TableContract, folder: Path) -> Path:
    """Write ``folder/<name>.parquet`` in contract format."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{contract.name}.parquet"
    pq.write_table(conform(df, contract), path)
    return path


def table_path(folder: Path, contract: TableContract) -> Path:
    """The file of a table in a drop: Parquet preferred, CSV accepted."""
    for ext in (".parquet", ".csv"):
        p = folder / f"{contract.name}{ext}"
        if p.is_file():
            return p
    raise ContractError(
        f"{folder}: no {contract.name}.parquet or {contract.name}.csv "
        f"(a drop needs {', '.join(t.name for t in DROP_TABLES)})"
    )


def read_raw_arrow(folder: Path, contract: TableContract) -> pa.Table:
    """Read a table *as stored*, keeping Arrow types, so validation sees what is really there.

    Parquet keeps its stored types (a nullable int column stays int, which pandas would turn
    into floats); CSV types are inferred by pyarrow (a string in an integer column stays
    visible as a string column).
    """
    path = table_path(folder, contract)
    try:
        if path.suffix == ".csv":
            opts = pacsv.ConvertOptions(strings_can_be_null=True)
            return pacsv.read_csv(path, convert_options=opts)
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ContractError(f"{path}: unreadable {contract.name} table: {exc}") from None


def read_raw(folder: Path, contract: TableContract) -> pd.DataFrame:
    """:func:`read_raw_arrow` as a pandas frame, without casting to the contract."""
    return read_raw_arrow(folder, contract).to_pandas()


def read_table(folder: Path, contract: TableContract) -> pd.DataFrame:
    """Read a table and cast it to the contract (raises ``ContractError`` if it does not fit)."""
    return conform(read_raw(folder, contract), contract).to_pandas()


def read_drop_manifest(folder: Path) -> dict:
    """The optional ``drop.json`` of a drop (empty dict if absent)."""
    p = folder / DROP_MANIFEST
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ContractError(f"{p}: not valid JSON: {exc}") from None


def has_table(folder: Path, contract: TableContract) -> bool:
    """Whether ``folder`` holds the (optional) table ``contract`` in Parquet or CSV."""
    return any((folder / f"{contract.name}{ext}").is_file() for ext in (".parquet", ".csv"))


def drop_kind(manifest: dict) -> str:
    """``snapshot`` (the default) or ``delta``, from a drop's ``drop.json``.

    Raises:
        ContractError: ``kind`` is something else.
    """
    kind = manifest.get("kind") or SNAPSHOT
    if kind not in DROP_KINDS:
        raise ContractError(
            f"drop.json: kind {kind!r} is not one of {', '.join(DROP_KINDS)} "
            "(a snapshot carries the whole catalog, a delta only what changed)"
        )
    return str(kind)


def read_ledger(path: Path) -> list[dict]:
    """The drop ledger: one record per drop ingested into this project, oldest first.

    Why a committed file beside ``data/raw``: it is what the nightly reads to know which drops
    are new, what the window of drops is made from, and the validation history (only drops
    that were really ingested, never dry runs of ``vsearch validate``). Each record holds
    ``drop_id``, ``kind``, ``created_at``, ``ingested_at``, ``dvc_hash``, ``source`` and the
    validation ``stats`` (rows, clicks, CTR). A missing file is an empty ledger.

    Raises:
        ContractError: the file is not a JSON list of records.
    """
    path = Path(path)
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ContractError(f"{path}: drop ledger is not valid JSON: {exc}") from None
    records = data.get("drops") if isinstance(data, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ContractError(f"{path}: drop ledger must be {{'drops': [{{...}}, ...]}}")
    return records


def contracts_markdown() -> str:
    """Every contract as markdown tables: ``docs/data_contracts.md`` embeds this verbatim and a
    test keeps the two in sync, so the docs cannot drift from the code."""
    out: list[str] = []
    for contract in (*DROP_TABLES, *OPTIONAL_DROP_TABLES, *TRUTH_TABLES):
        out += [
            f"### `{contract.name}`",
            "",
            f"{contract.doc}; key `{contract.key}`.",
            "",
            "| column | type | nulls | required | meaning |",
            "| --- | --- | --- | --- | --- |",
        ]
        for c in contract.columns:
            out.append(
                f"| {c.name} | {c.type} | {'yes' if c.nullable else 'no'} | "
                f"{'yes' if c.required else 'no'} | {c.doc} |"
            )
        out.append("")
    return "\n".join(out)


NO_TRUTH_FILE = "no_truth.json"  # marks a drop's truth folder as empty: the drop came without


def has_truth(folder: Path | None) -> bool:
    """Whether ``folder`` holds every ground-truth table (demo worlds; real shops have none).

    A drop ingested without truth gets a truth folder holding only :data:`NO_TRUTH_FILE`
    (written by ingest); the window's merged truth (``data/window.truth``) holds only that
    marker unless every drop of the window has truth, so the pipeline stages depend on it
    always and decide from its content: oracle skipped, evaluation on click metrics only.
    """
    if folder is None or not Path(folder).is_dir():
        return False
    return all(
        any((Path(folder) / f"{t.name}{ext}").is_file() for ext in (".parquet", ".csv"))
        for t in TRUTH_TABLES
    )
