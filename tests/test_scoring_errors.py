"""Bad input to `emovlm score`: exit code 2 and one line naming the file, the row and the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from emovlm import cli

EMOVLM = Path(sys.executable).with_name("emovlm")


def run_cli(args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """Run the real `emovlm` entry point in-process; returns (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["emovlm", *args])
    with pytest.raises(SystemExit) as stopped:
        cli.main()
    return stopped.value.code, capsys.readouterr().err


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_missing_file_through_the_installed_command(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    done = subprocess.run(
        [str(EMOVLM), "score", str(missing), "--label-set", "dfew"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "nope.csv" in done.stderr and "no such file" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("name", "text", "args", "expected"),
    [
        (
            "a.csv",
            "name,gt,gpt4v\n1,Happy,Happy\n",
            ["--pred-column", "answer"],
            [
                "a.csv",
                "no prediction column 'answer'",
                "available columns: name, gt, gpt4v",
                "--pred-column",
            ],
        ),
        (
            "b.csv",
            "name,label,pred\n1,Happy,Happy\n",
            [],
            ["b.csv", "no gold column 'gt'", "label", "--gt-column"],
        ),
        (
            "c.csv",
            "gt,pred\nHappy,Happy\nSad,Sad,extra\n",
            [],
            ["c.csv", "row 2 (line 3)", "3 fields but the header has 2", "quote cells"],
        ),
        (
            "d.csv",
            "gt,pred\nHappy,Happy\nSad\n",
            [],
            ["d.csv", "row 2 (line 3)", "1 fields but the header has 2"],
        ),
        (
            "e.csv",
            "gt,pred\nHappy,Happy\nContempt,Happy\n",
            [],
            [
                "e.csv",
                "row 2",
                "gold label 'Contempt' is not in label set 'dfew'",
                "valid labels: happy, sad",
            ],
        ),
        ("f.csv", "", [], ["f.csv", "no rows to score", "empty"]),
        ("g.csv", "gt,pred\n", [], ["g.csv", "no rows to score", "only a header"]),
        ("h.xlsx", "gt,pred\n", [], ["h.xlsx", "cannot read .xlsx", ".csv, .tsv or .jsonl"]),
        (
            "i.jsonl",
            '{"gt": "happy", "pred": "happy"}\n{"gt": "sad", "pred": \n',
            [],
            ["i.jsonl", "line 2 is not valid JSON", "one JSON object per line"],
        ),
        ("j.jsonl", '["happy", "happy"]\n', [], ["j.jsonl", "line 1 is a JSON list", "object"]),
        (
            "k.jsonl",
            '{"gt": "happy", "pred": "happy"}\n{"pred": "sad"}\n',
            [],
            ["k.jsonl", "line 2 has no 'gt' field"],
        ),
        (
            "l.csv",
            "gt,pred\nhappy,happy\n,sad\n",
            [],
            ["l.csv", "row 2", "empty gold label", "fill it or drop the row"],
        ),
        (
            "m.csv",
            'gt,pred\nhappy,happy\n"sad, angry",sad\n',
            [],
            ["m.csv", "row 2", "2 gold labels", "--multi-label"],
        ),
        (
            "n.csv",
            "gt,pred\nhappy,happy\n",
            ["--match", "fuzzy"],
            ["unknown match mode 'fuzzy'", "word, contains, contains-any-case"],
        ),
        (
            "o.csv",
            "gt,pred\nhappy,happy\n",
            ["--id-column", "clip"],
            ["o.csv", "no id column 'clip'", "available columns: gt, pred", "--id-column"],
        ),
    ],
)
def test_bad_input_names_file_row_and_fix(
    tmp_path: Path, monkeypatch, capsys, name: str, text: str, args: list[str], expected: list[str]
) -> None:
    path = _write(tmp_path, name, text)
    code, err = run_cli(["score", str(path), "--label-set", "dfew", *args], monkeypatch, capsys)
    assert code == 2
    flat = " ".join(err.split())
    assert flat.startswith("error:")
    for fragment in expected:
        assert fragment in flat, fragment


def test_unknown_label_set_lists_the_known_ones(tmp_path: Path, monkeypatch, capsys) -> None:
    path = _write(tmp_path, "a.csv", "gt,pred\nhappy,happy\n")
    code, err = run_cli(["score", str(path), "--label-set", "affectnet"], monkeypatch, capsys)
    assert code == 2
    assert "unknown label set 'affectnet'" in err and "dfew" in err and "emotic" in err


def test_bad_scores_in_jsonl_name_the_line(tmp_path: Path, monkeypatch, capsys) -> None:
    path = _write(
        tmp_path, "s.jsonl", '{"gt": "happiness", "pred": "happy", "scores": {"joyous": 1}}\n'
    )
    code, err = run_cli(["score", str(path), "--label-set", "emotic"], monkeypatch, capsys)
    assert code == 2
    flat = " ".join(err.split())
    assert "s.jsonl: line 1: bad score entry 'joyous'" in flat and "keys must be labels" in flat


def test_negative_bootstrap_is_refused(tmp_path: Path, monkeypatch, capsys) -> None:
    path = _write(tmp_path, "a.csv", "gt,pred\nhappy,happy\n")
    code, err = run_cli(
        ["score", str(path), "--label-set", "dfew", "--bootstrap", "-5"], monkeypatch, capsys
    )
    assert code == 2
    assert "--bootstrap must be 0 (no intervals) or more, not -5" in err
