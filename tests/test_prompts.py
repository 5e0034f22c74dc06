"""Prompt templates: built-in names render the label list and instructions; user files override."""

from __future__ import annotations

from pathlib import Path

import pytest

from emovlm.errors import InputError
from emovlm.labels import get_label_space
from emovlm.prompts import load_prompt, prompt_names


def _render(name: str, space: str = "dfew", **over: object) -> str:
    labels = get_label_space(space)
    variables = {
        "labels": list(labels.labels),
        "media": "video",
        "num_frames": 8,
        "multi_label": labels.multi_label,
        "dataset": labels.name,
        "person": "box",
        "k": 6,
    }
    variables.update(over)
    return load_prompt(name).render(**variables)


def test_builtin_names_are_listed() -> None:
    assert {"dfer", "contextual", "contextual-topk", "contextual-definitions"} <= set(
        prompt_names()
    )


@pytest.mark.parametrize("space", ["dfew", "mafw", "ferv39k"])
def test_dfer_prompt_lists_every_label_in_order_and_asks_for_one_word(space: str) -> None:
    text = _render("dfer", space)
    labels = get_label_space(space).labels
    assert ", ".join(labels) in text
    assert "one word" in text
    assert "8 frames" in text
    assert "image" in _render("dfer", space, media="image", num_frames=1)


def test_contextual_prompt_marks_the_person_by_red_box_or_crop() -> None:
    boxed = _render("contextual", "emotic")
    cropped = _render("contextual", "emotic", person="crop")
    assert "red box" in boxed and "red box" not in cropped
    assert "doubt/confusion" in boxed
    assert "separated by commas" in boxed


def test_topk_and_definitions_variants_ask_for_at_most_k_labels() -> None:
    assert "up to 3 emotions" in _render("contextual-topk", "emotic", k=3)
    text = _render("contextual-definitions", "emotic", k=6)
    assert "up to 6 category names" in text
    assert "- peace: well being and relaxed" in text
    assert text.count("\n- ") == 26  # one line per EMOTIC category


def test_definitions_template_lists_labels_it_has_no_definition_for() -> None:
    text = _render("contextual-definitions", "dfew")
    assert "- happy\n" in text


def test_a_user_file_overrides_by_path(tmp_path: Path) -> None:
    own = tmp_path / "mine.j2"
    own.write_text("Emotion of this {{ media }}? {{ labels | join('/') }}", encoding="utf-8")
    prompt = load_prompt(str(own))
    assert prompt.render(labels=["a", "b"], media="image") == "Emotion of this image? a/b"


def test_unknown_prompt_names_the_choices() -> None:
    with pytest.raises(InputError, match="dfer"):
        load_prompt("no-such-prompt")


def test_unknown_variable_and_syntax_errors_name_the_template(tmp_path: Path) -> None:
    bad_var = tmp_path / "var.j2"
    bad_var.write_text("{{ colour }}", encoding="utf-8")
    with pytest.raises(InputError, match="unknown variable"):
        load_prompt(str(bad_var)).render(labels=[])
    bad_syntax = tmp_path / "syntax.j2"
    bad_syntax.write_text("{% if %}", encoding="utf-8")
    with pytest.raises(InputError, match="syntax.j2' line 1"):
        load_prompt(str(bad_syntax))
