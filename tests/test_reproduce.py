"""`emovlm reproduce paper-a-dfer` on a DFEW fixture with the loopback VLM server and the offline
specialist: checked before running, estimated without a call, run end to end, SIGKILLed mid-way
and resumed without asking the server again for anything it had answered."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from emovlm.backends.visual_tokens import frames_tokens, get_family
from emovlm.cli import app
from emovlm.reproduce.recipe import RecipeError, load_recipe, shipped_recipes
from openai_server import Behaviour, FakeOpenAIServer
from reproduce_fixtures import DFEW_CLIPS, KillSwitch, dfew_root, run_until_killed, work


@pytest.fixture(scope="module")
def dfew(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return dfew_root(tmp_path_factory.mktemp("dfew"))


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(Behaviour(), lifetime=900) as running:
        yield running


def reproduce(*args: str | Path) -> Result:
    """The real CLI in this process."""
    return CliRunner().invoke(app, ["reproduce", *map(str, args)])


def served(server: FakeOpenAIServer, cache: Path) -> list[str]:
    """Flags pointing the recipe at the test server, one request at a time, one sample a batch."""
    return [
        "--backend", "openai", "--base-url", server.url, "--model", "tiny-vlm", "--no-progress",
        "--batch-size", "1", "--option", "concurrency=1", "--option", f"cache_dir={cache}",
    ]  # fmt: skip


def test_shipped_recipes_load_with_their_steps_and_lines() -> None:
    assert {"paper-a-dfer", "paper-b-emotic"} <= set(shipped_recipes())
    recipe = load_recipe("paper-a-dfer")
    assert recipe.step_names()[:3] == ["zero-shot", "zero-shot-balanced", "fps"]
    assert recipe.step("fps").spec["values"] == [1, 5, 10, 15, 20, 25]
    assert not recipe.step("finetune").enabled
    text = recipe.path.read_text(encoding="utf-8").splitlines()
    assert text[recipe.line("steps", "msce") - 1].strip() == "msce:"
    assert text[recipe.line("steps", "msce", "per_gap") - 1].strip() == "per_gap: 4"


BAD_RECIPES = {
    "unknown step kind": (
        "  zero-shot:\n    run: evaluate\n    recognizer: vlm\n",
        2,
        "has run: 'evaluate'; set run: to one of eval, sweep",
    ),
    "unknown key": (
        "  zero-shot:\n    run: eval\n    recognizer: vlm\n    limit: 5\n",
        4,
        "unknown key 'limit' in steps.zero-shot; use one of:",
    ),
    "option of another recognizer": (
        "  zero-shot:\n    run: eval\n    recognizer: specialist\n    options:\n"
        "      base_url: http://x\n",
        5,
        "option 'base_url' does not apply to recognizer specialist",
    ),
    "fine-tuning setting misspelt": (
        "  finetune:\n    run: finetune\n    options:\n      epoch: 1\n",
        4,
        "'epoch' is not a setting of LoRA fine-tuning; use:",
    ),
    "diagnosis of a missing step": (
        "  longtail:\n    run: diagnose\n    of: zero-shot\n",
        3,
        "which is not an earlier eval step",
    ),
}


@pytest.mark.parametrize("case", list(BAD_RECIPES))
def test_a_bad_recipe_names_its_line_and_the_fix(case: str, tmp_path: Path, dfew: Path) -> None:
    steps, line, message = BAD_RECIPES[case]
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(f"dataset:\n  name: dfew\nsteps:\n{steps}", encoding="utf-8")
    result = reproduce(recipe, "--root", dfew, "--out", tmp_path / "out")
    assert isinstance(result.exception, RecipeError)
    assert f"{recipe}:{line + 3}: " in str(result.exception)
    assert message in str(result.exception)
    assert not (tmp_path / "out").exists()


def test_missing_data_unknown_steps_and_no_server_fail_before_any_step(
    tmp_path: Path, dfew: Path, server: FakeOpenAIServer
) -> None:
    recipe = load_recipe("paper-a-dfer")
    out = tmp_path / "out"
    missing = reproduce("paper-a-dfer", "--root", tmp_path / "nowhere", "--out", out)
    assert f"{recipe.path}:{recipe.line('dataset')}: dataset root" in str(missing.exception)
    assert "pass --root with the folder holding dfew" in str(missing.exception)
    unknown = reproduce("paper-a-dfer", "--root", dfew, "--only", "zero-shot,fsp", "--out", out)
    assert "--only fsp: no such step" in str(unknown.exception)
    refused = reproduce(
        "paper-a-dfer", "--root", dfew, "--backend", "openai", "--model", "tiny-vlm",
        "--base-url", "http://127.0.0.1:9/v1", "--out", out,
    )  # fmt: skip
    message = str(refused.exception)
    assert f"{recipe.path}:{recipe.line('steps', 'zero-shot')}: step 'zero-shot'" in message
    assert "cannot reach" in message and "start the server or fix --base-url" in message
    wrong_model = reproduce(
        "paper-a-dfer", "--root", dfew, "--backend", "openai", "--model", "big-vlm",
        "--base-url", server.url, "--out", out,
    )  # fmt: skip
    assert "does not serve model 'big-vlm'" in str(wrong_model.exception)
    assert not out.exists()
    served_finetune = reproduce(
        "paper-a-dfer", "--root", dfew, "--only", "finetune", "--backend", "openai",
        "--model", "tiny-vlm", "--base-url", server.url, "--out", out,
    )  # fmt: skip
    assert "trains a LoRA adapter, which needs a local model" in str(served_finetune.exception)
    unused = reproduce("paper-a-dfer", "--root", dfew, "--option", "clip_model=/x", "--out", out)
    assert "--option clip_model: no chosen step" in str(unused.exception)
    no_model = reproduce("paper-a-dfer", "--root", dfew, "--only", "zero-shot", "--out", out)
    assert "runs a VLM but no model is given" in str(no_model.exception)
    assert "--skip zero-shot" in str(no_model.exception)


def test_dry_run_lists_steps_with_requests_and_tokens_without_a_call(
    dfew: Path, server: FakeOpenAIServer, tmp_path: Path
) -> None:
    result = reproduce(
        "paper-a-dfer", "--root", dfew, "--dry-run", "--out", tmp_path / "out",
        *served(server, tmp_path / "cache"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert server.calls == 0 and not (tmp_path / "out").exists()
    n = len(DFEW_CLIPS)
    per_clip = frames_tokens(get_family("qwen2.5-vl"), 8, 224, 224)
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if "│" in line}
    assert [c.strip() for c in rows["zero-shot"].split("│")[3:6]] == [
        str(n),
        str(n),
        f"{n * per_clip:,}",
    ]
    assert rows["specialist"].split("│")[4].strip() == "0"
    assert "finetune" not in rows  # off unless --only finetune
    without_model = reproduce("paper-a-dfer", "--root", dfew, "--dry-run", "--only", "fps,msce")
    assert without_model.exit_code == 0, without_model.output
    assert "zero-shot" not in without_model.output and "msce" in without_model.output


@pytest.mark.slow
def test_paper_a_runs_end_to_end_is_killed_and_resumes_without_asking_twice(
    dfew: Path, server: FakeOpenAIServer, tmp_path: Path
) -> None:
    # an uninterrupted run: what the whole recipe asks the server
    whole = reproduce("paper-a-dfer", "--root", dfew, "--out", tmp_path / "whole",
                      *served(server, tmp_path / "cache-whole"))  # fmt: skip
    assert whole.exit_code == 0, whole.output
    everything = work(server.received)
    server.reset()

    # the same run, SIGKILLed at the 3rd request after the first step finished
    out = tmp_path / "out"
    first_marker = out / "zero-shot" / "step.json"
    switch = KillSwitch(server.behaviour.answer, first_marker, nth=3)
    server.behaviour.answer = switch
    status = run_until_killed(
        switch, "reproduce", "paper-a-dfer", "--root", dfew, "--out", out,
        *served(server, tmp_path / "cache"),
    )  # fmt: skip
    assert status == -signal.SIGKILL
    answered = work(server.received[:-1])  # the last request was in flight when the CLI died
    assert not (out / "fps" / "step.json").exists() and (out / "fps" / "store.sqlite").exists()
    marker_before = first_marker.read_bytes()
    server.reset()

    resumed = reproduce("paper-a-dfer", "--root", dfew, "--out", out,
                        *served(server, tmp_path / "cache"))  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    again = work(server.received)
    assert not answered & again  # nothing answered before the kill was asked again
    assert answered + again == everything  # and nothing was left out
    assert "zero-shot: finished before, skipped" in resumed.output
    assert "fps: running" in resumed.output
    assert first_marker.read_bytes() == marker_before

    def metrics(folder: Path, step: str) -> dict:
        record = json.loads((folder / step / "step.json").read_text(encoding="utf-8"))
        path = folder / step / record["result"]["metrics_file"]
        return json.loads(path.read_text(encoding="utf-8"))

    assert (
        metrics(out, "zero-shot")["per_class"]
        == metrics(tmp_path / "whole", "zero-shot")["per_class"]
    )
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| Qwen2.5-VL (vlm) | published | 0.5053 | 0.4614 | 0.4552 | — |" in report
    fps_rows = [line for line in report.splitlines() if line.startswith("| 5 |")]
    assert fps_rows and fps_rows[0].split("|")[3].strip() == "0.28"
    assert "| msce-vlm |" in report and "0.4820" in report
    assert "Sink: neutral" in report
    for figure in ("fps", "msce", "confusion", "f1_frequency_en", "f1_frequency_zh"):
        assert (out / "figures" / f"{figure}.png").stat().st_size > 1000
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count("<img ") == 5 and "0.4552" in html


def test_finished_steps_are_skipped_and_a_changed_setting_reruns_its_dependants(
    dfew: Path, server: FakeOpenAIServer, tmp_path: Path
) -> None:
    recipe = tmp_path / "mine.yaml"
    text = (
        "dataset: {name: dfew, fold: 1}\ndefaults: {frames: 'uniform:8'}\nbootstrap: 50\n"
        "published: paper-a\nsteps:\n  zero-shot: {run: eval, recognizer: vlm}\n"
        "  longtail: {run: diagnose, of: zero-shot}\n"
    )
    recipe.write_text(text, encoding="utf-8")
    args = [recipe, "--root", dfew, "--out", tmp_path / "out", *served(server, tmp_path / "c")]
    first = reproduce(*args)
    assert first.exit_code == 0, first.output
    assert sum(work(server.received).values()) == len({colour for *_, colour in DFEW_CLIPS})
    server.reset()
    again = reproduce(*args)
    assert "zero-shot: finished before, skipped" in again.output
    assert "longtail: finished before, skipped" in again.output
    assert not work(server.received)  # only the reachability check was sent
    recipe.write_text(text.replace("uniform:8", "uniform:4"), encoding="utf-8")
    changed = reproduce(*args)
    assert "zero-shot: running" in changed.output and "longtail: running" in changed.output
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "| Gemini 2.5 Flash (vlm) | published | 0.6412 | 0.6331 | 0.6008 | — |" in report


@pytest.mark.slow
def test_the_class_balanced_lora_step_trains_a_local_vlm_and_reports_recall(
    dfew: Path, tmp_path: Path
) -> None:
    from tiny_models import build_tiny_qwen2_vl

    recipe = tmp_path / "lora.yaml"
    recipe.write_text(
        "dataset: {name: dfew, fold: 1}\nbootstrap: 50\npublished: paper-a\nsteps:\n"
        "  finetune:\n    run: finetune\n    sampler: class-balanced\n"
        "    allow_missing_classes: true  # the fixture has 4 of DFEW's 7 classes\n"
        "    options: {rank: 4, epochs: 1, learning_rate: 0.01, max_new_tokens: 4}\n",
        encoding="utf-8",
    )
    model = build_tiny_qwen2_vl(tmp_path / "qwen")
    out = tmp_path / "out"
    result = reproduce(
        recipe, "--root", dfew, "--backend", "transformers", "--model", model, "--out", out,
        "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (out / "finetune" / "adapter").is_dir()
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Class-balanced LoRA" in report
    assert "| class | train n | test n | recall base | recall adapter |" in report
    assert "| happy | 2 | 2 |" in report


def test_dataset_flag_runs_a_recipe_on_another_dataset(dfew: Path) -> None:
    on_mafw = reproduce(
        "paper-a-dfer", "--dataset", "mafw", "--root", dfew, "--dry-run", "--only", "fps"
    )  # fmt: skip
    assert "paper-a-dfer.yaml:10: cannot open mafw test under" in str(on_mafw.exception)
    assert "set_1/test.txt" in str(on_mafw.exception)  # MAFW's own layout, fold 1
