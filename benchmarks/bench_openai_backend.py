"""Benchmark the `openai` VLM backend and the response cache against the local test server.

1. Throughput: requests through `OpenAIVLM.generate` at concurrency C against a server with a
   fixed latency L; the bound is C / L requests per second (640/s for 64 and 100 ms).
2. Cached rerun: `VLMRecognizer.predict` over N image samples twice, the second time with a
   fresh recognizer on the filled cache (no model call; time includes reading the images).

Run from the repository root:  python benchmarks/bench_openai_backend.py [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from emovlm.backends.openai_vlm import OpenAIVLM  # noqa: E402
from emovlm.backends.vlm import GenerationSettings, VLMRequest  # noqa: E402
from emovlm.labels import get_label_space  # noqa: E402
from emovlm.recognizers.vlm import VLMRecognizer  # noqa: E402
from emovlm.types import Sample  # noqa: E402
from openai_server import Behaviour, FakeOpenAIServer  # noqa: E402


def _serve(latency: float, decode_images: bool, urls: mp.Queue, stop: mp.Event) -> None:
    """Child process: run the test server until told to stop, then report its CPU seconds."""
    behaviour = Behaviour(latency=latency, decode_images=decode_images)
    with FakeOpenAIServer(behaviour, lifetime=900) as srv:
        urls.put(srv.url)
        stop.wait()
    urls.put(time.process_time())


class ServerProcess:
    """The test server in a separate process, so client and server do not share one GIL."""

    def __init__(self, latency: float, decode_images: bool) -> None:
        ctx = mp.get_context("spawn")
        self._urls, self._stop = ctx.Queue(), ctx.Event()
        self._process = ctx.Process(
            target=_serve, args=(latency, decode_images, self._urls, self._stop)
        )
        self.cpu_seconds = 0.0

    def __enter__(self) -> ServerProcess:
        self._process.start()
        self.url = self._urls.get(timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.cpu_seconds = self._urls.get(timeout=30)
        self._process.join(timeout=10)


def throughput(url: str, concurrency: int, latency: float, n_requests: int) -> dict[str, float]:
    """Requests per second through the backend, and its share of the concurrency / latency bound."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(n_requests)]
    requests = [VLMRequest((img, f"request {i}: which emotion?")) for i, img in enumerate(images)]
    backend = OpenAIVLM("tiny-vlm", base_url=url, concurrency=concurrency)
    backend.generate(requests[:concurrency], GenerationSettings())  # warm up
    started, cpu_started = time.perf_counter(), time.process_time()
    answers = backend.generate(requests, GenerationSettings())
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    failed = sum(bool(a.error) for a in answers)
    rate = n_requests / seconds
    bound = concurrency / latency
    return {
        "requests": n_requests,
        "concurrency": concurrency,
        "latency_s": latency,
        "seconds": seconds,
        "req_per_s": rate,
        "bound_req_per_s": bound,
        "fraction_of_bound": rate / bound,
        "failed": failed,
        "client_cpu_ms_per_request": 1000 * cpu / n_requests,
        "client_cpu_busy": cpu / seconds,
        "load_average_1min": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
    }


def cached_rerun(url: str, server: FakeOpenAIServer, n_samples: int) -> dict[str, float]:
    """Seconds for a first run and for a fully cached rerun of n image samples."""
    with tempfile.TemporaryDirectory(prefix="emovlm-bench-") as tmp:
        root = Path(tmp)
        rng = np.random.default_rng(1)
        samples = []
        for i in range(n_samples):
            path = root / f"{i:05d}.png"
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
            samples.append(Sample(f"s{i}", path))
        options = {
            "backend": "openai",
            "model": "tiny-vlm",
            "base_url": url,
            "concurrency": 64,
            "cache_dir": str(root / "cache"),
        }
        dfew = get_label_space("dfew")
        started = time.perf_counter()
        first = VLMRecognizer(dfew, **options).predict(samples)
        first_seconds = time.perf_counter() - started
        server.reset()
        started = time.perf_counter()
        again = VLMRecognizer(dfew, **options).predict(samples)
        rerun_seconds = time.perf_counter() - started
        assert [p.labels for p in again] == [p.labels for p in first]
        return {
            "samples": n_samples,
            "first_run_s": first_seconds,
            "cached_rerun_s": rerun_seconds,
            "model_calls_in_rerun": server.calls,
            "all_cached": all(p.extra["cached"] for p in again),
        }


def main() -> None:
    """Run both benchmarks and print a Markdown summary (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--requests", type=int, default=2560)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument(
        "--also-latency",
        type=float,
        default=0.5,
        help="a second, slower server latency (0 to skip): shows the bound is reached "
        "when the client's CPU is not the limit",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with ServerProcess(args.latency, decode_images=False) as server_process:
        speed = throughput(server_process.url, args.concurrency, args.latency, args.requests)
    speed["server_cpu_ms_per_request"] = (
        1000 * server_process.cpu_seconds / (args.requests + args.concurrency)
    )
    slow = None
    if args.also_latency:
        n_slow = int(4 * args.concurrency)
        with ServerProcess(args.also_latency, decode_images=False) as server_process:
            slow = throughput(server_process.url, args.concurrency, args.also_latency, n_slow)
        slow["server_cpu_ms_per_request"] = (
            1000 * server_process.cpu_seconds / (n_slow + args.concurrency)
        )
    with FakeOpenAIServer(Behaviour(latency=args.latency), lifetime=900) as server:
        cache = cached_rerun(server.url, server, args.samples)
    if args.json:
        print(
            json.dumps(
                {"throughput": speed, "throughput_slow_server": slow, "cache": cache}, indent=2
            )
        )
        return
    print("| benchmark | result | target |\n|---|---|---|")
    for row in (speed, slow):
        if row is None:
            continue
        print(
            f"| throughput, concurrency {row['concurrency']}, latency {row['latency_s'] * 1000:.0f} ms, "
            f"{row['requests']} requests | {row['req_per_s']:.0f} req/s = "
            f"{100 * row['fraction_of_bound']:.1f}% of {row['bound_req_per_s']:.0f} "
            f"({row['failed']} failed; CPU per request: client {row['client_cpu_ms_per_request']:.2f} ms, "
            f"server {row['server_cpu_ms_per_request']:.2f} ms; client "
            f"busy {100 * row['client_cpu_busy']:.0f}%; load {row['load_average_1min']:.1f} on "
            f"{row['cpu_count']} cores) | ≥ 90% |"
        )
    print(
        f"| fully cached rerun, {cache['samples']} image samples | {cache['cached_rerun_s']:.2f} s, "
        f"{cache['model_calls_in_rerun']} model calls (first run {cache['first_run_s']:.2f} s) | < 2 s |"
    )


if __name__ == "__main__":
    main()
