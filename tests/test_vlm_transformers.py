"""The `transformers` backend on tiny random Qwen2-VL and LLaVA models, loaded from folders."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from emovlm.backends.transformers_score import label_token_variants
from emovlm.backends.transformers_vlm import TransformersVLM
from emovlm.backends.vlm import GenerationSettings, VideoInput, VLMRequest
from emovlm.errors import BackendError, InputError
from emovlm.labels import get_label_space
from tiny_models import build_tiny_llava, build_tiny_qwen2_vl

os.environ["HF_HUB_OFFLINE"] = "1"
MAFW = get_label_space("mafw").labels
GREEDY = GenerationSettings(max_new_tokens=6)
RNG = np.random.default_rng(7)
IMAGES = [RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(4)]
QUESTION = "Which emotion does the person show? Choose one of: " + ", ".join(MAFW) + "."


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-vlms")
    return {
        "qwen2_vl": build_tiny_qwen2_vl(root / "qwen2_vl"),
        "llava": build_tiny_llava(root / "llava"),
    }


@pytest.fixture(scope="module", params=["qwen2_vl", "llava"])
def family(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def vlm(folders: dict[str, Path], family: str) -> Iterator[TransformersVLM]:
    yield TransformersVLM(str(folders[family]), batch_size=3)


def mixed_requests() -> list[VLMRequest]:
    """Requests of different lengths (so batches need padding), one with two images."""
    return [
        VLMRequest((IMAGES[0], QUESTION)),
        VLMRequest((IMAGES[1], "Emotion?")),
        VLMRequest((IMAGES[2], IMAGES[3], QUESTION + " Answer with one word.")),
    ]


def test_generate_answers_with_costs_and_is_deterministic(vlm: TransformersVLM) -> None:
    first = vlm.generate(mixed_requests(), GREEDY)
    again = vlm.generate(mixed_requests(), GREEDY)
    assert [a.text for a in first] == [a.text for a in again]
    for answer in first:
        assert not answer.error and isinstance(answer.text, str)
        assert answer.cost.calls == 1 and 1 <= answer.cost.output_tokens <= 6
        assert 0 < answer.cost.visual_tokens < answer.cost.input_tokens
        assert answer.finish_reason in {"stop", "length"}
    assert first[2].cost.visual_tokens == 2 * first[0].cost.visual_tokens  # two images vs one


def test_batched_equals_unbatched(
    folders: dict[str, Path], family: str, vlm: TransformersVLM
) -> None:
    single = TransformersVLM(str(folders[family]), batch_size=1)
    requests = mixed_requests()
    assert [a.text for a in vlm.generate(requests, GREEDY)] == [
        a.text for a in single.generate(requests, GREEDY)
    ]
    batched = vlm.score(requests, MAFW, GREEDY)
    alone = single.score(requests, MAFW, GREEDY)
    for b, a in zip(batched, alone, strict=True):
        for label in MAFW:
            assert b.label_logprobs[label] == pytest.approx(a.label_logprobs[label], abs=1e-4)
        assert b.cost.input_tokens == a.cost.input_tokens


def test_label_scores_are_log_probabilities_of_disjoint_answers(vlm: TransformersVLM) -> None:
    for answer in vlm.score(mixed_requests(), MAFW, GREEDY):
        values = np.array([answer.label_logprobs[label] for label in MAFW])
        assert (values < 0).all()
        assert np.exp(values).sum() <= 1.0 + 1e-5
        assert answer.cost.output_tokens == 0 and answer.cost.calls == 1


def test_scoring_uses_no_deprecated_keyword(vlm: TransformersVLM) -> None:
    """transformers announces removals with FutureWarning (e.g. `past_key_values=` in 5.40)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        answers = vlm.score(mixed_requests(), MAFW, GREEDY)
    assert all(not a.error and len(a.label_logprobs) == len(MAFW) for a in answers)


def _naive_label_logprob(vlm: TransformersVLM, request: VLMRequest, tokens: list[int]) -> float:
    """log P(tokens | prompt) from one full forward pass over prompt + tokens (no cache)."""
    loaded = vlm.load_model()
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": request.parts[1]}]}
    ]
    text = loaded.processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=False
    )
    inputs = dict(loaded.processor(text=[text], images=[request.parts[0]], return_tensors="pt"))
    prompt_len = inputs["input_ids"].shape[1]
    extra = torch.tensor([tokens])
    inputs["input_ids"] = torch.cat([inputs["input_ids"], extra], dim=1)
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    if "mm_token_type_ids" in inputs:
        inputs["mm_token_type_ids"] = torch.cat(
            [inputs["mm_token_type_ids"], torch.zeros_like(extra)], 1
        )
    with torch.no_grad():
        logits = loaded.model(**inputs).logits[0].float().log_softmax(-1)
    return float(sum(logits[prompt_len - 1 + i, t] for i, t in enumerate(tokens)))


def test_scores_equal_a_naive_full_pass_per_label(vlm: TransformersVLM) -> None:
    request = mixed_requests()[0]
    [answer] = vlm.score([request], MAFW, GREEDY)
    tokenizer = vlm.load_model().processor.tokenizer
    after_space = vlm.load_model().processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
        add_generation_prompt=True,
        tokenize=False,
    )[-1:] not in {"\n", " "}
    for label, spellings in zip(
        MAFW, label_token_variants(tokenizer, MAFW, after_space), strict=True
    ):
        naive = np.logaddexp.reduce([_naive_label_logprob(vlm, request, t) for t in spellings])
        assert answer.label_logprobs[label] == pytest.approx(naive, abs=1e-4), label
    assert any(
        len(t) > 1
        for spellings in label_token_variants(tokenizer, MAFW, after_space)
        for t in spellings
    )


def test_score_runs_the_prompt_and_images_once(vlm: TransformersVLM, family: str) -> None:
    model = vlm.load_model().model
    vision = model.model.visual if family == "qwen2_vl" else model.model.vision_tower
    lengths: list[int] = []
    vision_calls: list[int] = []
    hooks = [
        model.model.language_model.register_forward_hook(
            lambda m, args, kwargs, out: lengths.append(kwargs["inputs_embeds"].shape[1]),
            with_kwargs=True,
        ),
        vision.register_forward_hook(lambda *a: vision_calls.append(1)),
    ]
    try:
        [answer] = vlm.score([mixed_requests()[0]], MAFW, GREEDY)
    finally:
        for hook in hooks:
            hook.remove()
    prompt_tokens = answer.cost.input_tokens
    assert len(vision_calls) == 1
    assert lengths.count(prompt_tokens) == 1  # the one pass over the whole prompt
    assert all(n < 10 for n in lengths if n != prompt_tokens)  # then only label tokens


def test_video_goes_as_video_where_the_family_has_a_video_processor(
    folders: dict[str, Path],
) -> None:
    clip = VideoInput(tuple(IMAGES), fps=4.0)
    request = VLMRequest((clip, QUESTION))
    as_video = TransformersVLM(str(folders["qwen2_vl"]))
    as_images = TransformersVLM(str(folders["qwen2_vl"]), frames_as="images")
    [video_answer] = as_video.generate([request], GREEDY)
    [images_answer] = as_images.generate([request], GREEDY)
    processor = as_video.load_model().processor
    grid = processor.video_processor(videos=[np.stack(IMAGES)], return_tensors="pt")[
        "video_grid_thw"
    ]
    assert video_answer.cost.visual_tokens == int(grid.prod()) // 4
    image_grid = processor.image_processor(images=IMAGES, return_tensors="pt")["image_grid_thw"]
    assert images_answer.cost.visual_tokens == int(image_grid.prod(dim=1).sum()) // 4
    llava = TransformersVLM(str(folders["llava"]))
    [llava_answer] = llava.generate([request], GREEDY)  # no video processor: four images
    assert llava_answer.cost.visual_tokens == 4 * 16
    with pytest.raises(BackendError, match="no video processor"):
        TransformersVLM(str(folders["llava"]), frames_as="video").preflight("generate")


def test_too_long_requests_fail_alone(folders: dict[str, Path]) -> None:
    vlm = TransformersVLM(
        str(folders["llava"]), batch_size=4
    )  # context limit 512, 16 tokens per image
    huge = VLMRequest((*[IMAGES[0]] * 40, "Emotion?"))
    ok, too_long = vlm.generate([mixed_requests()[0], huge], GREEDY)
    assert not ok.error and ok.text is not None
    assert too_long.error.startswith("context too long:") and "--frames" in too_long.error


def test_lora_adapter_changes_answers_and_fingerprint(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(folders["llava"])
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(tmp_path / "adapter")
    plain = TransformersVLM(str(folders["llava"]))
    tuned = TransformersVLM(str(folders["llava"]), adapter=str(tmp_path / "adapter"))
    assert plain.fingerprint()["adapter"] is None and tuned.fingerprint()["adapter"]
    request = [mixed_requests()[0]]
    a = plain.score(request, MAFW, GREEDY)[0].label_logprobs
    b = tuned.score(request, MAFW, GREEDY)[0].label_logprobs
    assert any(abs(a[label] - b[label]) > 1e-3 for label in MAFW)


def test_fingerprint_follows_the_folder_content(folders: dict[str, Path], tmp_path: Path) -> None:
    vlm = TransformersVLM(str(folders["llava"]))
    again = TransformersVLM(str(folders["llava"]))
    assert vlm.fingerprint() == again.fingerprint()
    other = build_tiny_llava(tmp_path / "other", seed=1)
    assert TransformersVLM(str(other)).fingerprint()["files"] != vlm.fingerprint()["files"]


def test_bad_model_arguments_fail_up_front(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="neither a folder nor in the local Hugging Face cache"):
        TransformersVLM("nobody/no-such-model")
    with pytest.raises(InputError, match="not a model folder"):
        TransformersVLM(str(tmp_path / "missing"))
    with pytest.raises(InputError, match="--dtype"):
        TransformersVLM(str(tmp_path), dtype="int3")
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(BackendError, match="cannot load .* as an image-text-to-text model"):
        TransformersVLM(str(tmp_path)).preflight("generate")
