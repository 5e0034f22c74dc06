"""`emovlm view --static`: one self-contained HTML file with the explorer's views and data."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from emovlm.errors import InputError
from emovlm.view import MAX_STATIC_SAMPLES
from emovlm.view.compare import CHANGES, changed_samples
from emovlm.view.runs import RAW_PREVIEW, Run, answer_sql, reading, sample_detail, thumbnail
from emovlm.view.server import Explorer, asset, to_json

MAX_CHANGES = 200
"""Samples of each comparison list (fixed, broken, changed) put into a static page."""


def write_static_page(
    runs: Sequence[Run], out: Path, *, max_samples: int = MAX_STATIC_SAMPLES
) -> Path:
    """Write the explorer with the runs' data embedded to `out` (an .html file); return its path."""
    if max_samples < 1:
        raise InputError(f"--max-samples must be at least 1, not {max_samples}")
    out = Path(out)
    if out.is_dir():
        out = out / "explorer.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(static_page(runs, max_samples=max_samples), encoding="utf-8")
    return out


def static_page(runs: Sequence[Run], *, max_samples: int = MAX_STATIC_SAMPLES) -> str:
    """The explorer page with its script, style and the runs' data inlined."""
    explorer = Explorer(runs)
    data: dict[str, Any] = {
        "runs": [run.describe() for run in runs],
        "summaries": {},
        "samples": {},
        "details": {run.id: {} for run in runs},
        "compares": {},
    }
    totals = []
    for run in runs:
        data["summaries"][run.id] = explorer.answer("summary", {"run": run.id})
        rows = []
        for sample_id in chosen_samples(run, max_samples):
            detail = _detail(run, sample_id)
            data["details"][run.id][sample_id] = detail
            rows.append(_row(detail))
        data["samples"][run.id] = rows
        totals.append(f"{len(rows)} of {data['summaries'][run.id]['metrics']['n']}")
    for reference, other in itertools.permutations(runs, 2):
        data["compares"][f"{reference.id}|{other.id}"] = _comparison(
            explorer, reference, other, data
        )
    data["note"] = (
        f"Static page: it holds {', '.join(totals)} samples (per run, in run order), chosen "
        "confusion cell by confusion cell so that every cell has examples; sample lists, counts "
        f"and filters cover those only, comparison lists at most {MAX_CHANGES} samples each. "
        "Metrics, per-class tables, the confusion matrix and comparisons cover all samples. "
        "Run `emovlm view RUN_DIR` to explore every sample."
    )
    page = asset("index.html")
    script = asset("app.js")
    if "</script" in script.lower():
        raise AssertionError("app.js must not contain a closing script tag")
    embedded = (
        f'<script id="emovlm-data" type="application/json">{_script_safe(to_json(data))}</script>'
    )
    page = page.replace(
        '<link rel="stylesheet" href="/static/app.css">', f"<style>\n{asset('app.css')}</style>"
    )
    page = page.replace("<!--EMOVLM-DATA-->", embedded)
    return page.replace('<script src="/static/app.js"></script>', f"<script>\n{script}</script>")


def _script_safe(text: str) -> str:
    """JSON text that cannot end its script element nor open a comment inside it."""
    for char in "<>&\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def chosen_samples(run: Run, limit: int) -> list[str]:
    """Up to `limit` sample ids, taken in turn from every confusion cell, in run order."""
    answer, params = answer_sql(run.label_space)
    with reading(run) as conn:
        rows = conn.execute(
            "SELECT sample_id FROM (SELECT sample_id, seq, ROW_NUMBER() OVER "
            f"(PARTITION BY gold, {answer} ORDER BY seq) AS turn FROM predictions "
            "WHERE config_key = ?) ORDER BY turn, seq LIMIT ?",
            [*params, run.key, limit],
        ).fetchall()
    chosen = {sample_id for (sample_id,) in rows}
    with reading(run) as conn:
        ordered = conn.execute(
            "SELECT sample_id FROM predictions WHERE config_key = ? ORDER BY seq", (run.key,)
        )
        return [sample_id for (sample_id,) in ordered if sample_id in chosen]


def _detail(run: Run, sample_id: str) -> dict[str, Any]:
    """A sample's detail with its thumbnails inlined as data: URLs."""
    detail = sample_detail(run, sample_id)
    for thumb in detail["thumbnails"]:
        jpeg = base64.b64encode(thumbnail(run, sample_id, thumb["idx"])).decode("ascii")
        thumb["src"] = f"data:image/jpeg;base64,{jpeg}"
    return detail


def _row(detail: dict[str, Any]) -> dict[str, Any]:
    """A sample-list row made from a sample's detail (with the full raw answer for filtering)."""
    raw = detail["raw"]
    return {
        "sample_id": detail["sample_id"],
        "gold": detail["gold"],
        "labels": detail["labels"],
        "status": detail["status"],
        "raw": raw[:RAW_PREVIEW],
        "raw_truncated": len(raw) > RAW_PREVIEW,
        "raw_full": raw,
        "reason": detail["reason"],
        "answer": detail["answer"],
    }


def _comparison(
    explorer: Explorer, reference: Run, other: Run, data: dict[str, Any]
) -> dict[str, Any]:
    """A comparison and its first MAX_CHANGES samples per kind (or why the runs cannot compare)."""
    try:
        comparison = explorer.comparison({"ref": reference.id, "other": other.id})
    except InputError as exc:
        return {"error": str(exc)}
    changes = {}
    for kind in CHANGES:
        rows = changed_samples(comparison, kind, 0, MAX_CHANGES)["rows"]
        changes[kind] = rows
        for row in rows:
            if row["sample_id"] not in data["details"][other.id]:
                data["details"][other.id][row["sample_id"]] = _detail(other, row["sample_id"])
    return {"summary": comparison.summary, "changes": changes}
