"""LoRA fine-tuning end to end on CPU with tiny random VLMs of real architectures and real face media."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from emovlm.backends.transformers_vlm import TransformersVLM
from emovlm.backends.vlm import GenerationSettings, VideoInput
from emovlm.errors import InputError
from emovlm.labels import get_label_space
from emovlm.recognizers.vlm import VLMRecognizer
from emovlm.train.instructions import ViewBuilder
from emovlm.train.lora import LoraSettings, LoraTrainer, language_model_targets
from emovlm.types import Sample
from tiny_models import build_tiny_llava, build_tiny_qwen2_vl

DFEW = get_label_space("dfew")
EMOTIC = get_label_space("emotic")
FAST = LoraSettings(epochs=6, learning_rate=2e-2, batch_size=2, grad_accum=1, dropout=0.0)
"""A high learning rate and no dropout: tiny random models need large steps to move at all."""


@pytest.fixture(scope="module")
def qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("qwen"))


@pytest.fixture(scope="module")
def samples(asset: Callable[[str], Path]) -> list[Sample]:
    """Three labelled photos and a short video of a man breaking into a smile."""
    return [
        Sample("happy", asset("feat-happy"), ("happy",)),
        Sample("angry", asset("feat-angry"), ("angry",)),
        Sample("surprise", asset("feat-surprise"), ("surprise",)),
        Sample("smile", asset("feat-video-single-face"), ("happy",)),
    ]


def _builder(space=DFEW) -> ViewBuilder:
    return ViewBuilder(space, frames="uniform:4", image_size=56)


def _train(model: Path, samples: list[Sample], out: Path, settings: LoraSettings = FAST, **kw):
    return LoraTrainer(TransformersVLM(str(model)), _builder(), settings).train(samples, out, **kw)


def test_the_loss_falls_and_the_saved_adapter_changes_the_answers(
    qwen: Path, samples: list[Sample], tmp_path: Path
) -> None:
    result = _train(qwen, samples, tmp_path / "run")
    losses = [entry["loss"] for entry in result.log]
    assert len(losses) == FAST.epochs and losses[-1] < losses[0]  # measured 6.00 → 5.75
    assert (result.adapter / "adapter_config.json").is_file()
    requests = [_builder().view(s).request() for s in samples]
    gold = [s.labels[0] for s in samples]
    base = TransformersVLM(str(qwen))
    tuned = TransformersVLM(str(qwen), adapter=str(result.adapter))
    greedy = GenerationSettings(max_new_tokens=4)
    assert [a.text for a in tuned.generate(requests, greedy)] != [
        a.text for a in base.generate(requests, greedy)
    ]
    labels = list(DFEW.labels)
    before = base.score(requests, labels, greedy)
    after = tuned.score(requests, labels, greedy)
    gain = [
        a.label_logprobs[g] - b.label_logprobs[g]
        for a, b, g in zip(after, before, gold, strict=True)
    ]
    assert np.mean(gain) > 0  # the adapter makes the gold answers likelier


def test_a_resumed_training_ends_where_an_uninterrupted_one_does(
    qwen: Path, samples: list[Sample], tmp_path: Path
) -> None:
    settings = LoraSettings(
        epochs=2, learning_rate=1e-2, grad_accum=2, dropout=0.1, sampler="class-balanced"
    )
    straight = _train(qwen, samples, tmp_path / "straight", settings)
    first = LoraSettings(**{**settings.__dict__, "epochs": 1})
    _train(qwen, samples, tmp_path / "resumed", first)
    with pytest.raises(InputError, match="already holds checkpoints; pass --resume"):
        _train(qwen, samples, tmp_path / "resumed", settings)
    resumed = _train(qwen, samples, tmp_path / "resumed", settings, resume=True)
    assert resumed.resumed_after == 1
    assert [e["epoch"] for e in resumed.log] == [1, 2]
    assert [e["loss"] for e in resumed.log] == pytest.approx(
        [e["loss"] for e in straight.log], abs=1e-5
    )
    a = load_file(straight.adapter / "adapter_model.safetensors")
    b = load_file(resumed.adapter / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    other = LoraSettings(**{**settings.__dict__, "rank": 4})
    with pytest.raises(InputError, match=r"other settings \(rank\)"):
        _train(qwen, samples, tmp_path / "resumed", other, resume=True)


def test_gradient_checkpointing_trains_to_the_same_losses(
    qwen: Path, samples: list[Sample], tmp_path: Path
) -> None:
    settings = LoraSettings(epochs=2, learning_rate=1e-2, dropout=0.0, grad_accum=1)
    plain = _train(qwen, samples[:2], tmp_path / "plain", settings)
    checkpointed = LoraSettings(**{**settings.__dict__, "gradient_checkpointing": True})
    saved = _train(qwen, samples[:2], tmp_path / "gc", checkpointed)
    assert [e["loss"] for e in saved.log] == pytest.approx([e["loss"] for e in plain.log], rel=1e-4)


def test_lora_targets_the_language_models_attention_not_the_vision_tower(tmp_path: Path) -> None:
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(build_tiny_llava(tmp_path / "llava"))
    targets = language_model_targets(model, ("q_proj", "v_proj"))
    assert len(targets) == 4  # 2 layers x (q, v); CLIP's own q_proj/v_proj are left alone
    assert all(".language_model." in t for t in targets)
    with pytest.raises(InputError, match="no linear layer named qkv in the language model.*q_proj"):
        language_model_targets(model, ("qkv",))


@pytest.mark.slow
def test_llava_trains_on_images_and_video_frames(samples: list[Sample], tmp_path: Path) -> None:
    llava = build_tiny_llava(tmp_path / "llava")
    result = _train(
        llava, samples, tmp_path / "run", LoraSettings(**{**FAST.__dict__, "epochs": 3})
    )
    assert result.log[-1]["loss"] < result.log[0]["loss"]
    assert result.log[0]["examples"] == len(samples) and result.log[0]["skipped"] == 0


def test_training_questions_are_the_ones_the_vlm_recognizer_asks(
    qwen: Path, asset: Callable[[str], Path]
) -> None:
    cases = [
        (DFEW, Sample("photo", asset("feat-happy"), ("happy",))),
        (DFEW, Sample("video", asset("feat-video-single-face"), ("happy",))),
        (
            EMOTIC,
            Sample("person", asset("feat-multi-face"), ("happiness",), box=(20, 30, 220, 260)),
        ),
    ]
    for space, sample in cases:
        recognizer = VLMRecognizer(
            space, model=str(qwen), frames="uniform:4", image_size=56, cache=False
        )
        asked = recognizer._prepare(sample).request
        built = _builder(space).view(sample).request()
        assert built.parts[-1] == asked.parts[-1]  # the prompt text
        ours, theirs = built.parts[0], asked.parts[0]
        if isinstance(theirs, VideoInput):
            assert ours.fps == pytest.approx(theirs.fps)
            assert all(
                np.array_equal(a, b) for a, b in zip(ours.frames, theirs.frames, strict=True)
            )
        else:
            assert np.array_equal(ours, theirs)


def test_emotic_people_in_a_red_box_train_on_their_label_lists(
    qwen: Path, asset: Callable[[str], Path], tmp_path: Path
) -> None:
    people = [
        Sample(
            "left", asset("feat-multi-face"), ("happiness", "engagement"), box=(20, 30, 220, 260)
        ),
        Sample("right", asset("feat-multi-face"), ("peace",), box=(300, 40, 520, 300)),
    ]
    builder = ViewBuilder(EMOTIC, image_size=56)
    trainer = LoraTrainer(TransformersVLM(str(qwen)), builder, LoraSettings(epochs=2, grad_accum=1))
    result = trainer.train(people, tmp_path / "run")
    assert [e["examples"] for e in result.log] == [2, 2]
    assert all(np.isfinite(e["loss"]) for e in result.log)
