"""`recstream evaluate` plumbing (streams.lab.evaluate): overrides, the JSON contract, the Markdown section."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pytest

from models.evaluation.prequential import Report
from models.params import CoreParams
from streams.lab.evaluate import markdown, parse_overrides, result_json
from streams.lab.markdown_sections import write_section

K = 10
KEYS = (f"hit@{K}", f"ndcg@{K}", "mrr", f"new_item_hit@{K}", "coverage")


def _report(name: str, hit: float) -> Report:
    metrics = {key: hit for key in KEYS}
    metrics.update({f"cold_user_hit@{K}": 0.0, "intra_list_diversity": float("nan"), "ms_per_event": 1.0,
                    "warm_events": 100.0, "new_item_events": 10.0, "cold_events": 5.0})
    return Report(name, K, metrics, np.zeros(3, dtype=np.int32))


def test_overrides_are_typed_like_the_core_parameters() -> None:
    got = parse_overrides(["w_fresh=0.25", "covis_anchors=12"])
    assert got == {"w_fresh": 0.25, "covis_anchors": 12}
    assert isinstance(got["covis_anchors"], int)
    assert CoreParams(**got).w_fresh == 0.25


@pytest.mark.parametrize("bad", ["no_such_param=1", "w_fresh", "covis_anchors=1.5", "w_fresh=abc"])
def test_bad_overrides_name_the_problem(bad: str) -> None:
    with pytest.raises(click.BadParameter, match=bad.split("=")[0]):
        parse_overrides([bad])


def test_json_has_the_contracted_objects_and_keys() -> None:
    reports = [_report("recstream", 0.15), _report("random", 0.01), _report("co-occurrence", 0.1)]
    out = result_json(reports, K, {"dataset": "d", "events": 3, "items": 2})
    assert set(out["baselines"]) == {"random", "co-occurrence"}
    for obj in [out["recstream"], *out["baselines"].values()]:
        assert set(KEYS) <= set(obj)
    assert out["recstream"]["intra_list_diversity"] is None  # NaN is not JSON
    assert out["best_baseline"] == "co-occurrence"
    assert out["ratio_to_best_baseline"] == pytest.approx(1.5)


def test_markdown_section_is_replaced_not_appended(tmp_path: Path) -> None:
    doc = tmp_path / "EVALUATION.md"
    reports = [_report("recstream", 0.15), _report("random", 0.01)]
    meta = {"dataset": "d", "events": 3, "items": 2}
    write_section(doc, "evaluate", markdown(result_json(reports, K, meta), reports, K, "recstream evaluate"), "Run", "Evaluation")
    first = doc.read_text()
    assert first.startswith("# Evaluation") and "| recstream | 0.1500 |" in first and "**15.0**" in first
    reports[0] = _report("recstream", 0.2)
    write_section(doc, "evaluate", markdown(result_json(reports, K, meta), reports, K, "recstream evaluate"), "Run", "Evaluation")
    second = doc.read_text()
    assert second.count("<!-- evaluate:begin -->") == 1 and "| recstream | 0.2000 |" in second
    assert "0.1500" not in second
