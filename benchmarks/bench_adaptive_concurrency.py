"""Adaptive concurrency against a server that admits N requests at a time (429 beyond).

For each N the `openai` backend runs with `--concurrency 4N` against the loopback test server
(fixed latency, 429 with a short Retry-After beyond N in flight) and reports the rejected share
of all requests and of the requests after the first quarter, the limit's mean, and throughput
as a share of what N requests in flight allow (N ÷ latency).

    .venv/bin/python benchmarks/bench_adaptive_concurrency.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from emovlm.backends.openai_vlm import OpenAIVLM  # noqa: E402
from emovlm.backends.vlm import GenerationSettings, VLMRequest  # noqa: E402
from openai_server import Behaviour, FakeOpenAIServer  # noqa: E402

LATENCY = 0.05
REQUESTS = 600
IMAGE = np.full((32, 32, 3), (0, 250, 0), dtype=np.uint8)


def one(server: FakeOpenAIServer, n: int) -> str:
    """One row: N, ceiling, rejected shares, mean limit, throughput share of N ÷ latency."""
    server.behaviour = Behaviour(max_concurrent=n, latency=LATENCY, busy_retry_after=0.1)
    server.reset()
    vlm = OpenAIVLM("tiny-vlm", base_url=server.url, concurrency=4 * n, max_retries=10)
    requests = [VLMRequest((IMAGE, f"clip {i}")) for i in range(REQUESTS)]
    started = time.perf_counter()
    answers = vlm.generate(requests, GenerationSettings(max_new_tokens=4))
    seconds = time.perf_counter() - started
    failed = sum(bool(a.error) for a in answers)
    outcomes = list(server.outcomes)
    later = outcomes[len(outcomes) // 4 :]
    stats = vlm.stats()
    share = REQUESTS / seconds / (n / LATENCY)
    return (
        f"| {n} | {4 * n} | {failed} | {outcomes.count(429)} of {len(outcomes)} "
        f"({outcomes.count(429) / len(outcomes):.1%}) | {later.count(429) / len(later):.1%} | "
        f"{stats['concurrency_mean']:.1f} | {stats['retry_after_seconds']:.1f} | {share:.0%} |"
    )


def main() -> None:
    print(
        "| N | --concurrency | failed | rejected (all) | rejected after the first quarter | "
        "mean limit | Retry-After s | throughput ÷ (N ÷ latency) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with FakeOpenAIServer(lifetime=600) as server:
        for n in (4, 16, 32):
            print(one(server, n), flush=True)


if __name__ == "__main__":
    main()
