"""Experiment variants: stable assignment in the declared shares, and one-line errors for bad files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.params import CoreParams
from models.variants import DEFAULT, Experiment, VariantsError, position

BASE = CoreParams()


def spec(*variants: tuple[str, float, dict], salt: str = "exp-1") -> dict:
    return {"salt": salt, "variants": [{"name": n, "share": s, "params": p} for n, s, p in variants]}


def test_no_file_means_everyone_in_default_with_the_base_params() -> None:
    experiment = Experiment.single(BASE)
    assert experiment.variant_of("anyone").name == DEFAULT and experiment.params_of(DEFAULT) is BASE


def test_overrides_apply_to_the_base_and_nothing_else() -> None:
    experiment = Experiment.from_spec(spec(("default", 0.5, {}), ("pop", 0.5, {"w_popularity": 2, "top_k": 30})), BASE)
    pop = experiment.params_of("pop")
    assert pop.w_popularity == 2.0 and isinstance(pop.w_popularity, float) and pop.top_k == 30
    assert pop.w_content == BASE.w_content and experiment.params_of("default") == BASE


@settings(max_examples=30, deadline=None)
@given(st.floats(0.05, 0.95), st.text(min_size=1, max_size=12))
def test_users_split_in_the_declared_shares_and_keep_their_variant(share: float, salt: str) -> None:
    experiment = Experiment.from_spec(spec(("default", share, {}), ("b", 1 - share, {"w_content": 0.5}), salt=salt), BASE)
    users = [f"user-{i}" for i in range(4000)]
    counts = Counter(experiment.variant_of(u).name for u in users)
    assert abs(counts["default"] / len(users) - share) < 0.04  # ~5 standard errors at 4,000 users
    again = Experiment.from_spec(spec(("default", share, {}), ("b", 1 - share, {"w_content": 0.5}), salt=salt), BASE)
    assert all(again.variant_of(u).name == experiment.variant_of(u).name for u in users[:500])


def test_a_new_salt_reshuffles_users() -> None:
    moved = sum((position("a", f"u{i}") < 0.5) != (position("b", f"u{i}") < 0.5) for i in range(2000))
    assert 800 < moved < 1200


@pytest.mark.parametrize(("bad", "message"), [
    (spec(("default", 0.5, {}), ("b", 0.4, {})), "sum to 0.9"),
    (spec(("a", 0.5, {}), ("b", 0.5, {})), "no variant named 'default'"),
    (spec(("default", 0.5, {}), ("default", 0.5, {})), "more than once"),
    (spec(("default", 0.5, {}), ("b", 0.5, {"w_popular": 1})), "'w_popular' is not a CoreParams field"),
    (spec(("default", 0.5, {}), ("b", 0.5, {"top_k": "20"})), "'top_k' must be a int"),
    (spec(("default", 0.5, {}), ("b", 0.5, {"exclude_recent": 1})), "must be a bool"),
    (spec(("default", 0.5, {}), ("b", 0.5, {"covis_window": 10})), "co-visitation store every user shares"),
    (spec(("default", 1.5, {})), "`share` must be a number in (0, 1]"),
    ({"variants": []}, "non-empty list"),
    ({"salt": "x", "variants": [{"name": "default", "share": 1}], "extra": 1}, "unknown key(s) ['extra']"),
    ({"variants": [{"name": "default", "share": 1, "weight": 2}]}, "unknown key(s) ['weight']"),
    ({"variants": [{"name": "default", "share": 1, "encoder": "/models/v2"}]}, "uses the worker's encoder"),
    ({"variants": [{"name": "default", "share": 0.5}, {"name": "b", "share": 0.5, "encoder": 3}]},
     "`encoder` must be the path of an encoder folder"),
])
def test_bad_files_get_one_line_errors(bad: dict, message: str) -> None:
    with pytest.raises(VariantsError) as err:
        Experiment.from_spec(bad, BASE)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_variant_may_name_its_own_encoder_and_the_others_keep_the_workers() -> None:
    experiment = Experiment.from_spec({"variants": [{"name": "default", "share": 0.5},
                                                    {"name": "tuned", "share": 0.5, "encoder": "/models/v2"}]}, BASE)
    assert experiment.encoders == {"tuned": Path("/models/v2")}
    assert experiment.params_of("tuned") == BASE
    assert Experiment.single(BASE).encoders == {}
