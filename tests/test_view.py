"""The explorer's data and API over real run folders and real HTTP; thumbnails in the store."""

from __future__ import annotations

import base64
import io
import json
import shutil
import sqlite3
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from emovlm.cli import app
from emovlm.errors import InputError
from emovlm.eval.compare import paired_comparison
from emovlm.run.store import RunStore
from emovlm.thumbnails import (
    MAX_SIDE,
    decode_entries,
    evenly,
    jpeg_thumbnail,
    thumbnail_entries,
)
from emovlm.types import Prediction
from emovlm.view.compare import Comparison, _statistics
from emovlm.view.runs import Run, open_runs
from emovlm.view.server import make_server
from emovlm.view.summary import run_summary
from view_runs import (
    DFEW,
    EMOTIC,
    GOLD,
    SCRIPT_ANSWER,
    emotic_predictions,
    other_predictions,
    reference_predictions,
    write_run,
)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("view")
    write_run(root / "vlm", "vlm", reference_predictions())
    write_run(root / "msce", "msce", other_predictions())
    return root / "vlm", root / "msce"


@pytest.fixture(scope="module")
def get(folders):
    server = make_server(open_runs(list(folders)), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]

    def fetch(path: str) -> tuple[int, object]:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}{path}") as response:
                body = response.read()
                kind = response.headers["Content-Type"]
                return response.status, json.loads(body) if "json" in kind else body
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    yield fetch
    server.shutdown()
    server.server_close()
    thread.join()


def test_server_binds_loopback_by_default(folders):
    server = make_server(open_runs([folders[0]]))
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


def test_pages_cover_every_sample_once_in_run_order(get):
    seen = []
    for offset in range(0, 12, 5):
        status, page = get(f"/api/samples?run=0&offset={offset}&limit=5")
        assert status == 200 and page["total"] == 12
        seen += [row["sample_id"] for row in page["rows"]]
    assert seen == sorted(GOLD)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("gold=sad", {"s01", "s07", "s10"}),
        ("gold=sad&pred=neutral", {"s01", "s07"}),
        ("pred=failed", {"s05"}),
        ("pred=unparsed", {"s06"}),
        ("status=out_of_set", {"s03", "s10"}),
        ("oos=pain", {"s03", "s10"}),
        ("oos=pain&gold=fear", {"s03"}),
        ("q=PAIN", {"s03", "s10"}),
        ("q=%3Cscript%3E", {"s04"}),
        ("q=100%25", set()),
    ],
)
def test_filters(get, query, expected):
    status, page = get(f"/api/samples?run=0&{query}")
    assert status == 200
    assert {row["sample_id"] for row in page["rows"]} == expected
    assert page["total"] == len(expected)


def _cells_match_the_matrix(get, run: str) -> int:
    """Every confusion cell's sample list has as many samples as the cell counts; return cells."""
    _, summary = get(f"/api/summary?run={run}")
    confusion = summary["metrics"]["confusion"]
    checked = 0
    for gold, counts in zip(confusion["rows"], confusion["matrix"], strict=True):
        for column, count in zip(confusion["columns"], counts, strict=True):
            _, page = get(f"/api/samples?run={run}&gold={gold}&pred={column}&limit=1")
            assert page["total"] == count, (gold, column)
            checked += count > 0
    return checked


def test_confusion_cells_list_exactly_their_samples(get):
    assert _cells_match_the_matrix(get, "0") == 10


def test_multi_label_cells_list_exactly_their_samples(tmp_path):
    predictions, gold = emotic_predictions()
    write_run(tmp_path / "emotic", "vlm", predictions, gold=gold, space=EMOTIC)
    server = make_server(open_runs([tmp_path / "emotic"]), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]

    def fetch(path: str):
        with urllib.request.urlopen(f"http://{host}:{port}{path}") as response:
            return response.status, json.loads(response.read())

    try:
        assert _cells_match_the_matrix(fetch, "0") > 20
        _, page = fetch("/api/samples?run=0&oos=serenity")
        assert page["total"] == 6
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_full_frames_come_from_the_mounted_dataset(tmp_path, get):
    root = tmp_path / "faces"
    for name, colour in (("happy", 200), ("sad", 40)):
        (root / name).mkdir(parents=True)
        Image.fromarray(np.full((300, 400, 3), colour, dtype=np.uint8)).save(root / name / "a.png")
    dataset = {"name": "folder", "root": str(root), "split": "test", "fold": 1}
    dataset["options"] = {"label_set": "dfew"}
    predictions = [Prediction("happy/a.png", ("happy",)), Prediction("sad/a.png", ("neutral",))]
    folder = tmp_path / "run"
    write_run(folder, "vlm", predictions, gold=[("happy",), ("sad",)], dataset=dataset)
    server = make_server(open_runs([folder]), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    address = "http://{}:{}".format(*server.server_address[:2])
    try:
        with urllib.request.urlopen(f"{address}/api/frames?run=0&id=sad/a.png") as response:
            frames = json.loads(response.read())
        assert frames == {"frames": [{"index": 0, "caption": "frame 0 · 0.00 s"}], "reason": ""}
        with urllib.request.urlopen(f"{address}/api/frame?run=0&id=sad/a.png&idx=0") as response:
            picture = Image.open(io.BytesIO(response.read()))
        assert picture.size == (400, 300) and abs(picture.getpixel((10, 10))[0] - 40) <= 3
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_full_frames_say_why_without_the_dataset(get):
    status, frames = get("/api/frames?run=0&id=s01")
    assert status == 200 and frames["frames"] == []
    assert frames["reason"] == "the dataset is not mounted: /data/test does not exist"
    status, body = get("/api/frame?run=0&id=s01&idx=0")
    assert status == 400 and "not mounted" in body["error"]


def test_bad_requests_name_the_problem(get):
    status, body = get("/api/samples?run=0&status=maybe")
    assert status == 400 and "status 'maybe' is not one of ok" in body["error"]
    status, body = get("/api/summary?run=9")
    assert status == 400 and "run='9' is not a run id" in body["error"]
    status, body = get("/api/samples?run=0&limit=100000")
    assert status == 400 and "limit 1–500" in body["error"]
    status, body = get("/api/nothing")
    assert status == 404


def test_summary_has_metrics_intervals_and_matrix(get):
    status, summary = get("/api/summary?run=0")
    assert status == 200 and summary["metrics_source"] == "metrics.json"
    metrics = summary["metrics"]
    assert metrics["n"] == 12 and len(metrics["ci"]["uar"]) == 2
    assert metrics["sink"]["label"] == "neutral"
    row = metrics["confusion"]["rows"].index("sad")
    column = metrics["confusion"]["columns"].index("neutral")
    assert metrics["confusion"]["matrix"][row][column] == 2
    assert summary["status_counts"] == {"ok": 8, "out_of_set": 2, "unparsed": 1, "failed": 1}


def test_a_run_without_metrics_json_is_scored_from_its_store(tmp_path, folders):
    shutil.copytree(folders[0], tmp_path / "copy")
    reported = json.loads((tmp_path / "copy" / "metrics.json").read_text())
    (tmp_path / "copy" / "metrics.json").unlink()
    summary = run_summary(open_runs([tmp_path / "copy"])[0])
    assert summary["metrics_source"].startswith("scored from store.sqlite")
    assert summary["metrics"]["confusion"] == reported["confusion"]
    assert summary["metrics"]["uar"] == pytest.approx(reported["uar"])


def test_detail_keeps_raw_answer_sentences_timeline_and_thumbnails(get):
    _, detail = get("/api/sample?run=0&id=s04")
    assert detail["raw"] == SCRIPT_ANSWER
    _, detail = get("/api/sample?run=0&id=s01")
    assert [s["text"] for s in detail["sentences"]] == [
        "the mouth corners drop",
        "the eyes close slowly",
    ]
    assert [t["caption"] for t in detail["thumbnails"]] == ["keyframe 0", "keyframe 1"]
    assert "thumbnails" not in detail["extra"]
    status, jpeg = get("/api/thumb?run=0&id=s01&idx=1")
    assert status == 200 and Image.open(io.BytesIO(jpeg)).size == (128, 85)
    _, detail = get("/api/sample?run=0&id=s00")
    assert detail["timeline"]["times"] == [0.0, 0.5, 1.0]
    _, detail = get("/api/sample?run=0&id=s09")
    timeline = detail["timeline"]
    assert timeline["times"] == [0.0, 0.5, 1.0, 1.5] and timeline["probs"][2] is None
    neutral = timeline["labels"].index("neutral")
    assert [row and round(row[neutral], 2) for row in timeline["probs"]] == [0.9, 0.7, None, 0.6]


def test_compare_counts_and_per_class_differences(get):
    status, result = get("/api/compare?ref=0&other=1")
    assert status == 200 and result["n"] == 12
    assert result["changes"] == {"fixed": 4, "broken": 1, "changed": 7}
    sad = next(row for row in result["per_class"] if row["label"] == "sad")
    assert sad["recall"]["reference"] == 0.0
    assert sad["recall"]["other"] == pytest.approx(2 / 3)
    low, high = sad["recall"]["ci"]
    assert low <= 2 / 3 <= high
    uar = result["headline"]["uar"]
    assert uar["diff"] > 0 and uar["ci"][0] <= uar["diff"] <= uar["ci"][1]
    for kind, expected in (
        ("fixed", ["s01", "s03", "s05", "s07"]),
        ("broken", ["s02"]),
        ("changed", ["s01", "s02", "s03", "s05", "s06", "s07", "s10"]),
    ):
        _, page = get(f"/api/changes?ref=0&other=1&kind={kind}")
        assert [row["sample_id"] for row in page["rows"]] == expected


def test_paired_bootstrap_agrees_with_eval_compare():
    """Multinomial draws over joint codes give the intervals of eval.compare's index resampling."""
    n, k = 3000, len(DFEW)
    rng = np.random.default_rng(3)
    gold = rng.integers(0, k, n)
    answers = {
        name: np.where(rng.random(n) < right, gold, rng.integers(0, k, n))
        for name, right in (("reference", 0.55), ("other", 0.65))
    }
    ids = [f"c{i}" for i in range(n)]
    run = Run("0", Path("unused"), "k", DFEW, {})
    seqs = {"reference": np.arange(n), "other": np.arange(n)}
    ours = _statistics(Comparison(run, run, seqs, gold, answers), k, k + 3)
    golds = [(DFEW.labels[g],) for g in gold]
    theirs = paired_comparison(
        {
            name: (
                [Prediction(i, (DFEW.labels[a],)) for i, a in zip(ids, codes, strict=True)],
                golds,
            )
            for name, codes in answers.items()
        },
        DFEW,
        "reference",
    )
    for metric in ("uar", "war", "macro_f1"):
        expected = theirs["differences"]["other"][metric]
        assert ours["headline"][metric]["diff"] == pytest.approx(expected["diff"])
        assert ours["headline"][metric]["ci"] == pytest.approx(expected["ci"], abs=0.006)


def test_static_page_embeds_data_safely(folders, tmp_path):
    out = tmp_path / "share.html"
    result = CliRunner().invoke(
        app, ["view", str(folders[0]), str(folders[1]), "--static", str(out), "--max-samples", "5"]
    )
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    start = page.index('<script id="emovlm-data" type="application/json">')
    end = page.index("</script>", start)
    embedded = page[page.index(">", start) + 1 : end]
    assert "<" not in embedded and "\\u003cscript" in embedded
    data = json.loads(embedded)
    assert data["note"].startswith("Static page: it holds 5 of 12, 5 of 12 samples")
    assert len(data["samples"]["0"]) == 5
    assert data["compares"]["0|1"]["summary"]["changes"]["fixed"] == 4
    assert "/static/" not in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")


def test_static_page_takes_samples_from_every_confusion_cell(folders, tmp_path):
    from emovlm.view.export import chosen_samples

    run = open_runs([folders[0]])[0]
    # the first sample of each of the 10 non-empty cells, in run order; s11 (fear → neutral) and
    # the second sample of a cell (s07, s08) come only after every cell has one
    assert chosen_samples(run, 9) == ["s00", "s01", "s02", "s03", "s04", "s05", "s06", "s09", "s10"]
    assert chosen_samples(run, 11)[-3:] == ["s09", "s10", "s11"]


def test_not_a_run_folder_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="store.sqlite is missing"):
        open_runs([tmp_path])
    (tmp_path / "store.sqlite").write_text("not a database")
    with pytest.raises(InputError, match="store.sqlite is not a readable emovlm store"):
        open_runs([tmp_path])


# ---- thumbnails ---------------------------------------------------------------------------


def test_thumbnails_are_small_jpegs():
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    image[:, :320] = 255
    data = jpeg_thumbnail(image)
    picture = Image.open(io.BytesIO(data))
    assert picture.format == "JPEG" and max(picture.size) == MAX_SIDE
    assert len(data) < 8_000
    with pytest.raises(ValueError, match="uint8"):
        jpeg_thumbnail(image.astype(np.float32))


def test_evenly_spreads_and_bounds():
    assert evenly(list(range(10)), 4) == [0, 3, 6, 9]
    assert evenly([1, 2], 4) == [1, 2]
    assert evenly([1, 2, 3], 0) == []


def test_store_moves_thumbnails_out_of_the_row(tmp_path):
    frames = [(f"frame {i}", np.full((60, 80, 3), 20 * i, dtype=np.uint8)) for i in range(9)]
    with_thumbs = Prediction("a", ("happy",), extra={"thumbnails": thumbnail_entries(frames, 9)})
    with RunStore(tmp_path, thumbnails=3) as store:
        assert (
            store.write("k", [with_thumbs, Prediction("b", ("sad",))], [("happy",), ("sad",)]) == 2
        )
        predictions, _ = store.rows("k")
    assert all("thumbnails" not in p.extra for p in predictions)
    conn = sqlite3.connect(tmp_path / "store.sqlite")
    rows = conn.execute("SELECT sample_id, idx, caption FROM thumbnails ORDER BY idx").fetchall()
    assert rows == [("a", 0, "frame 0"), ("a", 1, "frame 4"), ("a", 2, "frame 8")]
    stored = conn.execute("SELECT jpeg FROM thumbnails WHERE idx = 1").fetchone()[0]
    assert Image.open(io.BytesIO(stored)).size == (80, 60)
    with RunStore(tmp_path, thumbnails=0) as store:
        store.write("k", [with_thumbs], [("happy",)], replace=True)
    assert conn.execute("SELECT COUNT(*) FROM thumbnails").fetchone() == (0,)


def test_malformed_thumbnails_name_the_sample():
    with pytest.raises(InputError, match="sample 'x7'"):
        decode_entries([{"caption": "c", "jpeg": "not base64!"}], "x7")
    big = base64.b64encode(b"\xff" * 100_000).decode("ascii")
    assert decode_entries([{"caption": "big", "jpeg": big}], "x7") == []
