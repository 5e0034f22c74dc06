"""HTTP timings of the run explorer on a generated 40,000-sample run (and a second to compare).

Two run folders are written through the real store (config.yaml, store.sqlite with thumbnails
for every tenth sample, metrics.json from `rebuild_report`): DFEW labels, a neutral sink,
out-of-set words, unparsed and failed rows, raw answers of ~60-200 characters. The second run
changes about a fifth of the answers. The explorer is served on 127.0.0.1 in this process and
each view is requested over HTTP `--repeat` times once the server has built its per-run
indexes (it does so in the background as it starts; that time is printed first). The first
request of a view is "cold" (nothing of that view cached: comparisons are computed on the first
request), and the slowest and median times are printed as one JSON line per view, with whether
the slowest is under one second.

    python benchmarks/bench_view.py [--samples 40000] [--repeat 5] [--workdir /tmp/emovlm-bench-view]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from emovlm.labels import get_label_space
from emovlm.run.config import record_config, resolve_config
from emovlm.run.runner import rebuild_report
from emovlm.run.store import RunStore
from emovlm.thumbnails import thumbnail_entries
from emovlm.types import Prediction, Status
from emovlm.view.export import write_static_page
from emovlm.view.runs import open_runs
from emovlm.view.server import make_server

_SPACE = get_label_space("dfew")
_BATCH = 2_000
_OOS = ("pain", "concentration", "boredom", "contempt")
_PHRASES = (
    "The person's brows are drawn together and the mouth is tight",
    "Looking at the frames, the face shows little change over time",
    "The eyes widen and the jaw drops in the middle of the clip",
    "I cannot tell the emotion from these frames",
)


def _answers(n: int, rng: np.random.Generator, gold: np.ndarray) -> list[tuple[str, Status]]:
    """(top answer, status) per sample: 55% right, a neutral sink, 4% out-of-set, 2% each odd."""
    labels = _SPACE.labels
    draw = rng.random(n)
    out = []
    for i in range(n):
        if draw[i] < 0.55:
            out.append((labels[gold[i]], Status.OK))
        elif draw[i] < 0.80:
            out.append(("neutral", Status.OK))
        elif draw[i] < 0.92:
            out.append((labels[rng.integers(len(labels))], Status.OK))
        elif draw[i] < 0.96:
            out.append((_OOS[rng.integers(len(_OOS))], Status.OUT_OF_SET))
        elif draw[i] < 0.98:
            out.append(("", Status.UNPARSED))
        else:
            out.append(("", Status.FAILED))
    return out


def write_run(folder: Path, name: str, n: int, seed: int, flip: float) -> None:
    """A run folder of `n` generated samples through RunStore.write and rebuild_report."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    gold = rng.integers(0, len(_SPACE), n)
    answers = _answers(n, rng, gold)
    flipper = np.random.default_rng(seed)
    if flip:
        changed = _answers(n, flipper, gold)
        answers = [
            c if flipper.random() < flip else a for a, c in zip(answers, changed, strict=True)
        ]
    thumbs = thumbnail_entries(
        [
            (f"keyframe {k}", flipper.integers(0, 255, (90, 120, 3), dtype=np.uint8))
            for k in range(2)
        ]
    )
    config = resolve_config({"name": "generated", "split": "test"}, name, {}, _SPACE)
    key = record_config(folder, config)["key"]
    with RunStore(folder) as store:
        for start in range(0, n, _BATCH):
            predictions, golds = [], []
            for i in range(start, min(n, start + _BATCH)):
                top, status = answers[i]
                raw = f"{_PHRASES[i % 4]}; answer: {top or 'unclear'}." * (1 + i % 3)
                extra = {"thumbnails": thumbs} if i % 10 == 0 else {}
                if status is Status.FAILED:
                    predictions.append(Prediction.failed(f"clip{i:06d}", "MediaError: broken"))
                else:
                    labels = (top,) if top else ()
                    predictions.append(
                        Prediction(f"clip{i:06d}", labels, None, raw, status, extra=extra)
                    )
                golds.append((_SPACE.labels[gold[i]],))
            store.write(key, predictions, golds)
    rebuild_report(folder, n_bootstrap=1000)


def main() -> None:
    """Write the runs, serve them, time each view."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/emovlm-bench-view"))
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    started = time.perf_counter()
    write_run(args.workdir / "a", "vlm", args.samples, seed=1, flip=0.0)
    write_run(args.workdir / "b", "msce", args.samples, seed=2, flip=0.2)
    print(json.dumps({"generated_runs_s": round(time.perf_counter() - started, 1)}))

    runs = open_runs([args.workdir / "a", args.workdir / "b"])
    begin = time.perf_counter()
    server = make_server(runs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.warming.join()
    print(
        json.dumps(
            {"indexes_and_summaries_built_at_start_s": round(time.perf_counter() - begin, 2)}
        )
    )
    host, port = server.server_address[:2]
    last = args.samples - 50
    middle = f"clip{args.samples // 20 * 10:06d}"  # has thumbnails (every tenth sample does)
    views = {
        "page": "/",
        "script": "/static/app.js",
        "runs": "/api/runs",
        "open run (summary)": "/api/summary?run=0",
        "first page": "/api/samples?run=0",
        "last page": f"/api/samples?run=0&offset={last}",
        "confusion cell sad→neutral": "/api/samples?run=0&gold=sad&pred=neutral",
        "cell, page 20": "/api/samples?run=0&gold=sad&pred=neutral&offset=1000",
        "out-of-set word": "/api/samples?run=0&oos=pain",
        "status failed": "/api/samples?run=0&status=failed",
        "text in answer": "/api/samples?run=0&q=cannot%20tell",
        "all filters": "/api/samples?run=0&gold=fear&pred=out_of_set&status=out_of_set&oos=pain&q=answer",
        "sample detail": f"/api/sample?run=0&id={middle}",
        "thumbnail": f"/api/thumb?run=0&id={middle}&idx=1",
        "compare (paired bootstrap)": "/api/compare?ref=0&other=1",
        "fixed, first page": "/api/changes?ref=0&other=1&kind=fixed",
        "changed, page 40": "/api/changes?ref=0&other=1&kind=changed&offset=2000",
    }
    slowest_of_all = 0.0
    for name, path in views.items():
        times, size = [], 0
        for _ in range(args.repeat):
            begin = time.perf_counter()
            with urllib.request.urlopen(f"http://{host}:{port}{path}") as response:
                size = len(response.read())
            times.append(time.perf_counter() - begin)
        slowest_of_all = max(slowest_of_all, max(times))
        print(
            json.dumps(
                {
                    "view": name,
                    "cold_ms": round(1000 * times[0], 1),
                    "median_ms": round(1000 * statistics.median(times), 1),
                    "max_ms": round(1000 * max(times), 1),
                    "bytes": size,
                    "under_1s": max(times) < 1.0,
                }
            )
        )
    server.shutdown()
    begin = time.perf_counter()
    page = write_static_page(runs, args.workdir / "explorer.html")
    print(
        json.dumps(
            {
                "static_page_s": round(time.perf_counter() - begin, 2),
                "static_page_bytes": page.stat().st_size,
                "slowest_view_ms": round(1000 * slowest_of_all, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
