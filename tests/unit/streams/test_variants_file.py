"""Variants files (RECSTREAM_VARIANTS) as workers read them: YAML or JSON, one-line errors naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.params import CoreParams
from models.variants import VariantsError
from streams.settings import load_experiment

YAML = """
salt: spring-test
variants:
  - name: default
    share: 0.5
  - name: popular
    share: 0.5
    params: {w_popularity: 3.0, w_content: 0.0}
"""


def test_yaml_and_json_files_give_the_same_experiment(tmp_path: Path) -> None:
    (tmp_path / "v.yaml").write_text(YAML)
    (tmp_path / "v.json").write_text(json.dumps({"salt": "spring-test", "variants": [
        {"name": "default", "share": 0.5}, {"name": "popular", "share": 0.5,
                                           "params": {"w_popularity": 3.0, "w_content": 0.0}}]}))
    a, b = (load_experiment(tmp_path / n, CoreParams()) for n in ("v.yaml", "v.json"))
    assert a == b and a.params_of("popular").w_popularity == 3.0
    assert load_experiment(None, CoreParams()).names == ["default"]


@pytest.mark.parametrize(("text", "message"), [
    ("salt: x\nvariants: [{name: default, share: 0.7}]", "shares sum to 0.7"),
    ("salt: [unclosed", "is not valid YAML"),
    ("variants:\n  - name: default\n    share: 1\n    params: {w_popularty: 1}", "'w_popularty' is not a CoreParams"),
])
def test_a_bad_file_is_one_line_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "variants.yaml"
    path.write_text(text)
    with pytest.raises(VariantsError) as err:
        load_experiment(path, CoreParams())
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(VariantsError, match="cannot read the variants file"):
        load_experiment(tmp_path / "missing.yaml", CoreParams())


def _encoder_variants(encoder: str) -> str:
    return f"""
salt: encoders
variants:
  - name: default
    share: 0.5
  - name: tuned
    share: 0.5
    encoder: {encoder}
"""


def test_a_variant_encoder_path_is_read_relative_to_the_variants_file(tmp_path: Path) -> None:
    model = tmp_path / "models" / "tuned-v1"
    model.mkdir(parents=True)
    (model / "modules.json").write_text("[]")
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "variants.yaml"
    path.write_text(_encoder_variants("../models/tuned-v1"))
    experiment = load_experiment(path, CoreParams())
    assert experiment.encoders == {"tuned": tmp_path / "conf" / ".." / "models" / "tuned-v1"}
    path.write_text(_encoder_variants(str(model)))
    assert load_experiment(path, CoreParams()).encoders == {"tuned": model}


def test_a_variant_encoder_folder_without_a_model_stops_the_worker_with_one_line(tmp_path: Path) -> None:
    from streams.worker.main import check_variant_encoders

    path = tmp_path / "variants.yaml"
    path.write_text(_encoder_variants("nowhere"))
    experiment = load_experiment(path, CoreParams())  # the file itself is fine
    with pytest.raises(VariantsError) as err:
        check_variant_encoders(experiment)
    assert "variant 'tuned'" in str(err.value) and "no sentence-transformers model" in str(err.value)
    assert str(tmp_path / "nowhere") in str(err.value) and "\n" not in str(err.value)
