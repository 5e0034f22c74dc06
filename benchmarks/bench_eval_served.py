"""`emovlm eval` end to end against a loopback server with latency: achieved vs ideal throughput.

Each case runs the command line in its own process (CLI, dataset, executor, response cache,
answer parser, run store, report) against tests/openai_server.py served from another process
with a latency profile, and compares the requests per second the server saw, from the first
sample request to the last answer, with concurrency ÷ the mean latency of the requests served.
"Drain" is the time from the last request's arrival to the last answer: the run's tail, which a
finite run cannot overlap (in the spiky profile up to 2 s), so short runs cannot reach the ideal.

    .venv/bin/python benchmarks/bench_eval_served.py                        # this tree
    .venv/bin/python benchmarks/bench_eval_served.py --before /tmp/before/src   # and another, case by case
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from openai_server import Behaviour, FakeOpenAIServer  # noqa: E402

PROBE = "Reply with one word."


def spiky(number: int) -> float:
    """100 ms, and every 16th request 2 s."""
    return 2.0 if number % 16 == 0 else 0.1


def lognormal(number: int) -> float:
    """Log-normal with a 100 ms median and σ = 1 (mean 165 ms, p99 about 1 s), seeded per request."""
    return random.Random(number).lognormvariate(math.log(0.1), 1.0)


PROFILES = {"spiky": spiky, "lognormal": lognormal}


def serve(profile: str, scale: float, port_file: Path) -> None:
    """Serve with `profile` (latencies times `scale`) until SIGTERM, then print what was served
    as one JSON line."""
    latency = PROFILES[profile]
    served: list[float] = []
    times = {"first": 0.0, "last": 0.0, "last_request": 0.0}

    def timed(number: int) -> float:
        seconds = scale * latency(number)
        served.append(seconds)
        times["last_request"] = time.perf_counter()
        times["first"] = times["first"] or times["last_request"]
        return seconds

    behaviour = Behaviour(latency_of=timed, decode_images=False)
    with FakeOpenAIServer(behaviour, lifetime=3600) as server:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        port_file.write_text(server.url)
        answered = 0
        while not stop.wait(0.002):
            if server.answered != answered:
                answered, times["last"] = server.answered, time.perf_counter()
        probes = sum(1 for r in server.received if r["text"] == PROBE)
        print(
            json.dumps(
                {
                    "requests": server.calls,
                    "probes": probes,
                    "answered": server.answered,
                    "mean_latency": sum(served) / max(1, len(served)),
                    "window_seconds": times["last"] - times["first"],
                    "drain_seconds": times["last"] - times["last_request"],
                    "max_in_flight": server.max_in_flight,
                    "cpu_seconds": _cpu(resource.RUSAGE_SELF),
                }
            ),
            flush=True,
        )


def _cpu(who: int) -> float:
    """User + system CPU seconds of this process (RUSAGE_SELF) or its waited-for children."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def write_faces(folder: Path, n: int) -> Path:
    """`n` small images, no two alike, and their manifest."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rows = ["id,path,label"]
    for i in range(n):
        colour = (40 + i % 200, 40 + (i // 200) % 200, 120 + (i * 7) % 100)
        Image.new("RGB", (32, 32), colour).save(folder / f"f{i:05d}.png")
        rows.append(f"s{i:05d},f{i:05d}.png,happy")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return folder / "manifest.csv"


def run_case(
    profile: str, scale: float, concurrency: int, work: Path, src: Path
) -> dict[str, float]:
    """One `emovlm eval` of the emovlm in `src` against a fresh server process; the case's figures."""
    name = f"{profile}-{scale}-{concurrency}-{abs(hash(src))}"
    port_file = work / f"url-{name}"
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", profile, "--scale", str(scale)]
        + ["--port-file", str(port_file)],
        stdout=subprocess.PIPE,
        text=True,
    )
    while not port_file.exists() or not port_file.read_text():
        time.sleep(0.05)
    url = port_file.read_text()
    urllib.request.urlopen(f"{url}/models", timeout=10).read()
    manifest = work / "faces" / "manifest.csv"
    run_dir = work / f"run-{name}"
    args = [
        "eval", "--dataset", "manifest", "--root", str(manifest), "--label-set", "dfew",
        "--recognizer", "vlm", "--backend", "openai", "--base-url", url, "--model", "tiny-vlm",
        "--frames", "uniform:1", "--concurrency", str(concurrency), "--bootstrap", "200",
        "--run-dir", str(run_dir), "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "EMOVLM_CACHE": str(work / f"cache-{name}"), "PYTHONPATH": str(src)}
    started, cpu = time.perf_counter(), _cpu(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-m", "emovlm", *args], env=env, capture_output=True, text=True
    )
    wall, cpu = time.perf_counter() - started, _cpu(resource.RUSAGE_CHILDREN) - cpu
    server.send_signal(signal.SIGTERM)
    stats = json.loads(server.communicate(timeout=60)[0].strip().splitlines()[-1])
    if done.returncode != 0:
        raise SystemExit(f"emovlm eval failed:\n{done.stderr[-3000:]}")
    samples = stats["answered"] - stats["probes"]
    achieved = samples / stats["window_seconds"]
    ideal = concurrency / stats["mean_latency"]
    return {
        "samples": samples,
        "mean_latency_ms": 1000 * stats["mean_latency"],
        "achieved": achieved,
        "ideal": ideal,
        "share": achieved / ideal,
        "wall": wall,
        "drain": stats["drain_seconds"],
        "max_in_flight": stats["max_in_flight"],
        "client_cpu_ms": 1000 * cpu / samples,
        "server_cpu_ms": 1000 * stats["cpu_seconds"] / samples,
    }


def main() -> None:
    """Run every case (with `--before`, that tree's run first) and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=sorted(PROFILES), help=argparse.SUPPRESS)
    parser.add_argument("--port-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--samples", type=int, default=10000, help="samples per case")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--profiles", nargs="+", default=sorted(PROFILES), choices=PROFILES)
    parser.add_argument(
        "--scale", type=float, nargs="+", default=[1.0], help="latency multipliers to run"
    )
    parser.add_argument(
        "--before", type=Path, help="the src folder of another emovlm tree, run in every case too"
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.scale[0], args.port_file)
        return
    here = Path(__file__).resolve().parents[1] / "src"
    trees = ([args.before.resolve()] if args.before else []) + [here]
    print(
        f"emovlm from {', '.join(map(str, trees))}; {args.samples} samples per case; "
        f"{os.cpu_count()} CPUs; load average {_load()} at the start\n"
    )
    before = "before req/s | before share | before drain s | " if args.before else ""
    print(
        "| profile | latency × | concurrency | mean latency ms | ideal req/s | "
        f"{before}achieved req/s | **share** | drain s | eval wall s | max in flight "
        "| eval CPU ms/req | server CPU ms/req |"
    )
    print("|---" * (12 + 3 * bool(args.before)) + "|")
    with tempfile.TemporaryDirectory() as tmp:
        write_faces(Path(tmp) / "faces", args.samples)
        cases = [(p, s, c) for s in args.scale for p in args.profiles for c in args.concurrency]
        for profile, scale, concurrency in cases:
            runs = [run_case(profile, scale, concurrency, Path(tmp), src) for src in trees]
            f = runs[-1]
            old = (
                f"{runs[0]['achieved']:.1f} | {100 * runs[0]['share']:.0f}% | {runs[0]['drain']:.2f} | "
                if args.before
                else ""
            )
            print(
                f"| {profile} | {scale:g} | {concurrency} | {f['mean_latency_ms']:.0f} | {f['ideal']:.1f} "
                f"| {old}{f['achieved']:.1f} | **{100 * f['share']:.0f}%** | {f['drain']:.2f} "
                f"| {f['wall']:.1f} | {f['max_in_flight']} | {f['client_cpu_ms']:.1f} "
                f"| {f['server_cpu_ms']:.1f} |",
                flush=True,
            )
    print(f"\nload average {_load()} at the end")


def _load() -> str:
    """The 1-, 5- and 15-minute load averages."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
