"""Experiment variants: named overrides of CoreParams, each user in one of them for good.

A user's variant is a stable hash of (salt, user id) placed on the variants' cumulative traffic
shares, so every worker, every restart and the evaluation put a user in the same variant with no
shared state. Changing the salt reshuffles everyone (a new experiment); changing a share moves
only the users at the border it shifts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from models.params import CoreParams

DEFAULT = "default"
# Fields that shape the co-visitation and popularity stores every user shares: one value for all.
SHARED_FIELDS = frozenset(
    {"covis_window", "covis_backward", "covis_half_life_s", "covis_row_limit", "popularity_half_life_s"}
)
_SHARE_TOLERANCE = 1e-6


class VariantsError(ValueError):
    """A variants file that cannot be used; the message says what is wrong and where."""


@dataclass(frozen=True)
class Variant:
    name: str
    share: float
    params: CoreParams
    overrides: Mapping[str, Any]
    # The item encoder this variant's users are ranked with; None: the worker's own (RECSTREAM_ENCODER_PATH).
    encoder: Path | None = None


@dataclass(frozen=True)
class Experiment:
    salt: str
    variants: tuple[Variant, ...]

    @classmethod
    def single(cls, params: CoreParams) -> Experiment:
        """No experiment: everyone in `default`, with `params`."""
        return cls("", (Variant(DEFAULT, 1.0, params, {}),))

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], base: CoreParams) -> Experiment:
        """From a parsed variants file: `{salt: str, variants: [{name, share, params: {field: value}}]}`."""
        if not isinstance(spec, Mapping):
            raise VariantsError("a variants file holds a mapping with `salt` and `variants`")
        unknown = set(spec) - {"salt", "variants"}
        if unknown:
            raise VariantsError(f"unknown key(s) {sorted(unknown)} in the variants file: it takes `salt` and `variants`")
        salt = spec.get("salt", "")
        if not isinstance(salt, str):
            raise VariantsError("`salt` must be a string")
        raw = spec.get("variants")
        if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
            raise VariantsError("`variants` must be a non-empty list of {name, share, params}")
        variants = tuple(_variant(i, entry, base) for i, entry in enumerate(raw))
        names = [v.name for v in variants]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise VariantsError(f"variant name(s) {doubled} appear more than once")
        if DEFAULT not in names:
            raise VariantsError(f"no variant named {DEFAULT!r}: the report compares every variant with it")
        total = sum(v.share for v in variants)
        if abs(total - 1.0) > _SHARE_TOLERANCE:
            raise VariantsError(f"variant shares sum to {total:g}, not 1")
        return cls(salt, variants)

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variants]

    def variant_of(self, user_id: str) -> Variant:
        """The user's variant: where their hash falls on the cumulative shares."""
        if len(self.variants) == 1:
            return self.variants[0]
        point = position(self.salt, user_id)
        edge = 0.0
        for variant in self.variants:
            edge += variant.share
            if point < edge:
                return variant
        return self.variants[-1]  # rounding at the top edge

    @property
    def encoders(self) -> dict[str, Path]:
        """The variants that name their own encoder, and its folder."""
        return {v.name: v.encoder for v in self.variants if v.encoder is not None}

    def params_of(self, name: str) -> CoreParams:
        for variant in self.variants:
            if variant.name == name:
                return variant.params
        raise KeyError(name)


def position(salt: str, user_id: str) -> float:
    """A uniform number in [0, 1) fixed by (salt, user_id)."""
    digest = hashlib.blake2b(f"{salt}\x00{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


_TYPES = {f.name: f.type for f in fields(CoreParams)}


def _variant(i: int, entry: Any, base: CoreParams) -> Variant:
    where = f"variant {i + 1}"
    if not isinstance(entry, Mapping):
        raise VariantsError(f"{where}: expected {{name, share, params}}")
    unknown = set(entry) - {"name", "share", "params", "encoder"}
    if unknown:
        raise VariantsError(f"{where}: unknown key(s) {sorted(unknown)}; a variant takes name, share, params, encoder")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise VariantsError(f"{where}: `name` must be a non-empty string without surrounding spaces")
    where = f"variant {name!r}"
    share = entry.get("share")
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise VariantsError(f"{where}: `share` must be a number in (0, 1], got {share!r}")
    overrides = entry.get("params") or {}
    if not isinstance(overrides, Mapping):
        raise VariantsError(f"{where}: `params` must map CoreParams fields to values")
    values = {key: _coerce(where, key, value) for key, value in overrides.items()}
    return Variant(name, float(share), replace(base, **values), dict(values), _encoder(where, name, entry.get("encoder")))


def _encoder(where: str, name: str, value: Any) -> Path | None:
    """A variant's own encoder folder (checked when a worker loads it, not here: the core reads no files)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise VariantsError(f"{where}: `encoder` must be the path of an encoder folder, got {value!r}")
    if name == DEFAULT:
        raise VariantsError(f"{where}: the {DEFAULT!r} variant uses the worker's encoder (RECSTREAM_ENCODER_PATH); "
                            "give another variant the new encoder to compare the two")
    return Path(value)


def _coerce(where: str, key: str, value: Any) -> Any:
    if key not in _TYPES:
        raise VariantsError(f"{where}: {key!r} is not a CoreParams field (see models/params.py)")
    if key in SHARED_FIELDS:
        raise VariantsError(f"{where}: {key!r} shapes the co-visitation store every user shares, so it cannot "
                            "differ between variants; set it for all workers (RECSTREAM_*) instead")
    kind = _TYPES[key]
    if kind == "bool":
        if isinstance(value, bool):
            return value
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    raise VariantsError(f"{where}: {key!r} must be a {kind}, got {value!r}")
