"""Adaptive concurrency and rate limits of the `openai` backend, against a real local server.

Assertions count requests and rejections at the server, never durations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from emovlm.backends.concurrency import AdaptiveLimiter, TokenBucket
from emovlm.backends.openai_vlm import OpenAIVLM
from emovlm.backends.vlm import GenerationSettings, VLMRequest
from emovlm.errors import InputError
from openai_server import Behaviour, FakeOpenAIServer, Fault

GREEDY = GenerationSettings(max_new_tokens=4)
GREEN = np.full((16, 16, 3), (0, 250, 0), dtype=np.uint8)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(lifetime=300) as srv:
        yield srv


def backend(server: FakeOpenAIServer, **kw: object) -> OpenAIVLM:
    options: dict[str, object] = {"base_url": server.url, "backoff": 0.01, "max_retries": 8}
    options.update(kw)
    return OpenAIVLM("tiny-vlm", **options)  # type: ignore[arg-type]


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_server_admitting_n_at_a_time_is_found_and_later_requests_are_rarely_rejected(
    server: FakeOpenAIServer,
) -> None:
    n = 4
    server.behaviour = Behaviour(max_concurrent=n, latency=0.01, busy_retry_after=0.02)
    server.reset()
    vlm = backend(server, concurrency=4 * n)
    requests = [VLMRequest((GREEN, f"clip {i}")) for i in range(320)]
    answers = vlm.generate(requests, GREEDY)
    assert [a.error for a in answers if a.error] == []
    assert all(a.text == "happy" for a in answers)
    outcomes = list(server.outcomes)
    rejected = outcomes.count(429)
    assert rejected > 0  # the ceiling of 16 was too many: the server turned requests away
    later = outcomes[len(outcomes) // 4 :]
    assert later.count(429) < 0.05 * len(later), f"{later.count(429)} of {len(later)} rejected"
    assert server.max_in_flight <= n
    stats = vlm.stats()
    assert stats["rejections"] == rejected and stats["requests"] == len(outcomes)
    assert stats["retries"] == rejected  # every rejected request was sent again, and answered
    assert stats["concurrency_ceiling"] == 4 * n and stats["concurrency_min"] <= n
    assert stats["concurrency_final"] <= 4 * n and stats["concurrency_mean"] < 4 * n
    assert stats["retry_after_seconds"] > 0 and stats["wait_seconds"] >= 0.02


def test_retry_after_pauses_every_request_not_only_the_rejected_one() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(4, clock=clock)

    async def scenario() -> tuple[float, list[str]]:
        first = await limiter.acquire()
        limiter.overloaded(first, retry_after=5.0)
        limiter.release()
        order: list[str] = []

        async def other() -> None:
            await limiter.acquire()
            order.append("sent")
            limiter.release()

        task = asyncio.create_task(other())
        for _ in range(5):
            await asyncio.sleep(0)
        paused = list(order)
        clock.now = 5.0
        await asyncio.wait_for(task, 10)
        return limiter.stats().pause_seconds, paused + order

    paused_for, order = asyncio.run(scenario())
    assert paused_for == 5.0
    assert order == ["sent"]  # nothing was sent during the pause, it went once the pause ended


def test_the_limit_is_cut_once_per_round_and_grows_back_to_the_ceiling() -> None:
    limiter = AdaptiveLimiter(10)

    async def scenario() -> None:
        tickets = [await limiter.acquire() for _ in range(10)]
        assert [t.position for t in tickets] == list(range(1, 11))
        for _ in range(5):  # the tenth request turned away, five times: one cut, from 9
            limiter.overloaded(tickets[-1], retry_after=None)
        for _ in tickets:
            limiter.release()

    asyncio.run(scenario())
    assert limiter.stats().final == 6  # 9 × 0.7
    assert limiter.stats().overloads == 5
    for _ in range(400):
        limiter.succeeded()
    assert limiter.stats().final == 10


def test_an_overload_below_the_limit_caps_it_at_once() -> None:
    limiter = AdaptiveLimiter(64)

    async def scenario() -> None:
        tickets = [await limiter.acquire() for _ in range(64)]
        limiter.overloaded(tickets[-1], retry_after=None)  # the cut: 63 × 0.7 = 44.1
        limiter.overloaded(tickets[8], retry_after=None)  # same round: 9 in flight was too many
        for _ in tickets:
            limiter.release()

    asyncio.run(scenario())
    assert limiter.stats().final == 8


def test_token_bucket_keeps_every_minute_within_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(60, clock=clock)
    starts = []
    for _ in range(150):
        clock.now += bucket.reserve(1)  # the sender waits as told, then sends
        starts.append(clock.now)
    for t in starts:
        assert sum(t <= s < t + 60 for s in starts) <= 60
    assert starts[-1] == pytest.approx(149.0)  # and no slower than the rate


def test_token_bucket_spaces_uneven_costs_by_tokens() -> None:
    clock = FakeClock()
    bucket = TokenBucket(6000, clock=clock)  # 100 tokens a second
    sent = []
    for cost in [500, 100, 1000, 50, 2000, 300] * 10:
        clock.now += bucket.reserve(cost)
        sent.append((clock.now, cost))
    for t, _ in sent:
        window = sum(c for s, c in sent if t <= s < t + 60)
        assert window <= 6000 + 2000  # the minute's tokens plus at most one request's own


def test_rpm_limit_is_recorded_and_requests_still_all_answered(server: FakeOpenAIServer) -> None:
    server.behaviour = Behaviour()
    server.reset()
    vlm = backend(server, concurrency=4, rpm=600)  # one request per 0.1 s
    answers = vlm.generate([VLMRequest((GREEN, f"q{i}")) for i in range(6)], GREEDY)
    assert all(not a.error for a in answers)
    assert vlm.stats()["rate_limit_seconds"] > 0  # five of six waited their turn


def test_503_and_timeouts_lower_the_limit_500_does_not(server: FakeOpenAIServer) -> None:
    server.behaviour = Behaviour(
        faults={
            "[500]": [Fault(status=500)],
            "[503]": [Fault(status=503)],
            "[slow]": [Fault(delay=1.0)],
        }
    )
    server.reset()
    vlm = backend(server, concurrency=8, timeout=0.3)
    [a] = vlm.generate([VLMRequest((GREEN, "[500]"))], GREEDY)
    assert not a.error and vlm.stats()["concurrency_final"] == 8
    [b] = vlm.generate([VLMRequest((GREEN, "[503]"))], GREEDY)
    assert not b.error and vlm.stats()["concurrency_final"] < 8
    assert vlm.stats()["rejections"] == 1
    [c] = vlm.generate([VLMRequest((GREEN, "[slow]"))], GREEDY)
    assert not c.error and vlm.stats()["timeouts"] == 1


def test_usage_visual_tokens_are_reported(server: FakeOpenAIServer) -> None:
    server.behaviour = Behaviour()
    server.reset()
    vlm = backend(server)
    [answer] = vlm.generate([VLMRequest((GREEN, GREEN, "two images"))], GREEDY)
    assert answer.cost.visual_tokens == 170  # the server's 85 per image
    assert vlm.stats()["visual_tokens_reported"] == 170


def test_tpm_uses_the_family_rule_when_the_model_name_names_one(server: FakeOpenAIServer) -> None:
    server.behaviour = Behaviour(models=("Qwen/Qwen2.5-VL-7B-Instruct", "someone/unknown-vlm"))
    qwen = OpenAIVLM("Qwen/Qwen2.5-VL-7B-Instruct", base_url=server.url, tpm=10**6)
    unknown = OpenAIVLM("someone/unknown-vlm", base_url=server.url, tpm=10**6)
    image = np.zeros((448, 448, 3), dtype=np.uint8)
    request = VLMRequest((image, "x" * 40))
    assert qwen.estimate_tokens(request) == 256 + 10  # 448² at 28-px merged patches
    assert unknown.estimate_tokens(request) == 765 + 10  # the documented default


def test_bad_rate_limits_are_refused(server: FakeOpenAIServer) -> None:
    with pytest.raises(InputError, match="--rpm and --tpm"):
        backend(server, rpm=0)
