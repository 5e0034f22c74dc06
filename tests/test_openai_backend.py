"""The `openai` backend against a real OpenAI-compatible HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import io
import math
import time
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from emovlm.backends import openai_vlm
from emovlm.backends.openai_vlm import OpenAIVLM
from emovlm.backends.vlm import GenerationSettings, VideoInput, VLMRequest
from emovlm.errors import BackendError
from emovlm.labels import get_label_space
from openai_server import Behaviour, FakeOpenAIServer, Fault, label_distribution

KEY = "sk-test-secret-0123456789"
DFEW = get_label_space("dfew").labels
GREEDY = GenerationSettings(max_new_tokens=8)


def solid(rgb: tuple[int, int, int], size: int = 32) -> np.ndarray:
    """A solid-colour RGB image."""
    return np.full((size, size, 3), rgb, dtype=np.uint8)


RED, GREEN, BLUE, GREY = (
    solid((250, 0, 0)),
    solid((0, 250, 0)),
    solid((0, 0, 250)),
    solid((128,) * 3),
)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(lifetime=300) as srv:
        yield srv


@pytest.fixture()
def fresh(server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAIServer:
    """The server with default behaviour, a required key, and the key in $EMOVLM_TEST_KEY."""
    server.behaviour = Behaviour(api_key=KEY)
    server.reset()
    monkeypatch.setenv("EMOVLM_TEST_KEY", KEY)
    return server


def backend(server: FakeOpenAIServer, **kw: object) -> OpenAIVLM:
    """A backend for the test server with fast retries."""
    options: dict[str, object] = {
        "base_url": server.url,
        "api_key_env": "EMOVLM_TEST_KEY",
        "backoff": 0.01,
    }
    options.update(kw)
    return OpenAIVLM("tiny-vlm", **options)  # type: ignore[arg-type]


def decode(url: str) -> np.ndarray:
    """Pixels of a base64 JPEG data URL."""
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def test_generate_sends_images_as_jpeg_data_urls_and_answers_in_order(
    fresh: FakeOpenAIServer,
) -> None:
    requests = [
        VLMRequest((img, f"q{i}"), system="be brief")
        for i, img in enumerate((RED, GREEN, BLUE, GREY))
    ]
    answers = backend(fresh).generate(requests, GREEDY)
    assert [a.text for a in answers] == ["angry", "happy", "sad", "neutral"]
    assert all(
        a.cost.calls == 1 and a.cost.input_tokens > 0 and a.cost.output_tokens > 0 for a in answers
    )
    body = next(r["body"] for r in fresh.received if r["text"].endswith("q0"))
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    image_part, text_part = body["messages"][1]["content"]
    assert image_part["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert decode(image_part["image_url"]["url"]).shape == (32, 32, 3)
    assert text_part == {"type": "text", "text": "q0"}
    assert body["temperature"] == 0 and body["max_tokens"] == 8
    assert "logprobs" not in body and "top_logprobs" not in body
    assert {r["authorization"] for r in fresh.received} == {f"Bearer {KEY}"}


def test_video_frames_go_as_images_in_time_order(fresh: FakeOpenAIServer) -> None:
    clip = VideoInput((GREEN, RED, BLUE), fps=5.0)
    [answer] = backend(fresh).generate([VLMRequest((clip, "which?"))], GREEDY)
    assert answer.text == "happy"  # the first frame decides
    [received] = fresh.received
    colours = [int(np.argmax(img.reshape(-1, 3).mean(0))) for img in received["images"]]
    assert colours == [1, 0, 2]


def test_score_mode_returns_exact_probabilities_from_top_logprobs(fresh: FakeOpenAIServer) -> None:
    answers = backend(fresh).score([VLMRequest((GREEN, "s"))], DFEW, GREEDY)
    [answer] = answers
    body = fresh.received[0]["body"]
    assert body["logprobs"] is True and body["top_logprobs"] == 20
    expected = label_distribution("happy", DFEW)
    for label in DFEW:
        assert math.exp(answer.label_logprobs[label]) == pytest.approx(expected[label])


def test_concurrency_is_bounded(fresh: FakeOpenAIServer) -> None:
    fresh.behaviour.latency = 0.05
    requests = [VLMRequest((GREY, f"r{i}")) for i in range(24)]
    answers = backend(fresh, concurrency=4).generate(requests, GREEDY)
    assert all(not a.error for a in answers)
    assert fresh.max_in_flight == 4


def test_requests_share_a_pool_of_at_most_concurrency_kept_alive_connections(
    fresh: FakeOpenAIServer,
) -> None:
    requests = [VLMRequest((GREY, f"k{i}")) for i in range(24)]
    answers = backend(fresh, concurrency=4).generate(requests, GREEDY)
    assert all(not a.error for a in answers) and len(fresh.received) == 24
    assert len({r["peer"] for r in fresh.received}) <= 4  # no connection of its own per request


def test_retries_429_with_retry_after_and_5xx_then_succeeds(fresh: FakeOpenAIServer) -> None:
    fresh.behaviour.faults = {
        "[flaky]": [Fault(status=429, retry_after=0.3), Fault(status=503), Fault(drop=True)]
    }
    started = time.perf_counter()
    [answer] = backend(fresh).generate([VLMRequest((RED, "[flaky]"))], GREEDY)
    assert time.perf_counter() - started >= 0.3  # Retry-After honoured
    assert answer.text == "angry" and answer.cost.calls == 4 and not answer.error


def test_retries_are_bounded_and_the_failure_is_per_request(fresh: FakeOpenAIServer) -> None:
    fresh.behaviour.faults = {
        "[down]": [Fault(status=500)] * 10,
        "[junk]": [Fault(garbage=True)] * 10,
    }
    requests = [
        VLMRequest((RED, "[down]")),
        VLMRequest((RED, "[junk]")),
        VLMRequest((GREEN, "fine")),
    ]
    down, junk, fine = backend(fresh, max_retries=2).generate(requests, GREEDY)
    assert down.cost.calls == 3 and "server error 500 after 3 attempts" in down.error
    assert junk.cost.calls == 3 and "malformed response" in junk.error
    assert fine.text == "happy" and not fine.error


def test_timeouts_are_retried_then_reported(fresh: FakeOpenAIServer) -> None:
    fresh.behaviour.faults = {"[slow]": [Fault(delay=1.0)] * 3}
    [answer] = backend(fresh, timeout=0.2, max_retries=1).generate(
        [VLMRequest((RED, "[slow]"))], GREEDY
    )
    assert "timed out after 0.2 s (2 attempts)" in answer.error


def test_context_too_long_refusal_and_empty_answers_are_per_request(
    fresh: FakeOpenAIServer,
) -> None:
    fresh.behaviour.context_limit = 100
    requests = [
        VLMRequest((RED, RED, "too many images")),
        VLMRequest((RED, "[refuse]")),
        VLMRequest((RED, "[empty]")),
    ]
    long, refused, empty = backend(fresh).generate(requests, GREEDY)
    assert long.error.startswith("context too long: This model's maximum context length is 100")
    assert long.cost.calls == 1  # a 400 is not retried
    assert refused.refusal.startswith("I can't") and not refused.error
    assert empty.text == "" and not empty.error


def test_the_api_key_never_reaches_messages_or_fingerprints(fresh: FakeOpenAIServer) -> None:
    vlm = backend(fresh)
    [answer] = vlm.generate([VLMRequest((RED, "[echo-key]"))], GREEDY)
    assert "bad request from key" in answer.error
    assert KEY not in answer.error and "[redacted]" in answer.error
    assert KEY not in repr(vlm.fingerprint()) and KEY not in repr(vars(vlm))


def test_preflight_passes_on_a_good_server(fresh: FakeOpenAIServer) -> None:
    vlm = backend(fresh)
    vlm.preflight("generate")
    vlm.preflight("score")
    calls = fresh.calls
    vlm.preflight("score")  # checked once per mode
    assert fresh.calls == calls


def test_preflight_unreachable_server() -> None:
    vlm = OpenAIVLM("m", base_url="http://127.0.0.1:9/v1", timeout=2)
    with pytest.raises(BackendError, match=r"cannot reach .*127.0.0.1:9/v1.*fix --base-url"):
        vlm.preflight("generate")


def test_preflight_wrong_model_lists_what_the_server_serves(fresh: FakeOpenAIServer) -> None:
    vlm = OpenAIVLM("gpt-nothing", base_url=fresh.url, api_key_env="EMOVLM_TEST_KEY")
    with pytest.raises(
        BackendError, match="does not serve model 'gpt-nothing'; it serves: tiny-vlm"
    ):
        vlm.preflight("generate")
    fresh.behaviour.list_models = False
    with pytest.raises(BackendError, match="does not serve model 'gpt-nothing'; fix --model"):
        vlm.preflight("generate")


def test_preflight_server_without_vision(fresh: FakeOpenAIServer) -> None:
    fresh.behaviour.vision = False
    with pytest.raises(BackendError, match="does not accept images"):
        backend(fresh).preflight("generate")


def test_preflight_score_mode_on_a_server_without_logprobs(fresh: FakeOpenAIServer) -> None:
    fresh.behaviour.logprobs = False
    vlm = backend(fresh)
    vlm.preflight("generate")
    with pytest.raises(
        BackendError, match="does not return token log-probabilities.*--mode generate"
    ):
        vlm.preflight("score")


def test_preflight_rejected_or_missing_key_names_the_variable_not_the_value(
    fresh: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMOVLM_TEST_KEY", "sk-wrong-key-999999")
    with pytest.raises(BackendError, match=r"\$EMOVLM_TEST_KEY was rejected") as info:
        backend(fresh).preflight("generate")
    assert "sk-wrong" not in str(info.value)
    monkeypatch.delenv("EMOVLM_TEST_KEY")
    with pytest.raises(BackendError, match=r"\$EMOVLM_TEST_KEY is not set"):
        backend(fresh).preflight("generate")


def test_fingerprint_drops_credentials_from_the_url() -> None:
    vlm = OpenAIVLM("m", base_url="https://user:pw@example.org:8443/v1/?key=abc")
    assert vlm.fingerprint() == {
        "backend": "openai",
        "base_url": "https://example.org:8443/v1",
        "model": "m",
    }


@pytest.mark.parametrize(
    ("asked", "listed", "same"),
    [
        ("gemini-2.5-flash", "models/gemini-2.5-flash", True),
        ("llava", "llava:latest", True),
        ("Qwen/Qwen2.5-VL-7B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct", True),
        ("llava", "llava:13b", False),
        ("qwen", "qwen2", False),
    ],
)
def test_listed_model_names_match_as_gemini_and_ollama_write_them(
    asked: str, listed: str, same: bool
) -> None:
    assert openai_vlm._same_model(asked, listed) is same


def test_works_inside_a_running_event_loop(fresh: FakeOpenAIServer) -> None:
    import asyncio

    async def inside() -> str:
        return backend(fresh).generate([VLMRequest((BLUE, "x"))], GREEDY)[0].text

    assert asyncio.run(inside()) == "sad"
