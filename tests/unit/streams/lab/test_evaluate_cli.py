"""`recstream evaluate` plumbing (streams.lab.evaluate): overrides, the JSON contract, the Markdown section."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pytest

from models.evaluation.prequential import Report
from models.params import CoreParams
from streams.lab.evaluate import (
    BASELINE_KEYS,
    markdown,
    parse_baselines,
    parse_overrides,
    result_json,
    section_name,
    split_overrides,
)
from streams.lab.markdown_sections import write_section

K = 10
KEYS = (f"hit@{K}", f"ndcg@{K}", "mrr", f"new_item_hit@{K}", "coverage")


def _report(name: str, hit: float, key: str = "") -> Report:
    metrics = {key: hit for key in KEYS}
    metrics.update({f"cold_user_hit@{K}": 0.0, "intra_list_diversity": float("nan"), "ms_per_event": 1.0,
                    "warm_events": 100.0, "new_item_events": 10.0, "cold_events": 5.0})
    return Report(name, K, metrics, np.zeros(3, dtype=np.int32), key=key)


def test_overrides_are_typed_like_the_core_parameters() -> None:
    got = parse_overrides(["w_fresh=0.25", "covis_anchors=12"])
    assert got == {"w_fresh": 0.25, "covis_anchors": 12}
    assert isinstance(got["covis_anchors"], int)
    assert CoreParams(**got).w_fresh == 0.25


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("False", False), ("1", True), ("off", False)])
def test_a_boolean_override_is_parsed_not_truth_tested(raw: str, value: bool) -> None:
    assert parse_overrides([f"exclude_recent={raw}"]) == {"exclude_recent": value}


@pytest.mark.parametrize("bad", ["no_such_param=1", "w_fresh", "covis_anchors=1.5", "w_fresh=abc", "exclude_recent=maybe"])
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


def test_the_sequence_model_is_compared_apart_and_the_published_run_is_not_a_baseline() -> None:
    reports = [
        _report("recstream", 0.12),
        _report("recstream (as published: top 20)", 0.10, key="recstream_published"),
        _report("SASRec", 0.2, key="sasrec_retrained"),
        _report("ALS", 0.08, key="als_retrained"),
    ]
    out = result_json(reports, K, {"dataset": "d", "events": 3, "items": 2})
    assert set(out["baselines"]) == {"sasrec_retrained", "als_retrained"}
    assert out["recstream_published"][f"hit@{K}"] == 0.10
    assert out["best_baseline"] == "als_retrained" and out["ratio_to_best_baseline"] == pytest.approx(1.5)
    assert out["ratio_to_sasrec"] == pytest.approx(0.6)


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


def test_prefixed_overrides_tune_the_retrained_baselines() -> None:
    core, configs = split_overrides(["w_fresh=0.2", "sasrec.lr=0.005", "sasrec.layers=2", "als.factors=32"])
    assert core == {"w_fresh": 0.2}
    assert configs == {"sasrec": {"lr": 0.005, "layers": 2}, "als": {"factors": 32}}
    with pytest.raises(click.BadParameter, match="sasrec.'nope=1'"):
        split_overrides(["sasrec.nope=1"])


def test_baselines_are_chosen_by_key() -> None:
    assert parse_baselines(None, none=False) == list(BASELINE_KEYS)
    assert parse_baselines("session_knn, sasrec_retrained", none=False) == ["session_knn", "sasrec_retrained"]
    assert parse_baselines("session_knn", none=True) == []
    with pytest.raises(click.BadParameter, match="unknown baseline sasrec"):
        parse_baselines("sasrec", none=False)


def test_each_kind_of_run_writes_its_own_section() -> None:
    assert section_name(None, None, "shuffle", False, ()) == "evaluate"
    assert section_name(None, None, "file", False, ()) == "evaluate-file-order"
    assert section_name(0.3, None, "shuffle", False, ("sasrec.lr=0.02",)) == "evaluate-first-0.3-sasrec.lr-0.02"
    assert section_name(None, 50_000, "shuffle", True, ()) == "evaluate-limit-50000-kafka"
    assert section_name(None, None, "shuffle", False, ("exclude_recent=true",)) != "evaluate"


def test_a_sweep_names_one_parameter_and_two_values_at_least() -> None:
    from streams.lab.evaluate import parse_sweep

    assert parse_sweep("diversity_lambda=0,0.2, 0.5") == ("diversity_lambda", [
        {"diversity_lambda": 0.0}, {"diversity_lambda": 0.2}, {"diversity_lambda": 0.5}])
    for bad in ("diversity_lambda=0.2", "diversity_lambda", "no_such=1,2", "top_k=1,x"):
        with pytest.raises(click.BadParameter):
            parse_sweep(bad)


def test_sweep_models_differ_only_in_the_swept_parameter() -> None:
    from models.index import ItemIndex
    from models.params import CoreParams
    from streams.lab.evaluate import sweep_models

    models = sweep_models(ItemIndex(4), None, CoreParams(), "diversity_lambda",  # type: ignore[arg-type]
                          [{"diversity_lambda": 0.0}, {"diversity_lambda": 0.3}])
    assert [m.name for m in models] == ["recstream (diversity_lambda=0.0)", "recstream (diversity_lambda=0.3)"]
    assert [m.recommender.params.diversity_lambda for m in models] == [0.0, 0.3]
    assert models[0].recommender.params.top_k == models[1].recommender.params.top_k


def test_evaluate_ranks_a_variant_with_its_own_encoder_as_the_workers_do(tmp_path: Path) -> None:
    """The published run's variant that names an encoder gets an index embedded by it; nothing else changes."""
    from models.encoder import bundled_model_path
    from models.evaluation.recstream_model import RecstreamModel
    from models.variants import Experiment
    from schemas.records import Item
    from streams.lab.evaluate import build_index, with_variant_encoders
    from streams.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", encoder_int8=True)
    items = [Item(item_id=f"m{n}", title=f"Movie {n}", categories=["Drama"]) for n in range(5)]
    index, encoder = build_index(items, settings)
    experiment = Experiment.from_spec({"variants": [{"name": "default", "share": 0.5},
                                                    {"name": "tuned", "share": 0.5, "encoder": str(bundled_model_path())}]},
                                      CoreParams())
    protocol, published = RecstreamModel(index, encoder, CoreParams()), RecstreamModel(
        index, encoder, CoreParams(), published=True, experiment=experiment)
    with_variant_encoders([protocol, published], experiment, items, Settings(data_dir=tmp_path / "data"))
    own_index, own_encoder = published.recommender.content_of("tuned")
    assert own_encoder.name == "all-MiniLM-L6-v2" and encoder.name == "all-MiniLM-L6-v2-int8"
    assert own_index is not index and sorted(own_index.item_ids()) == sorted(index.item_ids())
    assert published.recommender.content_of("default") == (index, encoder)
    assert protocol.recommender.content_of("tuned") == (index, encoder), "the protocol's run has no variants"


def _tiny_movielens(folder: Path) -> Path:
    """Six films, four users, sixty ratings: enough warm events to pair two runs."""
    folder.mkdir(parents=True)
    films = ["Alien (1979),Horror|Sci-Fi", "Aliens (1986),Action|Sci-Fi", "Heat (1995),Action|Crime",
             "Notting Hill (1999),Comedy|Romance", "Toy Story (1995),Animation|Children", "Love Actually (2003),Romance"]
    (folder / "movies.csv").write_text("movieId,title,genres\n" + "".join(f"{i + 1},{f}\n" for i, f in enumerate(films)))
    rows = [f"{u},{(u + n) % 6 + 1},4.0,{1_000_000 + 60 * n + u}\n" for n in range(15) for u in range(1, 5)]
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "".join(rows))
    return folder


def test_a_run_paired_with_a_saved_one_is_compared_event_by_event_and_other_events_are_refused(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from streams.cli import cli

    movielens = _tiny_movielens(tmp_path / "ml")
    env = {"RECSTREAM_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}
    common = ["evaluate", "--movielens", str(movielens), "--no-baselines", "--no-published", "--jobs", "1"]
    first = CliRunner().invoke(cli, [*common, "--ranks-out", str(tmp_path / "a.ranks")], env=env)
    assert first.exit_code == 0, first.output
    second = CliRunner().invoke(cli, [*common, "--set", "w_popularity=0", "--paired-with", str(tmp_path / "a.ranks"),
                                      "--json", str(tmp_path / "b.json")], env=env)
    assert second.exit_code == 0, second.output
    paired = json.loads((tmp_path / "b.json").read_text())["paired"]
    warm = json.loads((tmp_path / "b.json").read_text())["recstream"]["warm_events"]
    assert paired["all"]["events"] == warm > 0 and paired["all"]["users"] == 4
    assert paired["all"]["only_b"] - paired["all"]["only_a"] == round(paired["all"]["diff"] * warm)
    assert "Paired with the run in" in second.output and "resampling users" in second.output
    other = CliRunner().invoke(cli, [*common, "--limit", "40", "--paired-with", str(tmp_path / "a.ranks")], env=env)
    assert other.exit_code != 0 and "holds another run's events" in other.output
