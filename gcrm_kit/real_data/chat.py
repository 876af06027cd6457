"""Prompts in the tokenizer's chat format (`render_prompt`, `apply_chat_template`), and benchmark problems answered
greedily by a causal LM and labelled against their references (`answer_problems`)."""

from __future__ import annotations

from ..data import GenerationRecord, PreferencePair
from ..device import resolve_device
from ..generation import sample_responses
from .answers import answers_match, extract_answer
from .rows import Adapted


def render_prompt(tokenizer, prompt: str, messages: list[dict] | None, mode: str = "auto") -> str:
    """The prompt text in the tokenizer's chat format when it has a template (and `mode` is auto), else `prompt`.
    The rendered text ends with the assistant turn's opening; a leading BOS text is dropped because the kit's
    `encode` adds the BOS token itself."""
    if mode == "never" or not getattr(tokenizer, "chat_template", None):
        return prompt
    text = tokenizer.apply_chat_template(messages or [{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
    if tokenizer.bos_token and text.startswith(tokenizer.bos_token):
        text = text[len(tokenizer.bos_token):]
    return text


def apply_chat_template(items: list, tokenizer, mode: str = "auto") -> list:
    """Pairs or records with their prompts rendered by `render_prompt` (responses lose the leading space the raw
    HH-RLHF format puts after "Assistant:"). Returns new objects (an `Adapted` list keeps its `stats`); the raw
    prompt stays in meta["raw_prompt"]."""
    if mode == "never" or not getattr(tokenizer, "chat_template", None):
        return items
    out = Adapted([], items.stats) if isinstance(items, Adapted) else []
    for it in items:
        prompt = render_prompt(tokenizer, it.prompt, it.meta.get("messages"), mode)
        meta = {**it.meta, "raw_prompt": it.prompt}
        if isinstance(it, PreferencePair):
            out.append(PreferencePair(prompt, it.chosen.lstrip(), it.rejected.lstrip(), meta))
        else:
            out.append(GenerationRecord(prompt, it.response.lstrip(), it.is_correct, it.answer, meta))
    return out


# ------------------------------------------------------------------------------------------------ benchmarks


def answer_problems(problems: list[GenerationRecord], model_dir: str, tokenizer, max_new_tokens: int = 512,
                    batch_size: int = 16, chat_template: str = "auto", device: str = "auto") -> list[GenerationRecord]:
    """Answer benchmark problems greedily with the causal LM in `model_dir` (the paper scores the base model's greedy
    generations) on `device` (the notebook's `device` param, `gcrm_kit.device.resolve_device`) and label each
    answer against the reference with `answers_match`."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto").to(resolve_device(device))
    prompts = [render_prompt(tokenizer, q.prompt, None, chat_template) for q in problems]
    outs = sample_responses(model, tokenizer, prompts, n=1, temperature=0.0, max_new_tokens=max_new_tokens,
                            batch_size=batch_size, desc="answering")
    return [GenerationRecord(prompt, o[0], answers_match(extract_answer(o[0]), q.answer), extract_answer(o[0]),
                             {**q.meta, "reference": q.answer})
            for q, prompt, o in zip(problems, prompts, outs)]
