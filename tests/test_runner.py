"""The runner streams a dataset through a recognizer into the store, survives failures, resumes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from emovlm.errors import InputError, MissingDependencyError
from emovlm.labels import get_label_space
from emovlm.run.runner import RunSummary, evaluate
from emovlm.run.store import RunStore
from emovlm.types import Status
from test_runner_support import (
    EndlessDataset,
    FileNameRecognizer,
    ListDataset,
    make_samples,
)

DATASET_CONFIG = {"root": "/data", "split": "test", "fold": 1, "options": {}}


def _evaluate(dataset: Any, recognizer: FileNameRecognizer, run_dir: Path, **kw: Any) -> RunSummary:
    options = {"batch_size": 3, "progress": False, "report": False, **kw}
    return evaluate(dataset, recognizer, run_dir, dataset_config=DATASET_CONFIG, **options)


def _rows(run_dir: Path, key: str) -> tuple[list, list]:
    with RunStore(run_dir) as store:
        return store.rows(key)


def test_every_sample_gets_one_row_with_the_recognizers_answer(tmp_path: Path) -> None:
    samples = make_samples(10)
    summary = _evaluate(ListDataset(samples), FileNameRecognizer(), tmp_path)
    assert (summary.n_total, summary.n_done_before, summary.n_new, summary.n_failed) == (
        10,
        0,
        10,
        0,
    )
    predictions, gold = _rows(tmp_path, summary.config_key)
    assert [p.sample_id for p in predictions] == [s.id for s in samples]
    assert gold == [s.labels for s in samples]
    assert predictions[0].top == "happy" and predictions[0].status is Status.OK
    assert predictions[4].labels == ("pain",) and predictions[4].status is Status.OUT_OF_SET
    assert predictions[0].extra["trajectory"]["probs"][1] == [1.0, 0, 0, 0, 0, 0, 0]
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "store.sqlite").is_file()


def test_a_raising_batch_is_retried_one_by_one_and_only_the_bad_sample_fails(
    tmp_path: Path,
) -> None:
    recognizer = FileNameRecognizer(fail_ids=frozenset({"clip004"}))
    summary = _evaluate(ListDataset(make_samples(7)), recognizer, tmp_path)
    assert summary.n_new == 7 and summary.n_failed == 1
    assert recognizer.calls == [
        ["clip000", "clip001", "clip002"],
        ["clip003", "clip004", "clip005"],
        ["clip003"],
        ["clip004"],
        ["clip005"],
        ["clip006"],
    ]
    predictions, _ = _rows(tmp_path, summary.config_key)
    failed = {p.sample_id: p for p in predictions if p.status is Status.FAILED}
    assert list(failed) == ["clip004"]
    assert failed["clip004"].reason == "RuntimeError: model server hung up on clip004"
    assert "RuntimeError" in failed["clip004"].extra["traceback"]
    assert [p.sample_id for p in predictions] == [f"clip{i:03d}" for i in range(7)]


def test_a_recognizer_that_loses_a_prediction_gives_a_failed_row(tmp_path: Path) -> None:
    class Forgetful(FileNameRecognizer):
        def predict(self, samples):  # type: ignore[no-untyped-def]
            return super().predict(samples)[:-1]

    summary = _evaluate(ListDataset(make_samples(2)), Forgetful(), tmp_path, batch_size=2)
    predictions, _ = _rows(tmp_path, summary.config_key)
    assert [p.status for p in predictions] == [Status.FAILED, Status.FAILED]
    assert predictions[0].reason.startswith("ValueError: recognizer 'filename' returned")


def test_resume_after_ctrl_c_gives_the_same_rows_as_an_uninterrupted_run(tmp_path: Path) -> None:
    samples = make_samples(12)
    reference = _evaluate(ListDataset(samples), FileNameRecognizer(), tmp_path / "whole")

    run_dir = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        _evaluate(ListDataset(samples), FileNameRecognizer(interrupt_at="clip007"), run_dir)
    kept, _ = _rows(run_dir, reference.config_key)
    assert [p.sample_id for p in kept] == [f"clip{i:03d}" for i in range(6)]

    recognizer = FileNameRecognizer()
    resumed = _evaluate(ListDataset(samples), recognizer, run_dir)
    assert resumed.config_key == reference.config_key
    assert (resumed.n_total, resumed.n_done_before, resumed.n_new) == (12, 6, 6)
    assert [ids[0] for ids in recognizer.calls] == ["clip006", "clip009"]
    assert _strip_times(_rows(run_dir, resumed.config_key)) == _strip_times(
        _rows(tmp_path / "whole", reference.config_key)
    )


def _strip_times(rows: tuple[list, list]) -> tuple[list, list]:
    """Rows with the failed ones' measured seconds (which vary run to run) left out."""
    predictions, gold = rows
    return [(p.sample_id, p.labels, p.status, p.reason, p.raw, p.scores) for p in predictions], gold


def test_resuming_a_finished_run_predicts_nothing(tmp_path: Path) -> None:
    _evaluate(
        ListDataset(make_samples(5)), FileNameRecognizer(fail_ids=frozenset({"clip001"})), tmp_path
    )
    recognizer = FileNameRecognizer()
    again = _evaluate(ListDataset(make_samples(5)), recognizer, tmp_path)
    assert recognizer.calls == []
    assert (again.n_done_before, again.n_new, again.n_failed) == (5, 0, 1)


def test_starting_over_a_folder_with_rows_needs_resume(tmp_path: Path) -> None:
    _evaluate(ListDataset(make_samples(2)), FileNameRecognizer(), tmp_path)
    with pytest.raises(InputError, match=r"already holds 2 rows.*--resume.*--run-dir"):
        _evaluate(ListDataset(make_samples(2)), FileNameRecognizer(), tmp_path, resume=False)


def test_retry_failed_reruns_only_the_failed_samples_in_place(tmp_path: Path) -> None:
    flaky = FileNameRecognizer(fail_ids=frozenset({"clip002", "clip005"}))
    first = _evaluate(ListDataset(make_samples(8)), flaky, tmp_path)
    assert first.n_failed == 2

    recognizer = FileNameRecognizer()
    retried = _evaluate(ListDataset(make_samples(8)), recognizer, tmp_path, retry_failed=True)
    assert recognizer.calls == [["clip002", "clip005"]]
    assert (retried.n_done_before, retried.n_new, retried.n_failed) == (6, 2, 0)
    predictions, _ = _rows(tmp_path, retried.config_key)
    assert [p.sample_id for p in predictions] == [f"clip{i:03d}" for i in range(8)]
    assert predictions[2].status is Status.OK and predictions[2].reason == ""


def test_several_configurations_share_one_folder_without_mixing(tmp_path: Path) -> None:
    samples = make_samples(4)
    a = _evaluate(ListDataset(samples), FileNameRecognizer(variant="a"), tmp_path)
    b = _evaluate(ListDataset(samples), FileNameRecognizer(variant="b"), tmp_path, resume=False)
    assert a.config_key != b.config_key and b.n_new == 4
    with RunStore(tmp_path) as store:
        assert store.keys() == [a.config_key, b.config_key]
        assert {p.extra["variant"] for p in store.rows(b.config_key)[0]} == {"b"}
    listed = yaml.safe_load((tmp_path / "config.yaml").read_text(encoding="utf-8"))
    assert [c["recognizer"]["config"] for c in listed["configurations"]] == [
        {"variant": "a"},
        {"variant": "b"},
    ]
    assert listed["configurations"][0]["dataset"] == {"name": "toy", **DATASET_CONFIG}


def test_samples_are_streamed_so_a_limit_ends_an_endless_dataset(tmp_path: Path) -> None:
    summary = _evaluate(EndlessDataset(), FileNameRecognizer(), tmp_path, limit=5)
    assert (summary.n_total, summary.n_new) == (5, 5)
    more = _evaluate(EndlessDataset(), FileNameRecognizer(), tmp_path, limit=7)
    assert (more.n_total, more.n_done_before, more.n_new) == (7, 5, 2)


def test_the_dataset_is_read_batch_by_batch(tmp_path: Path) -> None:
    dataset = ListDataset(make_samples(30))
    pulled_at_first_call: list[int] = []

    class Watching(FileNameRecognizer):
        def predict(self, samples):  # type: ignore[no-untyped-def]
            pulled_at_first_call.append(dataset.pulled)
            return super().predict(samples)

    _evaluate(dataset, Watching(), tmp_path)
    assert pulled_at_first_call[0] == 3


def test_duplicate_sample_ids_are_refused_by_name(tmp_path: Path) -> None:
    samples = make_samples(3)
    with pytest.raises(InputError, match=r"dataset 'toy' yields sample id 'clip001' twice"):
        _evaluate(ListDataset([*samples, samples[1]]), FileNameRecognizer(), tmp_path)


def test_a_recognizer_in_another_label_space_is_refused(tmp_path: Path) -> None:
    recognizer = FileNameRecognizer(label_space=get_label_space("mafw"))
    with pytest.raises(InputError, match="label set 'mafw' but dataset 'toy' uses 'dfew'"):
        _evaluate(ListDataset(make_samples(2)), recognizer, tmp_path)


@pytest.mark.parametrize(("option", "value"), [("batch_size", 0), ("limit", -1)])
def test_bad_batch_size_or_limit_is_refused(tmp_path: Path, option: str, value: int) -> None:
    with pytest.raises(InputError, match=option.replace("_", " ")):
        _evaluate(ListDataset(make_samples(2)), FileNameRecognizer(), tmp_path, **{option: value})


def test_the_progress_bar_runs_to_the_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recognizer = FileNameRecognizer(fail_ids=frozenset({"clip001"}))
    _evaluate(ListDataset(make_samples(8)), recognizer, tmp_path, progress=True)
    shown = capsys.readouterr().err
    assert "8/8" in shown and "samples/s" in shown
    assert "6 ok" in shown and "1 other" in shown and "1 failed" in shown


def test_a_missing_dependency_stops_the_run_with_its_fix(tmp_path: Path) -> None:
    class NeedsAPackage(FileNameRecognizer):
        def predict(self, samples):  # type: ignore[no-untyped-def]
            if "clip003" in [s.id for s in samples]:
                raise MissingDependencyError("backend 'openai' needs openai; run: pip install x")
            return super().predict(samples)

    with pytest.raises(MissingDependencyError, match="pip install"):
        _evaluate(ListDataset(make_samples(6)), NeedsAPackage(), tmp_path)
    with RunStore(tmp_path) as store:
        (key,) = store.keys()
        assert store.done_ids(key) == {"clip000", "clip001", "clip002"}
