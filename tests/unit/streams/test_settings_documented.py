"""Every setting is documented in the configuration table of docs/operations.md, with its real default."""

from pathlib import Path

from streams.settings import Settings

OPERATIONS = (Path(__file__).resolve().parents[3] / "docs" / "operations.md").read_text()


def test_every_setting_is_in_the_configuration_table() -> None:
    rows = {line.split("|")[1].strip().strip("`"): line for line in OPERATIONS.splitlines() if line.startswith("| `RECSTREAM_")}
    for name, field in Settings.model_fields.items():
        env = f"RECSTREAM_{name.upper()}"
        assert env in rows, f"{env} missing from the configuration table in docs/operations.md"
        if field.default is not None:
            assert f"`{field.default}`" in rows[env], f"docs/operations.md gives another default of {env} than the code"
    assert set(rows) == {f"RECSTREAM_{n.upper()}" for n in Settings.model_fields}, "docs/operations.md documents a setting that does not exist"


def test_env_vars_reach_the_settings(monkeypatch) -> None:
    monkeypatch.setenv("RECSTREAM_TOP_K", "7")
    monkeypatch.setenv("RECSTREAM_KAFKA_BOOTSTRAP", "k1:9092,k2:9092")
    s = Settings()
    assert s.top_k == 7 and s.core.top_k == 7
    assert s.confluent_config()["bootstrap.servers"] == "k1:9092,k2:9092"


def test_secrets_do_not_leak_into_reprs(monkeypatch) -> None:
    monkeypatch.setenv("RECSTREAM_KAFKA_SASL_PASSWORD", "hunter2")
    s = Settings()
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())
    assert s.confluent_config().get("sasl.password") == "hunter2"
