"""CLI failures are one readable line and a non-zero exit, never a traceback."""

import subprocess
import sys

import pytest


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_missing_movielens_folder(tmp_path) -> None:
    result = run("items", "load", "--movielens", str(tmp_path / "nowhere"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "movies.csv" in lines[0] and "--movielens" in lines[0]


def test_bad_setting_is_reported_not_raised() -> None:
    result = run("items", "load", "--generated", env={"RECSTREAM_TOP_K": "lots"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "RECSTREAM_TOP_K" in result.stderr


@pytest.mark.parametrize("command", [["--help"], ["replay", "--help"], ["items", "load", "--help"], ["demo", "--help"]])
def test_every_command_documents_itself(command: list[str]) -> None:
    result = run(*command)
    assert result.returncode == 0 and "Usage:" in result.stdout


def test_download_without_network_fails_cleanly(tmp_path) -> None:
    from models.datasets import DatasetError
    from models.datasets.movielens import download

    with pytest.raises(DatasetError, match="download it by hand"):
        download(tmp_path, url="http://127.0.0.1:9/ml-latest-small.zip", timeout=2)


def test_an_unforeseen_error_is_still_one_line(monkeypatch, capsys) -> None:
    from streams import cli

    def broken(**_: object) -> None:
        raise RuntimeError("something\nwent wrong")

    monkeypatch.setattr(cli.cli, "main", broken)
    monkeypatch.delenv("RECSTREAM_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    err = capsys.readouterr().err
    assert exit_.value.code == 1
    assert err.count("\n") == 1 and "RuntimeError: something went wrong" in err and "RECSTREAM_TRACEBACK=1" in err


def test_score_from_with_a_sweep_is_refused_before_any_work(tmp_path) -> None:
    """Refused before the catalog is embedded (minutes on a real catalog), with what to drop."""
    movielens = tmp_path / "ml"  # a tiny MovieLens folder: a fresh clone has no dataset
    movielens.mkdir()
    (movielens / "movies.csv").write_text("movieId,title,genres\n1,Alien (1979),Horror|Sci-Fi\n2,Heat (1995),Action\n")
    rows = "".join(f"{u},{m},4.0,{100 * (2 * u + m)}\n" for u in range(1, 6) for m in (1, 2))
    (movielens / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + rows)  # 10 events: 3 only learnt
    result = run("evaluate", "--movielens", str(movielens), "--score-from", "0.3", "--sweep", "w_fresh=0.1,0.2",
                 env={"RECSTREAM_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--score-from works with the main run only" in result.stderr
    assert not (tmp_path / "cache").exists(), "nothing was embedded"
