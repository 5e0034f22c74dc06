"""Text LLM backends: a tiny random causal LM saved as a folder, a real local chat server, the Gemma GGUF."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from emovlm.assets import cache_dir
from emovlm.backends.text_llm import (
    CONVERTED_MARK,
    DEFAULT_TEXT_LLM,
    GEMMA_SHA256,
    OpenAITextLLM,
    TransformersTextLLM,
    build_text_llm,
    converted_folder,
)
from emovlm.backends.vlm import GenerationSettings, VLMRequest
from emovlm.errors import InputError
from openai_server import Behaviour, FakeOpenAIServer
from tiny_models import LLAVA_SPECIALS, tiny_tokenizer

os.environ["HF_HUB_OFFLINE"] = "1"
LABELS = ("happiness", "sadness", "anger", "peace")
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant:{% endif %}"
)


def build_tiny_causal_lm(folder: Path, chat: bool, seed: int = 0) -> Path:
    """A tiny random Llama causal LM with a trained BPE tokenizer, with or without a chat template."""
    tok = tiny_tokenizer(LLAVA_SPECIALS)
    tok.add_special_tokens({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"})
    if chat:
        tok.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).eval().save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def base_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("base-lm"), chat=False)


@pytest.fixture(scope="module")
def chat_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("chat-lm"), chat=True)


PROMPTS = [
    VLMRequest(("The person feels happiness or sadness. Emotions:",)),
    VLMRequest(("Which emotion? anger, peace. Answer:",), system="You are a helpful assistant."),
]


def test_generate_is_greedy_and_the_same_in_a_batch_or_alone(base_lm: Path) -> None:
    llm = TransformersTextLLM(str(base_lm), batch_size=2)
    settings = GenerationSettings(max_new_tokens=6)
    together = llm.generate(PROMPTS, settings)
    alone = [llm.generate([r], settings)[0] for r in PROMPTS]
    assert [a.text for a in together] == [a.text for a in alone]
    assert all(a.cost.calls == 1 and a.cost.input_tokens > 5 and not a.error for a in together)
    assert together[0].finish_reason in ("stop", "length")


def test_score_gives_each_labels_log_probability_after_the_prompt(base_lm: Path) -> None:
    llm = TransformersTextLLM(str(base_lm))
    [answer] = llm.score(PROMPTS[:1], LABELS, GenerationSettings())
    assert set(answer.label_logprobs) == set(LABELS)
    loaded = llm.load_model()
    tok, model = loaded.processor.tokenizer, loaded.model
    prompt = tok(PROMPTS[0].parts[0], return_tensors="pt")
    # "happiness" as the model would write it right after the prompt, plain and capitalised
    total = []
    for spelling in (" happiness", " Happiness"):
        ids = tok.encode(spelling, add_special_tokens=False)
        full = torch.cat([prompt.input_ids, torch.tensor([ids])], dim=1)
        with torch.no_grad():
            logprobs = model(full).logits.log_softmax(-1)[0]
        start = prompt.input_ids.shape[1]
        total.append(sum(float(logprobs[start - 1 + i, t]) for i, t in enumerate(ids)))
    assert answer.label_logprobs["happiness"] == pytest.approx(np.logaddexp(*total), abs=1e-4)


def test_a_chat_template_is_used_when_the_tokenizer_has_one(chat_lm: Path) -> None:
    llm = TransformersTextLLM(str(chat_lm))
    [answer] = llm.generate(PROMPTS[1:], GenerationSettings(max_new_tokens=2))
    tok = llm.load_model().processor.tokenizer
    chat = tok.apply_chat_template(
        [
            {"role": "system", "content": PROMPTS[1].system},
            {"role": "user", "content": PROMPTS[1].parts[0]},
        ],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert answer.cost.input_tokens == len(tok(chat, add_special_tokens=False).input_ids)


def test_images_are_refused_per_request(base_lm: Path) -> None:
    llm = TransformersTextLLM(str(base_lm))
    image = np.zeros((8, 8, 3), np.uint8)
    answers = llm.generate([VLMRequest((image, "What?")), PROMPTS[0]], GenerationSettings())
    assert "text only" in answers[0].error and not answers[1].error


def test_fingerprint_follows_the_weights(tmp_path: Path) -> None:
    first = TransformersTextLLM(str(build_tiny_causal_lm(tmp_path / "a", chat=False, seed=0)))
    second = TransformersTextLLM(str(build_tiny_causal_lm(tmp_path / "b", chat=False, seed=1)))
    assert first.fingerprint()["files"] != second.fingerprint()["files"]


@pytest.fixture(scope="module")
def text_server() -> Iterator[FakeOpenAIServer]:
    behaviour = Behaviour(models=("text-llm",), vision=False, answer=lambda images, text: "peace")
    with FakeOpenAIServer(behaviour, lifetime=120) as server:
        yield server


def test_a_text_only_chat_server_gets_plain_string_messages(
    text_server: FakeOpenAIServer,
) -> None:
    llm = build_text_llm("openai", "text-llm", base_url=text_server.url)
    assert isinstance(llm, OpenAITextLLM)
    llm.preflight("generate")  # a server that takes no images passes the text-only probe
    text_server.reset()
    [answer] = llm.generate(PROMPTS[1:], GenerationSettings(max_new_tokens=4))
    assert answer.text == "peace" and not answer.error
    [received] = text_server.received
    messages = received["body"]["messages"]
    assert messages == [
        {"role": "system", "content": PROMPTS[1].system},
        {"role": "user", "content": PROMPTS[1].parts[0]},
    ]


def test_wrong_combinations_are_refused_with_the_fix() -> None:
    with pytest.raises(InputError, match="--llm-base-url"):
        build_text_llm("openai", "some-model")
    with pytest.raises(InputError, match="--llm-model"):
        build_text_llm("openai", DEFAULT_TEXT_LLM, base_url="http://127.0.0.1:1/v1")
    with pytest.raises(InputError, match="applies to --llm-backend openai only"):
        build_text_llm("transformers", "x", base_url="http://127.0.0.1:1/v1")
    with pytest.raises(InputError, match="no such GGUF file"):
        TransformersTextLLM("/nowhere/model.gguf")
    with pytest.raises(InputError, match="unknown text LLM backend"):
        build_text_llm("llamafile", "x")


@pytest.mark.slow
def test_the_offline_default_is_gemma_3_270m_from_pypi_and_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "assets").symlink_to(cache_dir() / "assets", target_is_directory=True)
    monkeypatch.setenv("EMOVLM_CACHE", str(tmp_path))
    llm = TransformersTextLLM()
    assert llm.fingerprint()["files"] == GEMMA_SHA256
    assert llm.files.gguf_file == "gemma-3-270m-q4_k_m.gguf"
    prompt = VLMRequest(("The capital of France is",))
    [answer] = llm.generate([prompt], GenerationSettings(max_new_tokens=4))
    assert answer.text and answer.cost.output_tokens == 4 and not answer.error
    [scored] = llm.score([prompt], ("Paris", "London"), GenerationSettings())
    assert scored.label_logprobs["Paris"] > scored.label_logprobs["London"]
    converted = converted_folder(llm.files)
    assert converted is not None and (converted / CONVERTED_MARK).is_file()
    assert llm.loaded_from == llm.files.folder
    again = TransformersTextLLM()
    assert again.fingerprint() == llm.fingerprint()
    again.load_model()
    assert again.loaded_from == converted
    [scored_again] = again.score([prompt], ("Paris", "London"), GenerationSettings())
    for label, logprob in scored.label_logprobs.items():
        assert scored_again.label_logprobs[label] == pytest.approx(logprob, abs=1e-4)
    [answer_again] = again.generate([prompt], GenerationSettings(max_new_tokens=4))
    assert answer_again.text == answer.text
