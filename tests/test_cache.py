"""The response cache: keys cover everything that decides an answer; reruns make no model call."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from emovlm.backends.cache import ResponseCache, request_key
from emovlm.backends.cached import CachedVLM
from emovlm.backends.openai_vlm import OpenAIVLM
from emovlm.backends.vlm import GenerationSettings, VideoInput, VLMAnswer, VLMRequest
from emovlm.types import Cost
from openai_server import Behaviour, FakeOpenAIServer, Fault

GREEDY = GenerationSettings(max_new_tokens=8)
RED = np.full((16, 16, 3), (250, 0, 0), dtype=np.uint8)
GREEN = np.full((16, 16, 3), (0, 250, 0), dtype=np.uint8)


def test_request_key_hashes_pixels_and_settings() -> None:
    base = request_key({"model": "m"}, (RED, "which?"), GREEDY)
    assert base == request_key({"model": "m"}, (RED.copy(), "which?"), GREEDY)
    changed = RED.copy()
    changed[0, 0, 0] = 0
    assert base != request_key({"model": "m"}, (changed, "which?"), GREEDY)
    assert base != request_key({"model": "m"}, (RED, "which?"), replace(GREEDY, max_new_tokens=9))
    assert base != request_key({"model": "m2"}, (RED, "which?"), GREEDY)
    assert base != request_key({"model": "m"}, (RED[:8], "which?"), GREEDY)
    video = VideoInput((RED, GREEN), fps=5.0)
    assert request_key(video) != request_key(replace(video, fps=10.0))


def test_request_key_refuses_what_it_cannot_hash() -> None:
    with pytest.raises(TypeError, match="object"):
        request_key(object())


def test_cache_persists_across_instances(tmp_path: Path) -> None:
    first = ResponseCache(tmp_path)
    answer = VLMAnswer(text="sad", label_logprobs={"sad": -0.1}, cost=Cost(1, 90, 64, 2, 0.5))
    first.put_many({"k1": answer.to_json()})
    first.close()
    second = ResponseCache(tmp_path)
    assert len(second) == 1
    got = second.get_many(["k1", "missing"])
    assert list(got) == ["k1"]
    restored = VLMAnswer.from_json(got["k1"])
    assert restored == replace(answer, cached=True)
    assert (tmp_path / "responses.sqlite").is_file()


def test_default_folder_follows_emovlm_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMOVLM_CACHE", str(tmp_path / "c"))
    assert ResponseCache().path == tmp_path / "c" / "responses.sqlite"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(lifetime=300) as srv:
        yield srv


@pytest.fixture()
def fresh(server: FakeOpenAIServer) -> FakeOpenAIServer:
    server.behaviour = Behaviour()
    server.reset()
    return server


def _cached(server: FakeOpenAIServer, folder: Path) -> CachedVLM:
    return CachedVLM(
        OpenAIVLM("tiny-vlm", base_url=server.url, backoff=0.01, max_retries=1),
        ResponseCache(folder),
    )


def test_a_rerun_makes_no_model_call_not_even_a_preflight(
    fresh: FakeOpenAIServer, tmp_path: Path
) -> None:
    requests = [VLMRequest((RED, "a")), VLMRequest((GREEN, "b"))]
    first = _cached(fresh, tmp_path).generate(requests, GREEDY)
    assert [a.text for a in first] == ["angry", "happy"] and not any(a.cached for a in first)
    fresh.reset()
    again = _cached(fresh, tmp_path).generate(requests, GREEDY)
    assert fresh.calls == 0 and fresh.received == []
    assert [a.text for a in again] == ["angry", "happy"] and all(a.cached for a in again)
    assert [a.cost for a in again] == [a.cost for a in first]  # the original call's cost


def test_only_misses_go_to_the_model_and_modes_do_not_share_entries(
    fresh: FakeOpenAIServer, tmp_path: Path
) -> None:
    vlm = _cached(fresh, tmp_path)
    vlm.generate([VLMRequest((RED, "a"))], GREEDY)
    fresh.reset()
    vlm.generate([VLMRequest((RED, "a")), VLMRequest((GREEN, "new"))], GREEDY)
    assert [r["text"] for r in fresh.received] == ["new"]
    fresh.reset()
    [scored] = vlm.score([VLMRequest((RED, "a"))], ("angry", "happy"), GREEDY)
    assert fresh.calls >= 1 and scored.label_logprobs is not None


def test_sampled_requests_and_failures_are_never_cached(
    fresh: FakeOpenAIServer, tmp_path: Path
) -> None:
    vlm = _cached(fresh, tmp_path)
    hot = GenerationSettings(max_new_tokens=8, temperature=0.7)
    vlm.generate([VLMRequest((RED, "a"))], hot)
    vlm.generate([VLMRequest((RED, "a"))], hot)
    assert len(vlm.cache) == 0
    fresh.behaviour.faults = {"[bad]": [Fault(status=500)] * 2}
    [failed] = vlm.generate([VLMRequest((RED, "[bad]"))], GREEDY)
    assert failed.error and len(vlm.cache) == 0
    [ok] = vlm.generate([VLMRequest((RED, "[bad]"))], GREEDY)  # faults used up: now it works
    assert ok.text == "angry" and len(vlm.cache) == 1
