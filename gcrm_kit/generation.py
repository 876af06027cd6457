"""Sampling solutions from a policy with Hugging Face `generate`, batched, with a progress bar. (Sampling whose
noise belongs to each sample, and generation that prunes samples while they are written, serve notebook 03 only:
`gcrm_kit.filtering.noise` and `gcrm_kit.filtering.decoding`.)"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .data import pad_ids


@torch.no_grad()
def sample_responses(
    model,
    tokenizer,
    prompts: list[str],
    n: int = 1,
    temperature: float = 1.0,
    max_new_tokens: int = 64,
    batch_size: int = 256,
    suppress_tokens: list[str] | None = None,
    seed: int = 0,
    desc: str = "sampling",
    return_finished: bool = False,
):
    """Sample `n` responses for each prompt.

    The prompt is encoded as BOS + prompt, left-padded; `suppress_tokens` (strings) are never generated
    (the toy world suppresses its self-checking marks). temperature 0 means greedy decoding.
    Returns one list of `n` decoded responses (special tokens removed) per prompt, in prompt order; with
    `return_finished`, also the same-shaped lists of whether each response ended with the EOS token (False: it was
    cut at `max_new_tokens`, and the decoded text carries no sign of that).
    """
    model.eval()
    torch.manual_seed(seed)
    bad = [tokenizer.convert_tokens_to_ids(t) for t in (suppress_tokens or [])]
    # sort by length so batches waste little padding; restore order at the end
    flat = [(i, p) for i, p in enumerate(prompts) for _ in range(n)]
    flat.sort(key=lambda x: len(x[1]))
    out: list[list[str]] = [[] for _ in prompts]
    fin: list[list[bool]] = [[] for _ in prompts]
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    for start in tqdm(range(0, len(flat), batch_size), desc=desc, leave=False):
        chunk = flat[start:start + batch_size]
        enc = [bos + tokenizer(p, add_special_tokens=False)["input_ids"] for _, p in chunk]
        ids, att = pad_ids(enc, tokenizer.pad_token_id, side="left")
        gen_kwargs = dict(
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            suppress_tokens=bad or None,
        )
        if temperature > 0:
            gen_kwargs.update(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
        else:
            gen_kwargs.update(do_sample=False)
        seqs = model.generate(input_ids=ids.to(model.device), attention_mask=att.to(model.device), **gen_kwargs)
        new = seqs[:, ids.shape[1]:]
        texts = tokenizer.batch_decode(new, skip_special_tokens=True)
        ended = (new == tokenizer.eos_token_id).any(1).tolist()
        for (i, _), t, e in zip(chunk, texts, ended):
            out[i].append(t)
            fin[i].append(bool(e))
    return (out, fin) if return_finished else out
