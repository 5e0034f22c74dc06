"""The answer judge: `--extract rules+judge|judge` against a real loopback chat server and the Gemma GGUF."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from emovlm.cli import main
from emovlm.errors import BackendError
from emovlm.labels import get_label_space
from emovlm.recognizers.judge import AnswerJudge
from emovlm.types import Prediction, Status
from openai_server import Behaviour, FakeOpenAIServer, Fault

os.environ["HF_HUB_OFFLINE"] = "1"
DFEW = get_label_space("dfew")
PROBE = "Reply with one word."
ANSWERS = [
    ("happy", "Happy"),  # clear: never asked
    ("surprise", "Happy and surprised, both at once."),  # two labels, no cue: asked
    ("neutral", "The video shows a man sitting in a car."),  # unparsed: asked
    ("sad", "The person is not angry; she looks sad."),  # negation settles it: never asked
]


def judge_reply(images: list[np.ndarray], text: str) -> str:
    """The served judge: reads the quoted answer the way a careful reader would."""
    if "Happy and surprised" in text:
        return "surprise"
    if "sitting in a car" in text:
        return "none"
    return "happy"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    behaviour = Behaviour(models=("judge-llm",), vision=False, answer=judge_reply)
    with FakeOpenAIServer(behaviour, lifetime=300) as srv:
        yield srv


def _questions(server: FakeOpenAIServer) -> list[dict]:
    return [r for r in server.received if r["text"] != PROBE]


def _answers_file(tmp_path: Path) -> Path:
    path = tmp_path / "answers.csv"
    lines = ["id,gt,pred"] + [f'{i},{gold},"{text}"' for i, (gold, text) in enumerate(ANSWERS)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _score(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["emovlm", "score", *argv])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 0


def test_rules_plus_judge_asks_only_about_unsettled_answers_caches_and_reports_agreement(
    server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    server.reset()
    source, out, report = _answers_file(tmp_path), tmp_path / "m.json", tmp_path / "report"
    argv = [str(source), "-l", "dfew", "--bootstrap", "0", "--extract", "rules+judge"]
    argv += ["--judge-backend", "openai", "--judge-model", "judge-llm"]
    argv += ["--judge-base-url", server.url, "--cache-dir", str(tmp_path / "cache")]
    _score([*argv, "--json", str(out), "--report", str(report), "--explain"], monkeypatch)

    asked = [r["body"] for r in _questions(server)]  # sent together: in any order
    assert len(asked) == 2  # the two answers the rules could not settle
    for body in asked:
        assert body["model"] == "judge-llm" and body["temperature"] == 0
        assert [m["role"] for m in body["messages"]] == ["user"]
    prompts = [body["messages"][0]["content"] for body in asked]
    (prompt,) = [p for p in prompts if "Happy and surprised, both at once." in p]
    assert "happy, sad, neutral, angry, surprise, disgust, fear" in prompt
    assert "Reply with one label from the list" in prompt

    metrics = json.loads(out.read_text())
    audit = metrics["parse_audit"]["judge"]
    assert audit == {"asked": 2, "agreed": 1, "agreement": 0.5, "used": 1}
    assert metrics["war"] == 0.75  # the judge's "surprise" is used; "none" agrees: unparsed
    assert metrics["judge"]["extract"] == "rules+judge"
    assert "agreed with the rules on 1 (50.0%)" in (report / "report.md").read_text()
    printed = capsys.readouterr().out
    assert "judge: surprise (differs)" in printed and "judge: none (agrees)" in printed

    server.reset()  # the same run again: every decision comes from the cache
    _score([*argv, "--json", str(out)], monkeypatch)
    assert _questions(server) == []
    assert json.loads(out.read_text())["parse_audit"]["judge"]["agreed"] == 1


def test_judge_mode_reads_every_answer_and_keeps_both_readings(server: FakeOpenAIServer) -> None:
    server.reset()
    judge = AnswerJudge(
        DFEW,
        extract="judge",
        backend="openai",
        model="judge-llm",
        base_url=server.url,
        cache=False,
        max_retries=0,
    )
    predictions = [
        Prediction(str(i), labels=p.labels, raw=text, status=p.status, extra={"parse": p.to_json()})
        for i, (_, text) in enumerate(ANSWERS)
        for p in [DFEW.parse(text)]
    ]
    failed = Prediction.failed("x", "timeout")
    reviewed = judge.review([*predictions, failed])
    assert len(_questions(server)) == len(ANSWERS)  # every answer, never the failed sample
    assert reviewed[-1] is failed
    sad = reviewed[3]  # the served judge says "happy": it disagrees and its reading is used
    assert sad.top == "happy" and sad.extra["judge"]["used"]
    assert sad.extra["parse"]["negated"] == ["angry"]  # the rules' reading stays beside it
    assert reviewed[0].extra["judge"]["agrees"] and reviewed[0].top == "happy"


def test_rules_plus_judge_asks_about_single_label_ambiguity_only() -> None:
    def judge_of(space_name: str) -> AnswerJudge:
        space = get_label_space(space_name)
        return AnswerJudge(space, backend="openai", model="m", base_url="http://127.0.0.1:9/v1")

    def read(space_name: str, text: str) -> Prediction:
        parsed = get_label_space(space_name).parse(text)
        return Prediction(
            "a", parsed.labels, raw=text, status=parsed.status, extra={"parse": parsed.to_json()}
        )

    dfew, emotic = judge_of("dfew"), judge_of("emotic")
    assert dfew.wants(read("dfew", "Happy and surprised."))
    assert not dfew.wants(read("dfew", "Neutral, Sad, Fear"))  # a ranked list is settled
    assert not dfew.wants(read("dfew", "Surprised, but mostly happy."))  # a cue settles it
    assert not emotic.wants(read("emotic", "She is happy and excited."))  # several is normal
    assert emotic.wants(read("emotic", "A man rides a bicycle."))  # unparsed


def test_a_failed_judge_request_keeps_the_rules_reading(server: FakeOpenAIServer) -> None:
    server.reset()
    server.behaviour.faults = {"Happy and surprised": [Fault(status=400)]}
    judge = AnswerJudge(
        DFEW, backend="openai", model="judge-llm", base_url=server.url, cache=False, max_retries=0
    )
    text = "Happy and surprised."
    parsed = DFEW.parse(text)
    prediction = Prediction("a", parsed.labels, raw=text, extra={"parse": parsed.to_json()})
    [kept] = judge.review([prediction])
    assert kept.labels == ("happy", "surprise") and kept.status is Status.OK
    assert kept.extra["judge"]["error"] and not kept.extra["judge"]["used"]


def test_an_unreachable_judge_server_fails_up_front_naming_it() -> None:
    judge = AnswerJudge(
        DFEW, backend="openai", model="m", base_url="http://127.0.0.1:9/v1", cache=False, timeout=2
    )
    parsed = DFEW.parse("Happy and surprised.")
    prediction = Prediction(
        "a", parsed.labels, raw="Happy and surprised.", extra={"parse": parsed.to_json()}
    )
    with pytest.raises(BackendError, match="127.0.0.1:9"):
        judge.review([prediction])


@pytest.mark.slow
def test_the_offline_gemma_judge_answers_and_its_decisions_are_cached(tmp_path: Path) -> None:
    judge = AnswerJudge(DFEW, extract="judge", max_new_tokens=4, cache_dir=str(tmp_path))
    texts = ["Happy and surprised, both at once.", "The man looks furious."]
    predictions = [
        Prediction(str(i), p.labels, raw=t, status=p.status, extra={"parse": p.to_json()})
        for i, t in enumerate(texts)
        for p in [DFEW.parse(t)]
    ]
    first = judge.review(predictions)
    assert all("reply" in p.extra["judge"] for p in first)
    assert not any(p.extra["judge"]["cached"] for p in first)
    again = judge.review(predictions)
    assert all(p.extra["judge"]["cached"] for p in again)
    assert [p.extra["judge"]["reply"] for p in again] == [p.extra["judge"]["reply"] for p in first]
