"""`emovlm predict --recognizer vlm` against a local server, and `emovlm backends`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from emovlm import cli
from openai_server import FakeOpenAIServer


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(lifetime=120) as srv:
        yield srv


@pytest.fixture()
def green(tmp_path: Path) -> Path:
    path = tmp_path / "green.png"
    Image.fromarray(np.full((40, 40, 3), (0, 250, 0), np.uint8)).save(path)
    return path


def test_predict_with_a_served_vlm(server: FakeOpenAIServer, green: Path, tmp_path: Path) -> None:
    args = [
        "predict",
        str(green),
        "--label-set",
        "dfew",
        "--recognizer",
        "vlm",
        "--backend",
        "openai",
        "--base-url",
        server.url,
        "--model",
        "tiny-vlm",
        "--mode",
        "score",
        "--frames",
        "uniform:2",
        "--concurrency",
        "2",
        "--json",
    ]
    result = CliRunner(env={"EMOVLM_CACHE": str(tmp_path / "cache")}).invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.output)
    assert record["label"] == "happy" and record["status"] == "ok"
    assert sum(record["scores"].values()) == pytest.approx(1.0)


def test_a_wrong_model_name_is_one_line_and_exit_code_2(
    server: FakeOpenAIServer,
    green: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "emovlm",
            "predict",
            str(green),
            "--recognizer",
            "vlm",
            "--backend",
            "openai",
            "--base-url",
            server.url,
            "--model",
            "no-such-model",
        ],
    )
    monkeypatch.setenv("EMOVLM_CACHE", str(green.parent / "cache"))
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "does not serve model 'no-such-model'; it serves: tiny-vlm" in err
    assert "Traceback" not in err


def test_backends_lists_both_with_what_they_need() -> None:
    result = CliRunner().invoke(cli.app, ["backends", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert set(rows) == {"transformers", "openai"}
    assert rows["openai"]["requires"] == ["aiohttp"] and rows["openai"]["installed"] is True
    assert "transformers" in rows["transformers"]["requires"]
    assert rows["transformers"]["install"] == "pip install 'emovlm[vlm]'"
    table = CliRunner().invoke(cli.app, ["backends"])
    assert table.exit_code == 0 and "openai" in table.output
