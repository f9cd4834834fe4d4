"""Filters a shop expects on a search: price range, sellers, in stock (category: see below).

Why a module of its own: the service's form fields, the batch API's JSON, the web page and
``vsearch search`` all take the same filters and must refuse the same bad ones with the same
message, and the pipeline must turn them into the same set of allowed listings. A filter is
applied *inside* the search (the engine only looks at listings that pass it, see
:meth:`vsearch.index.engine.Engine.search`), so ``k`` results come back whenever ``k``
matching listings exist; it is never a post-filter of an unfiltered top-k.

Meaning of each filter (documented in docs/operations.md#filters):

* ``price_min`` / ``price_max``: inclusive bounds; a listing without a known price never
  passes a price bound.
* ``sellers``: one or several seller ids; a listing passes when its seller is one of them.
* ``in_stock``: ``True`` keeps listings whose ``stock`` is > 0 *or unknown* (no ``stock``
  column in the catalog, or a null) and drops those whose stock is 0 (or below); ``False`` or
  absent: no stock filter.
* the category is not a field of :class:`SearchFilter`: a chosen category (one or several)
  replaces the routed categories, as it did before filters existed.

A listing the served catalog has no row for (written live without metadata) never passes a
filter. Every refusal is a :class:`~vsearch.errors.BadInput` naming the field and the value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vsearch.errors import BadInput

STOCK = "stock"  # the optional catalog column (contracts.CATALOG)
FILTER_FIELDS = ("price_min", "price_max", "seller", "in_stock")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class BadFilter(BadInput):
    """A filter the caller got wrong (HTTP 422, exit 2)."""


@dataclass(frozen=True)
class SearchFilter:
    """Conditions on catalog fields a result must meet (hashable: equal filters share work).

    Build it with :meth:`parse` from raw values (form text, JSON, CLI options); the
    constructor checks the already-typed values.
    """

    price_min: float | None = None
    price_max: float | None = None
    sellers: tuple[str, ...] = ()
    in_stock: bool = False

    def __post_init__(self) -> None:
        for name in ("price_min", "price_max"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise BadFilter(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise BadFilter(f"{name} must be a finite number >= 0, got {value!r}")
        if (
            self.price_min is not None
            and self.price_max is not None
            and self.price_min > self.price_max
        ):
            raise BadFilter(
                f"price_min {self.price_min} is above price_max {self.price_max}: no price fits"
            )
        if not isinstance(self.sellers, tuple) or not all(
            isinstance(s, str) and s for s in self.sellers
        ):
            raise BadFilter(f"seller must be non-empty text ids, got {self.sellers!r}")
        if not isinstance(self.in_stock, bool):
            raise BadFilter(f"in_stock must be true or false, got {self.in_stock!r}")

    @property
    def active(self) -> bool:
        """Whether the filter restricts anything."""
        return bool(
            self.price_min is not None
            or self.price_max is not None
            or self.sellers
            or self.in_stock
        )

    def describe(self) -> dict[str, Any]:
        """The filter as JSON (what a response says it searched with)."""
        out: dict[str, Any] = {}
        if self.price_min is not None:
            out["price_min"] = self.price_min
        if self.price_max is not None:
            out["price_max"] = self.price_max
        if self.sellers:
            out["seller"] = list(self.sellers)
        if self.in_stock:
            out["in_stock"] = True
        return out

    @classmethod
    def parse(
        cls,
        price_min: Any = None,
        price_max: Any = None,
        seller: Any = None,
        in_stock: Any = None,
    ) -> SearchFilter | None:
        """A filter from raw values (text from a form or the command line, or JSON values);
        ``None`` when nothing restricts.

        Args:
            price_min, price_max: a number or its text; empty or ``None``: no bound.
            seller: one id, or a list of ids (a form repeats the field); empty: any seller.
            in_stock: ``true``/``false`` (also ``1``/``0``, ``yes``/``no``, ``on``/``off``,
                a JSON bool); empty: no stock filter.

        Raises:
            BadFilter: a value of the wrong type, a negative or non-finite price,
                ``price_min > price_max``.
        """
        f = cls(
            _number(price_min, "price_min"),
            _number(price_max, "price_max"),
            _sellers(seller),
            _flag(in_stock, "in_stock"),
        )
        return f if f.active else None

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> SearchFilter | None:
        """A filter from a mapping of the fields :data:`FILTER_FIELDS` (unknown keys refused)."""
        unknown = sorted(set(raw) - set(FILTER_FIELDS))
        if unknown:
            raise BadFilter(f"unknown filter field(s) {unknown}; known: {list(FILTER_FIELDS)}")
        return cls.parse(**{k: raw.get(k) for k in FILTER_FIELDS})

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """``bool[len(frame)]``: the catalog rows that pass (a frame with the contract's
        ``price`` and ``seller_id`` columns and, optionally, ``stock``)."""
        codes, names = pd.factorize(frame["seller_id"].astype(str), sort=False)
        wanted = pd.Index(names).get_indexer(list(self.sellers))
        stock = None
        if STOCK in frame.columns:
            stock = pd.to_numeric(frame[STOCK], errors="coerce").to_numpy(
                np.float64, na_value=np.nan
            )
        price = frame["price"].to_numpy(np.float64, na_value=np.nan)
        return self.mask_arrays(price, codes, wanted[wanted >= 0], stock)

    def mask_arrays(
        self,
        price: np.ndarray,
        seller_codes: np.ndarray,
        wanted_sellers: np.ndarray | None,
        stock: np.ndarray | None,
    ) -> np.ndarray:
        """The same test on prepared columns (the pipeline keeps them per catalog).

        Args:
            price: ``float[n]`` (NaN = unknown).
            seller_codes: ``int[n]`` seller of each row as an integer code.
            wanted_sellers: codes of this filter's sellers that occur (ignored without
                ``sellers``).
            stock: ``float[n]`` (NaN = unknown) or ``None`` when the catalog has no column.
        """
        keep = np.ones(len(price), dtype=bool)
        if self.price_min is not None or self.price_max is not None:
            with np.errstate(invalid="ignore"):
                if self.price_min is not None:
                    keep &= price >= self.price_min  # NaN compares False: unknown fails
                if self.price_max is not None:
                    keep &= price <= self.price_max
        if self.sellers:
            wanted = np.zeros(int(seller_codes.max(initial=-1)) + 1, dtype=bool)
            if wanted_sellers is not None and len(wanted_sellers):
                wanted[wanted_sellers] = True
            keep &= wanted[seller_codes] if len(wanted) else False
        if self.in_stock and stock is not None:
            with np.errstate(invalid="ignore"):
                keep &= ~(stock <= 0)  # unknown (NaN) passes
        return keep


def _number(raw: Any, name: str) -> float | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool):
        raise BadFilter(f"{name} must be a number, got {raw!r}")
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw.strip())
        except ValueError:
            raise BadFilter(f"{name} must be a number, got {raw!r}") from None
    raise BadFilter(f"{name} must be a number, got {type(raw).__name__} {raw!r}")


def _sellers(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    values: Iterable[Any] = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list | tuple):
        raise BadFilter(f"seller must be an id or a list of ids, got {type(raw).__name__}")
    out = []
    for v in values:
        if not isinstance(v, str):
            raise BadFilter(f"seller must be text ids, got {type(v).__name__} {v!r}")
        if v.strip():
            out.append(v.strip())
    return tuple(dict.fromkeys(out))


def _flag(raw: Any, name: str) -> bool:
    if raw is None:
        return False
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        text = raw.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise BadFilter(f"{name} must be true or false, got {raw!r}")
