"""Caption → text LLM on EMOTIC samples: both stages on a real local server, on tiny local models,
and (slow) the offline Gemma 3 270M GGUF picking labels from a real caption."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from emovlm.errors import InputError
from emovlm.eval.report import SMOKE_TEST_NOTICE, notices, write_report
from emovlm.eval.scoring import score_predictions
from emovlm.labels import get_label_space
from emovlm.recognizers.caption_llm import CaptionLLMRecognizer
from emovlm.types import Prediction, Sample, Status
from openai_server import Behaviour, FakeOpenAIServer
from test_text_llm import build_tiny_causal_lm
from tiny_models import build_tiny_qwen2_vl

os.environ["HF_HUB_OFFLINE"] = "1"
EMOTIC = get_label_space("emotic")
PROBE = "Reply with one word."
CAPTION = (
    "A man in a white spacesuit smiles broadly at the camera. He stands upright in front of an "
    "American flag, holding his helmet, and looks proud and relaxed."
)


def two_stage_answer(images: list[np.ndarray], text: str) -> str:
    """Images get the caption (the VLM stage); text alone gets labels (the text LLM stage)."""
    if images:
        return CAPTION
    return "happiness, confidence, pride" if "smiles broadly" in text else "neutral"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(lifetime=300) as srv:
        yield srv


@pytest.fixture()
def fresh(server: FakeOpenAIServer) -> FakeOpenAIServer:
    server.behaviour = Behaviour(
        models=("tiny-vlm", "text-llm"), labels=EMOTIC.labels, answer=two_stage_answer
    )
    server.reset()
    return server


@pytest.fixture(scope="module")
def photo(asset: Callable[[str], Path]) -> Sample:
    box = (160.0, 40.0, 360.0, 240.0)
    return Sample("astronaut#0", asset("astronaut"), labels=("happiness", "confidence"), box=box)


def served(server: FakeOpenAIServer, **options: object) -> CaptionLLMRecognizer:
    settings: dict[str, object] = {
        "backend": "openai",
        "model": "tiny-vlm",
        "base_url": server.url,
        "llm_backend": "openai",
        "llm_model": "text-llm",
        "llm_base_url": server.url,
        "cache": False,
        "max_retries": 0,
    }
    settings.update(options)
    return CaptionLLMRecognizer(EMOTIC, **settings)  # type: ignore[arg-type]


def questions(server: FakeOpenAIServer) -> list[dict]:
    return [r for r in server.received if r["text"] != PROBE]


def test_the_vlm_captions_the_boxed_person_and_the_llm_picks_from_the_caption(
    fresh: FakeOpenAIServer, photo: Sample
) -> None:
    [prediction] = served(fresh).predict([photo])
    caption_request, pick_request = questions(fresh)
    assert len(caption_request["images"]) == 1 and "red box" in caption_request["text"]
    assert "Describe this person" in caption_request["text"]
    assert pick_request["images"] == [] and CAPTION in pick_request["text"]
    assert "Answer with up to 6 emotions" in pick_request["text"]
    assert all(label in pick_request["text"] for label in EMOTIC.labels)
    assert prediction.labels == ("happiness", "confidence", "pride")  # pride: out of set, kept
    assert prediction.status is Status.OK and prediction.extra["description"] == CAPTION
    assert prediction.cost.calls == 2 and prediction.raw == "happiness, confidence, pride"


def test_definitions_prompt_and_score_mode_on_the_llm_stage(
    fresh: FakeOpenAIServer, photo: Sample
) -> None:
    fresh.behaviour.answer = lambda images, text: CAPTION if images else "happiness"
    [prediction] = served(fresh, prompt="pick-labels-definitions", mode="score").predict([photo])
    pick_request = questions(fresh)[-1]
    assert "- happiness: feeling delighted" in pick_request["text"]
    assert pick_request["body"]["logprobs"] is True
    assert prediction.labels[0] == "happiness" and len(prediction.labels) == 6
    assert set(prediction.scores) == set(EMOTIC.labels)


def test_a_failed_or_refused_caption_asks_the_llm_nothing(
    fresh: FakeOpenAIServer, photo: Sample, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    refusing = tmp_path / "refusing.j2"
    refusing.write_text("[refuse] Describe the person in the red box.", encoding="utf-8")
    failed, refused = (
        served(fresh).predict([Sample("b#0", broken, box=(0, 0, 5, 5))])[0],
        served(fresh, caption_prompt=str(refusing)).predict([photo])[0],
    )
    assert failed.status is Status.FAILED and failed.reason.startswith("captioning failed")
    assert refused.status is Status.UNPARSED and "refused" in refused.reason
    assert all(r["images"] for r in questions(fresh))  # no text-only (LLM) question was sent


def test_local_models_run_both_stages(photo: Sample, tmp_path: Path) -> None:
    vlm = build_tiny_qwen2_vl(tmp_path / "qwen")
    llm = build_tiny_causal_lm(tmp_path / "llm", chat=False)
    recognizer = CaptionLLMRecognizer(
        EMOTIC,
        model=str(vlm),
        llm_model=str(llm),
        caption_tokens=8,
        max_new_tokens=6,
        image_size=56,
        cache_dir=str(tmp_path / "cache"),
    )
    first = recognizer.predict([photo])
    again = recognizer.predict([photo])  # answered from the response cache
    assert first[0].status in (Status.OK, Status.OUT_OF_SET, Status.UNPARSED)
    assert first[0].extra["description"] and first[0].labels == again[0].labels
    assert again[0].extra["cached"] and again[0].extra["caption_cached"]
    config = recognizer.config()
    assert config["captioner"]["prompt"] == "caption" and config["picker"]["model"] == str(llm)


def test_caption_llm_needs_a_captioning_vlm() -> None:
    with pytest.raises(InputError, match="needs --model"):
        CaptionLLMRecognizer(EMOTIC)


@pytest.mark.slow
def test_gemma_picks_parsed_labels_from_a_real_caption_on_cpu(
    fresh: FakeOpenAIServer, photo: Sample, tmp_path: Path
) -> None:
    recognizer = served(
        fresh, llm_backend="transformers", llm_model="gemma3-270m", llm_base_url=None
    )
    [prediction] = recognizer.predict([photo])
    assert prediction.extra["description"] == CAPTION
    assert prediction.status is Status.OK, prediction.raw
    assert any(label in EMOTIC for label in prediction.labels)
    assert prediction.cost.output_tokens > 0


def test_the_gemma_fallback_warns_and_is_flagged_for_the_report(
    server: FakeOpenAIServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    with caplog.at_level(logging.WARNING):
        fallback = served(
            server, llm_backend="transformers", llm_model="gemma3-270m", llm_base_url=None
        )
    [warning] = [r.getMessage() for r in caplog.records if "gemma3-270m" in r.getMessage()]
    assert "not meaningful" in warning and "--llm-model" in warning and "\n" not in warning
    assert notices(fallback.config()) == [SMOKE_TEST_NOTICE]
    paths = write_report(
        score_predictions(
            [("happy",)],
            [Prediction("a", labels=("happy",))],
            get_label_space("dfew"),
            n_bootstrap=0,
        ),
        tmp_path,
        title="t",
        warnings=notices(fallback.config()),
    )
    for kind in ("markdown", "html"):
        assert "its labels are not meaningful" in paths[kind].read_text(encoding="utf-8")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        chosen = served(server)
    assert notices(chosen.config()) == [] and not caplog.records
