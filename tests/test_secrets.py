"""Secrets and outputs: no API key in anything a run writes, escaped reports, isolated caches."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from emovlm import cli
from emovlm.labels import get_label_space
from emovlm.recognizers.vlm import VLMRecognizer
from emovlm.run.store import RunStore
from emovlm.types import Sample, Status
from openai_server import Behaviour, FakeOpenAIServer
from test_runner_support import served_eval_args, write_colour_manifest

KEY_VARIABLE = "EMOVLM_PLANTED_KEY"


def is_blue(images: list[np.ndarray]) -> bool:
    """Whether the first image is mostly blue."""
    return bool(images) and int(np.argmax(images[0].reshape(-1, 3).mean(0))) == 2


def files_under(*folders: Path) -> list[Path]:
    """Every file under the folders."""
    return [p for folder in folders for p in folder.rglob("*") if p.is_file()]


def test_the_api_key_is_in_no_file_and_no_output_of_a_run(tmp_path: Path) -> None:
    key = f"sk-planted-{secrets.token_hex(16)}"
    manifest = write_colour_manifest(tmp_path / "faces", 12)
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    behaviour = Behaviour(  # blue faces make the server quote the key back in an error
        api_key=key, key=lambda images, text: "[echo-key]" if is_blue(images) else text
    )
    env = {**os.environ, KEY_VARIABLE: key, "EMOVLM_CACHE": str(cache)}
    outputs = []
    with FakeOpenAIServer(behaviour, lifetime=120) as server:
        args = served_eval_args(manifest, server.url, run_dir, "--api-key-env", KEY_VARIABLE)
        for more in ([], ["--resume", "--retry-failed"]):
            done = subprocess.run(
                [sys.executable, "-m", "emovlm", *args, *more],
                env=env,
                capture_output=True,
                text=True,
            )
            assert done.returncode == 0, done.stderr[-3000:]
            outputs += [done.stdout, done.stderr]
        assert all(r["authorization"] == f"Bearer {key}" for r in server.received)
    report = subprocess.run(
        [sys.executable, "-m", "emovlm", "report", str(run_dir), "--bootstrap", "50"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0, report.stderr
    outputs += [report.stdout, report.stderr]

    with RunStore(run_dir) as store:
        (config,) = store.keys()
        echoed = [p for p in store.rows(config)[0] if p.status is Status.FAILED]
    assert len(echoed) == 3 and all("[redacted]" in p.reason for p in echoed)
    written = files_under(run_dir, cache)
    names = {p.name for p in written}
    assert {"store.sqlite", "config.yaml", "metrics.json", "report.html", "responses.sqlite"} <= (
        names
    )
    leaks = [str(p) for p in written if key.encode() in p.read_bytes()]
    leaks += [f"output {i}" for i, text in enumerate(outputs) if key in text]
    assert not leaks
    assert KEY_VARIABLE in (run_dir / "config.yaml").read_text()  # the variable's name only


def test_html_reports_escape_everything_the_model_says(tmp_path: Path) -> None:
    manifest = write_colour_manifest(tmp_path / "faces", 8)
    lines = manifest.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace("s000,", '"<i onmouseover=alert(2)>s000</i>",', 1)
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    hostile = '<script>alert("pwned")</script><img src=x onerror=alert(1)> happy'
    behaviour = Behaviour(answer=lambda images, text: hostile)
    with FakeOpenAIServer(behaviour, lifetime=120) as server:
        done = CliRunner(env={"EMOVLM_CACHE": str(tmp_path / "cache")}).invoke(
            cli.app,
            served_eval_args(manifest, server.url, tmp_path / "run", "--max-new-tokens", "64"),
        )
    assert done.exit_code == 0, done.output
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    for markup in ("<script>alert", "<img src=x", "<i onmouseover"):
        assert markup not in html
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html
    assert "&lt;i onmouseover=alert(2)&gt;s000&lt;/i&gt;" in html


@pytest.fixture
def two_servers() -> Iterator[tuple[FakeOpenAIServer, FakeOpenAIServer]]:
    """Two servers of a model named alike: one answers by colour, the other always 'surprise'."""
    first = FakeOpenAIServer(Behaviour(models=("tiny-vlm", "other-vlm")), lifetime=120)
    second = FakeOpenAIServer(Behaviour(answer=lambda images, text: "surprise"), lifetime=120)
    with first, second:
        yield first, second


def test_cached_answers_of_one_model_never_answer_for_another(
    two_servers: tuple[FakeOpenAIServer, FakeOpenAIServer], tmp_path: Path
) -> None:
    first, second = two_servers
    manifest = write_colour_manifest(tmp_path / "faces", 4)
    samples = [
        Sample(id=line.split(",")[0], media=manifest.parent / line.split(",")[1])
        for line in manifest.read_text().splitlines()[1:]
    ]

    def answers(server: FakeOpenAIServer, model: str) -> tuple[list[str | None], int]:
        server.reset()
        recognizer = VLMRecognizer(
            get_label_space("dfew"),
            backend="openai",
            model=model,
            base_url=server.url,
            frames="uniform:1",
            cache_dir=str(tmp_path / "cache"),
        )
        return [p.top for p in recognizer.predict(samples)], server.calls

    by_colour = ["angry", "happy", "sad", "neutral"]
    assert answers(first, "tiny-vlm") == (by_colour, 5)  # the probe and four questions
    assert answers(first, "tiny-vlm") == (by_colour, 0)  # all four from the cache
    assert answers(second, "tiny-vlm") == (["surprise"] * 4, 5)  # same name, other server
    assert answers(first, "other-vlm") == (by_colour, 5)  # same server, other model
