"""Backend flags through the CLI: idle ones refused by name, `--model-revision` in the cache key,
and `contextual-vlm` recorded under its own name."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from emovlm import cli
from emovlm.recognizers.settings import refuse_idle_flags
from emovlm.run.config import read_configs
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


def run_cli(
    args: list[str], cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> tuple[int, str]:
    """Run `emovlm ARGS` as a user would; the exit code and stderr."""
    monkeypatch.setattr(sys, "argv", ["emovlm", *args])
    monkeypatch.setenv("EMOVLM_CACHE", str(cache))
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


SERVED = ["--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"]
LOCAL = ["--model", "some-folder"]  # --backend transformers is the default


@pytest.mark.parametrize(
    ("recognizer", "given", "flag", "backend"),
    [
        ("vlm", [*SERVED, "--dtype", "bfloat16"], "--dtype", "--backend openai"),
        ("vlm", [*SERVED, "--device", "cuda"], "--device", "--backend openai"),
        ("vlm", [*SERVED, "--adapter", "lora"], "--adapter", "--backend openai"),
        ("vlm", [*LOCAL, "--timeout", "5"], "--timeout", "--backend transformers"),
        ("vlm", [*LOCAL, "--max-retries", "1"], "--max-retries", "--backend transformers"),
        ("vlm", [*LOCAL, "--base-url", "http://x/v1"], "--base-url", "--backend transformers"),
        ("vlm", [*LOCAL, "--api-key-env", "KEY"], "--api-key-env", "--backend transformers"),
        ("vlm", [*LOCAL, "--model-revision", "r2"], "--model-revision", "--backend transformers"),
        ("contextual-vlm", [*SERVED, "--dtype", "float16"], "--dtype", "--backend openai"),
        (
            "caption-llm",
            [
                *SERVED,
                "--llm-backend",
                "openai",
                "--llm-model",
                "t",
                "--llm-base-url",
                "http://x",
                "--device",
                "cuda",
            ],
            "--device",
            "--backend openai, --llm-backend openai",
        ),  # fmt: skip
        (
            "caption-llm",
            [*SERVED, "--llm-api-key-env", "KEY"],
            "--llm-api-key-env",
            "--llm-backend transformers",
        ),
        ("narracap-llm", ["--timeout", "5"], "--timeout", "--llm-backend transformers"),
        ("msce", [*SERVED, "--dtype", "bfloat16"], "--dtype", "--backend openai"),
    ],
)
def test_a_flag_that_does_nothing_with_the_backend_is_refused_by_name(
    recognizer: str,
    given: list[str],
    flag: str,
    backend: str,
    green: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["predict", str(green), "--recognizer", recognizer, *given]
    code, err = run_cli(args, tmp_path / "cache", monkeypatch, capsys)
    assert code == 2
    assert f"{flag} does nothing with {backend}" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_device_stays_allowed_where_a_local_model_beside_the_server_uses_it() -> None:
    refuse_idle_flags("vlm", {"backend": "openai", "faces": "mtcnn", "device": "cuda"})
    refuse_idle_flags("msce", {"backend": "openai", "device": "cuda"})  # specialist describer
    refuse_idle_flags("narracap-llm", {"llm_backend": "openai", "device": "cuda"})  # CLIP
    refuse_idle_flags("caption-llm", {"backend": "openai", "dtype": "bfloat16"})  # local LLM
    with pytest.raises(Exception, match="--device does nothing with --backend openai"):
        refuse_idle_flags("msce", {"backend": "openai", "describer": "vlm", "device": "cuda"})


def test_a_new_model_revision_never_reuses_old_answers(
    server: FakeOpenAIServer,
    green: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def requests_made(revision: str) -> int:
        before = server.calls
        args = ["predict", str(green), "--recognizer", "vlm", "--backend", "openai",
                "--base-url", server.url, "--model", "tiny-vlm", "--model-revision", revision,
                "--cache-dir", str(tmp_path / "answers")]  # fmt: skip
        code, err = run_cli(args, tmp_path / "cache", monkeypatch, capsys)
        assert code == 0, err
        return server.calls - before

    assert requests_made("2026-01") > 0
    assert requests_made("2026-01") == 0  # same served name and revision: from the cache
    assert requests_made("2026-02") > 0  # new weights behind the same name: asked again


def test_contextual_vlm_records_its_own_name_and_the_revision(
    server: FakeOpenAIServer, tmp_path: Path, asset: Callable[[str], Path]
) -> None:
    root = tmp_path / "emotic"
    (root / "emotic_pre").mkdir(parents=True)
    (root / "mscoco" / "images").mkdir(parents=True)
    shutil.copy(asset("astronaut"), root / "mscoco" / "images" / "astronaut.png")
    (root / "emotic_pre" / "test.csv").write_text(
        "Index,Folder,Filename,Image Size,BBox,Categorical_Labels,Continuous_Labels,Gender,Age\n"
        '0,mscoco/images,astronaut.png,"[512, 512]","[160, 40, 360, 240]",'
        '"[\'Happiness\']","[8, 6, 7]",Male,Adult\n',
        encoding="utf-8",
    )
    run = tmp_path / "run"
    result = CliRunner(env={"EMOVLM_CACHE": str(tmp_path / "cache")}).invoke(
        cli.app,
        ["eval", "--dataset", "emotic", "--root", str(root), "--run-dir", str(run),
         "--no-progress", "--bootstrap", "10", "--recognizer", "contextual-vlm",
         "--backend", "openai", "--base-url", server.url, "--model", "tiny-vlm",
         "--model-revision", "r7", "--cache-dir", str(tmp_path / "answers")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [entry] = read_configs(run)
    recognizer = entry["recognizer"]
    assert recognizer["name"] == "contextual-vlm"
    assert recognizer["config"]["recognizer"] == "contextual-vlm"
    assert recognizer["config"]["model_fingerprint"]["revision"] == "r7"
