"""`emovlm reproduce paper-b-emotic` on an EMOTIC fixture (the CSV export) with the loopback
server as VLM and text LLM and a tiny random CLIP for NarraCap: end to end, SIGKILLed mid-way,
resumed without asking twice, and reported beside Paper B's Table I."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from emovlm.cli import app
from emovlm.reproduce.recipe import RecipeError, load_recipe
from openai_server import Behaviour, FakeOpenAIServer
from reproduce_fixtures import KillSwitch, emotic_answer, emotic_root, run_until_killed, work
from tiny_clip import build_tiny_clip


@pytest.fixture(scope="module")
def emotic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return emotic_root(tmp_path_factory.mktemp("emotic"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(Behaviour(answer=emotic_answer), lifetime=900) as running:
        yield running


def reproduce(*args: str | Path) -> Result:
    """The real CLI in this process."""
    return CliRunner().invoke(app, ["reproduce", *map(str, args)])


def served(server: FakeOpenAIServer, cache: Path, clip: Path) -> list[str]:
    return [
        "--backend", "openai", "--base-url", server.url, "--model", "tiny-vlm", "--no-progress",
        "--batch-size", "1", "--option", "concurrency=1", "--option", f"cache_dir={cache}",
        "--option", f"clip_model={clip}",
    ]  # fmt: skip


def test_narracap_without_clip_weights_fails_before_any_step(
    emotic: Path, server: FakeOpenAIServer, tmp_path: Path
) -> None:
    recipe = load_recipe("paper-b-emotic")
    result = reproduce(
        "paper-b-emotic", "--root", emotic, "--backend", "openai", "--base-url", server.url,
        "--model", "tiny-vlm", "--out", tmp_path / "out",
    )  # fmt: skip
    assert isinstance(result.exception, RecipeError)
    message = str(result.exception)
    assert message.startswith(f"{recipe.path}:{recipe.line('steps', 'narracap-llm')}: ")
    assert "--option clip_model=FOLDER" in message and "--skip narracap-llm" in message
    assert server.calls == 0 and not (tmp_path / "out").exists()


def test_baselines_alone_need_no_model(emotic: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = reproduce(
        "paper-b-emotic", "--root", emotic, "--only", "majority,random",
        "--out", out, "--no-progress", "--bootstrap", "200",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| Majority | published | 11.41 | 23.08 | 15.01 | 17.24 | 0.76 | — |" in report
    assert "| Rand6 (6 uniform random labels) | this run |" in report
    assert "| LLaVA LoRA on augmented val | published | 38.71 |" in report


@pytest.mark.slow
def test_paper_b_runs_end_to_end_is_killed_and_resumes_without_asking_twice(
    emotic: Path, clip: Path, server: FakeOpenAIServer, tmp_path: Path
) -> None:
    whole = reproduce("paper-b-emotic", "--root", emotic, "--out", tmp_path / "whole",
                      *served(server, tmp_path / "cache-whole", clip))  # fmt: skip
    assert whole.exit_code == 0, whole.output
    everything = work(server.received)
    server.reset()

    out = tmp_path / "out"
    first_marker = out / "vlm-labels" / "step.json"
    switch = KillSwitch(server.behaviour.answer, first_marker, nth=3)
    server.behaviour.answer = switch
    status = run_until_killed(
        switch, "reproduce", "paper-b-emotic", "--root", emotic, "--out", out,
        *served(server, tmp_path / "cache", clip),
    )  # fmt: skip
    assert status == -signal.SIGKILL
    answered = work(server.received[:-1])
    assert not (out / "vlm-definitions" / "step.json").exists()
    server.reset()

    resumed = reproduce("paper-b-emotic", "--root", emotic, "--out", out,
                        *served(server, tmp_path / "cache", clip))  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    again = work(server.received)
    assert not answered & again
    assert answered + again == everything
    for step in ("majority", "random", "weighted-random", "vlm-labels"):
        assert f"{step}: finished before, skipped" in resumed.output
    assert "vlm-definitions: running" in resumed.output

    report = (out / "report.md").read_text(encoding="utf-8")
    rows = {
        (cells[1].strip(), cells[2].strip()): [c.strip() for c in cells[3:-1]]
        for cells in (line.split("|") for line in report.splitlines() if line.startswith("| "))
    }
    published = rows[("GPT-4 Vision, definitions + 6 labels", "published")]
    assert published == ["37.48", "38.35", "34.47", "16.95", "0.67", "—"]
    mine = rows[("VLM zero-shot, red box, definitions, pick 6", "this run")]
    assert all(cell.replace(".", "").isdigit() for cell in mine[:5])
    assert ("NarraCap (zero-shot CLIP) → LLM", "this run") in rows
    assert (out / "figures" / "table1_f1.png").stat().st_size > 1000
    assert "EmotiCon" in (out / "report.html").read_text(encoding="utf-8")


def test_a_sweep_on_a_multi_label_set_is_refused_before_running(
    emotic: Path, tmp_path: Path
) -> None:
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(
        "dataset: {name: emotic}\nsteps:\n  majority: {run: eval, recognizer: majority}\n"
        "  fps:\n    run: sweep\n    experiment: fps\n    recognizer: vlm\n    values: [1, 5]\n",
        encoding="utf-8",
    )
    result = reproduce(recipe, "--root", emotic, "--out", tmp_path / "out", "--dry-run")
    assert isinstance(result.exception, RecipeError)
    assert str(result.exception).startswith(f"{recipe}:4: step 'fps' (sweep) ")
    assert "emotic is multi-label; remove the step or --skip fps" in str(result.exception)
