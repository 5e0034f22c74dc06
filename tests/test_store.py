"""The run store keeps every prediction exactly, once per (configuration, sample), in SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from emovlm.errors import InputError
from emovlm.run.store import STORE_FILE, RunStore
from emovlm.types import Cost, Prediction, Status

PREDICTIONS = [
    Prediction(
        sample_id="00017",
        labels=("happy", "surprise"),
        scores={"happy": 0.8125, "surprise": 0.1875, "sad": 1e-9},
        raw='Happy 😊 — счастье, 快乐\nsecond line\t"quoted"',
        status=Status.OK,
        cost=Cost(calls=2, input_tokens=1234, visual_tokens=576, output_tokens=9, seconds=1.0625),
        extra={
            "trajectory": [[0.0, "neutral", [0.5, 0.5]], [0.25, "happy", [0.9, 0.1]]],
            "frames": {"indices": [0, 4, 8], "sampler": "uniform"},
            "note": None,
            "flag": True,
        },
    ),
    Prediction(sample_id="00018", labels=("pain",), raw="pain", status=Status.OUT_OF_SET),
    Prediction(sample_id="00019", raw="I cannot tell.", status=Status.UNPARSED, scores=None),
    Prediction.failed("clip/π", "TimeoutError: no answer after 60 s", Cost(calls=1, seconds=60.0)),
]
GOLD = [("happy",), ("sad",), ("neutral",), ("anger", "annoyance")]


def test_prediction_round_trip_is_exact(tmp_path: Path) -> None:
    with RunStore(tmp_path) as store:
        store.write("k1", PREDICTIONS, GOLD)
    with RunStore(tmp_path) as reopened:
        predictions, gold = reopened.rows("k1")
    assert predictions == PREDICTIONS
    assert gold == GOLD
    assert [type(p.status) for p in predictions] == [Status] * 4
    assert predictions[0].cost == PREDICTIONS[0].cost and predictions[1].scores is None


def test_numpy_values_are_stored_as_plain_numbers(tmp_path: Path) -> None:
    prediction = Prediction(
        "a",
        ("happy",),
        scores={"happy": np.float32(0.5)},
        extra={"probs": np.array([[0.25, 0.75]]), "n": np.int64(3)},
    )
    with RunStore(tmp_path) as store:
        store.write("k", [prediction], [("happy",)])
        (stored,), _ = store.rows("k")
    assert stored.scores == {"happy": 0.5}
    assert stored.extra == {"probs": [[0.25, 0.75]], "n": 3}


def test_unstorable_extra_is_refused_naming_the_sample(tmp_path: Path) -> None:
    with RunStore(tmp_path) as store:
        bad = Prediction("clip9", ("happy",), extra={"model": object()})
        with pytest.raises(InputError, match="clip9.*object"):
            store.write("k", [bad], [("happy",)])
        assert store.rows("k") == ([], [])


def test_writing_a_sample_twice_keeps_one_row_and_the_first_answer(tmp_path: Path) -> None:
    first = Prediction("s1", ("sad",), raw="sad")
    second = Prediction("s1", ("happy",), raw="happy")
    with RunStore(tmp_path) as store:
        assert store.write("k", [first], [("sad",)]) == 1
        assert store.write("k", [second], [("sad",)]) == 0
        assert store.rows("k") == ([first], [("sad",)])


def test_replace_swaps_the_row_but_keeps_its_place_in_the_order(tmp_path: Path) -> None:
    rows = [Prediction.failed("a", "RuntimeError: x"), Prediction("b", ("sad",))]
    with RunStore(tmp_path) as store:
        store.write("k", rows, [("happy",), ("sad",)])
        store.write("k", [Prediction("c", ("fear",))], [("fear",)])
        fixed = Prediction("a", ("happy",), raw="happy")
        assert store.write("k", [fixed], [("happy",)], replace=True) == 1
        predictions, _ = store.rows("k")
    assert [p.sample_id for p in predictions] == ["a", "b", "c"]
    assert predictions[0] == fixed


def test_configurations_are_kept_apart(tmp_path: Path) -> None:
    with RunStore(tmp_path) as store:
        store.write("second", [Prediction("x", ("sad",))], [("sad",)])
        store.write("first", PREDICTIONS, GOLD)
        store.write("second", [Prediction.failed("y", "ValueError: bad frame")], [("fear",)])
        assert store.keys() == ["second", "first"]
        assert store.done_ids("second") == {"x", "y"}
        assert store.failed_ids("second") == {"y"}
        assert store.failed_ids("first") == {"clip/π"}
        assert store.counts("first") == {"ok": 1, "out_of_set": 1, "unparsed": 1, "failed": 1}
        assert store.counts("second") == {"ok": 1, "out_of_set": 0, "unparsed": 0, "failed": 1}
        assert store.counts("unknown") == {"ok": 0, "out_of_set": 0, "unparsed": 0, "failed": 0}
        assert len(store.rows("first")[0]) == 4


def test_store_uses_write_ahead_logging_and_accepts_the_file_path(tmp_path: Path) -> None:
    with RunStore(tmp_path / "run") as store:
        store.write("k", PREDICTIONS[:1], GOLD[:1])
    with sqlite3.connect(tmp_path / "run" / STORE_FILE) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    with RunStore(tmp_path / "run" / STORE_FILE) as same:
        assert same.done_ids("k") == {"00017"}


def test_opening_a_missing_store_without_create_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"store\.sqlite is missing"):
        RunStore(tmp_path, create=False)
    assert not (tmp_path / STORE_FILE).exists()


def test_a_store_from_another_schema_version_is_refused(tmp_path: Path) -> None:
    RunStore(tmp_path).close()
    with sqlite3.connect(tmp_path / STORE_FILE) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(InputError, match="schema 99"):
        RunStore(tmp_path)


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    (tmp_path / STORE_FILE).write_text("not a database at all" * 100)
    with pytest.raises(InputError, match="not a readable SQLite store"):
        RunStore(tmp_path)


def test_mismatched_gold_length_is_a_programming_error(tmp_path: Path) -> None:
    with RunStore(tmp_path) as store, pytest.raises(ValueError, match="2 predictions but 1"):
        store.write("k", PREDICTIONS[:2], GOLD[:1])


def test_gold_vad_is_kept_and_chunks_carry_only_what_scoring_reads(tmp_path: Path) -> None:
    vads = [(5.5, 3.0, 7.0), None, (1.0, 10.0, 2.5), None]
    answered = Prediction(
        "00020", ("happy",), raw="happy", extra={"vad": [6, 3, 7], "x": "a", "y": 1}
    )
    with RunStore(tmp_path) as store:
        store.write("k", PREDICTIONS, GOLD, gold_vad=vads)
        store.write("k", [answered], [("happy",)])
        chunks = list(store.chunks("k", size=2, extras=("vad", "x")))
        unscored = next(store.chunks("k", scores=False))
    assert [len(predictions) for predictions, _, _ in chunks] == [2, 2, 1]
    predictions = [p for chunk, _, _ in chunks for p in chunk]
    by_id = dict(zip([p.sample_id for p in PREDICTIONS], PREDICTIONS, strict=True))
    assert [p.sample_id for p in predictions] == ["00017", "00018", "00019", "00020", "clip/π"]
    assert [g for _, gold, _ in chunks for g in gold] == [
        GOLD[0],
        GOLD[1],
        GOLD[2],
        ("happy",),
        GOLD[3],
    ]
    assert [v for _, _, vad in chunks for v in vad] == [vads[0], vads[1], vads[2], None, vads[3]]
    for read in predictions[:3] + predictions[4:]:
        original = by_id[read.sample_id]
        assert (read.labels, read.scores, read.status, read.reason) == (
            original.labels, original.scores, original.status, original.reason
        )  # fmt: skip
        assert read.extra == {} and read.cost == Cost()
    assert predictions[0].raw == ""  # ok rows: raw text is not read
    assert predictions[1].raw == "pain" and predictions[2].raw == "I cannot tell."
    assert predictions[3].extra == {"vad": [6, 3, 7], "x": "a"}  # only the extras asked for
    assert unscored[0][0].scores is None


def test_a_schema_1_store_is_upgraded_in_place_and_keeps_its_rows(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / STORE_FILE) as conn:
        conn.executescript(
            """
            CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '1');
            CREATE TABLE predictions (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, config_key TEXT NOT NULL,
                sample_id TEXT NOT NULL, gold TEXT NOT NULL, labels TEXT NOT NULL, scores TEXT,
                raw TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL,
                calls INTEGER NOT NULL, input_tokens INTEGER NOT NULL,
                visual_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
                seconds REAL NOT NULL, extra TEXT NOT NULL, finished TEXT NOT NULL,
                UNIQUE (config_key, sample_id)
            );
            INSERT INTO predictions VALUES (1, 'k', 'old', '["sad"]', '["sad"]', NULL, 'sad',
                'ok', '', 1, 2, 3, 4, 0.5, '{}', '2026-01-01T00:00:00.000+00:00');
            """
        )
    conn.close()
    old = Prediction("old", ("sad",), raw="sad", cost=Cost(1, 2, 3, 4, 0.5))
    with RunStore(tmp_path) as store:
        assert store.rows("k") == ([old], [("sad",)])
        store.write("k", [Prediction("new", ("fear",))], [("fear",)], gold_vad=[(2.0, 8.0, 3.0)])
        assert [vad for _, _, vads in store.chunks("k") for vad in vads] == [(2.0, 8.0, 3.0), None]
    with sqlite3.connect(tmp_path / STORE_FILE) as conn:
        assert conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone() == (
            "2",
        )
    conn.close()
