"""Reward models as standard Hugging Face sequence-classification checkpoints, and their hidden states.

A reward model is `AutoModelForSequenceClassification` with ``num_labels=1``: a causal backbone and a bias-free
linear `score` head. Its reward is the head applied to the final-layer state (after the final norm) at the
last non-pad token, the EOS. The kit reads the same states for the contrastive loss and for Q-values, in one
forward pass, and computes position ids over real tokens so the result does not depend on the padding side.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import processors
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

from .data import check_tokenizer, encode, pad_batch
from .io import normal_permissions

log = logging.getLogger(__name__)
_ATTN_MESSAGE_SHOWN = False


def flash_attn_error() -> str | None:
    """None when the `flash_attn` package imports; else why not. Importing it (not only finding it) catches an
    install whose compiled extension does not load (a CUDA or torch ABI mismatch), which would otherwise pass this
    check and fail when the model loads."""
    try:
        import flash_attn  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] == "flash_attn":
            return "the flash_attn package is not installed"
        return f"the flash_attn package does not import ({type(e).__name__}: {e})"
    except Exception as e:  # a broken build raises ImportError, OSError (undefined symbol), RuntimeError...
        return f"the flash_attn package does not import ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    return None


def resolve_attn_implementation(requested: str = "auto", dtype: str = "bfloat16") -> str | None:
    """The attention implementation to load with: `flash_attention_2` when asked for (or `auto`), a GPU is there,
    the model runs in a 16-bit `dtype` (flash-attention 2 has no float32 kernels) and the `flash_attn` package
    imports; otherwise None (the model's default attention, SDPA for Llama). When flash-attention 2 was asked for,
    or `auto` runs on a GPU without it, one message says why it is not used."""
    global _ATTN_MESSAGE_SHOWN
    if requested in ("sdpa", "eager"):
        return requested
    gpu = torch.cuda.is_available()
    if not gpu:
        why = "no GPU"
    elif dtype == "float32":
        why = "it runs only in 16 bits and model.dtype is float32; set model.dtype: bfloat16 to use it"
    else:
        why = flash_attn_error()
        if why is None:
            return "flash_attention_2"
    if (requested == "flash_attention_2" or gpu) and not _ATTN_MESSAGE_SHOWN:
        hint = " (pip install 'gcrm_kit[gpu]' on a CUDA machine to get it)" if "not installed" in why else ""
        log.warning("flash-attention 2 is not used (%s): the model's default attention runs instead%s", why, hint)
        print(f"[gcrm] attention: flash-attention 2 unavailable ({why}); using the default attention", flush=True)
        _ATTN_MESSAGE_SHOWN = True
    return None


def set_pad_token(tokenizer, pad_token: str = "") -> None:
    """Give a tokenizer without a pad token one that is not its EOS: `pad_token` (an existing token) when given,
    else its unk token. Raises ValueError naming the option when neither exists."""
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id and not pad_token:
        return
    if pad_token:
        if tokenizer.convert_tokens_to_ids(pad_token) in (None, tokenizer.unk_token_id) and \
                pad_token != tokenizer.unk_token:
            raise ValueError(f"model.pad_token {pad_token!r} is not a token of this tokenizer")
        tokenizer.pad_token = pad_token
    elif tokenizer.unk_token is not None and tokenizer.unk_token_id != tokenizer.eos_token_id:
        tokenizer.pad_token = tokenizer.unk_token
    else:
        raise ValueError("the tokenizer has no pad token distinct from EOS and no unk token: set model.pad_token to "
                         "an existing token that is not EOS (for Llama 3: '<|reserved_special_token_0|>')")


def add_scoring_template(tokenizer) -> None:
    """Make `tokenizer`, in place, add what the kit adds around a scored sequence (`data.encode`), so a reward
    model saved with it is scored by plain transformers, a `pipeline` or TRL as the kit scores it:
    ``tokenizer(prompt + response)`` gives BOS (when the tokenizer has one) + text + EOS, and
    ``tokenizer(prompt, response)`` gives BOS + prompt + response + EOS with the two parts tokenised apart, which is
    exactly the kit's ids for any tokenizer (concatenated text can merge differently where prompt and response meet
    in a subword tokenizer; for the toy world's character tokenizer both forms are the same).

    It sets the `tokenizers` post-processor, which `save_pretrained` writes into tokenizer.json (a byte-level one
    keeps its byte-level offset step). The kit's own ids never depend on it: it always tokenises with
    ``add_special_tokens=False`` and places BOS and EOS itself. A tokenizer without a `tokenizers` backend is left
    as it is, with a warning."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        log.warning("%s has no `tokenizers` backend: its saved copy will not add BOS/EOS around a text, so score "
                    "the checkpoint with ids built as gcrm_kit.data.encode builds them", type(tokenizer).__name__)
        return
    bos = tokenizer.bos_token if tokenizer.bos_token_id is not None else None
    eos = tokenizer.eos_token
    specials = ([(bos, tokenizer.bos_token_id)] if bos else []) + [(eos, tokenizer.eos_token_id)]
    head = f"{bos}:0 " if bos else ""
    template = processors.TemplateProcessing(single=f"{head}$A:0 {eos}:0", pair=f"{head}$A:0 $B:0 {eos}:0",
                                             special_tokens=specials)
    # a byte-level post-processor only adjusts offsets; kept so `return_offsets_mapping` is unchanged
    old = json.loads(backend.post_processor.__getstate__()) if backend.post_processor is not None else {}
    steps = old.get("processors", [old]) if old.get("type") == "Sequence" else [old]
    byte_level = [processors.ByteLevel(add_prefix_space=s.get("add_prefix_space", True),
                                       trim_offsets=s.get("trim_offsets", True), use_regex=s.get("use_regex", True))
                  for s in steps if s.get("type") == "ByteLevel"]
    backend.post_processor = processors.Sequence(byte_level + [template]) if byte_level else template


def _dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]


def reward_model_from_policy(policy_dir: str | Path, seed: int | None = None, model_params=None, lora=None,
                             quant=None):
    """Load a policy checkpoint as a reward model: same backbone, a new scalar head (normal, std 0.02 as the
    config's initializer_range), pad id set so plain `transformers` pools at the EOS. Returns (model, tokenizer),
    the tokenizer adding BOS and EOS around a text as the kit does (`add_scoring_template`), so the checkpoint saved
    with it scores the kit's way in plain `transformers`.

    `model_params` (params.ModelParams) sets dtype, attention and the pad token of a real tokenizer; `quant`
    (QuantParams) loads the backbone in 4 bits and prepares it for k-bit training; `lora` (LoraParams) wraps the
    model with peft adapters, the `score` head trained in full. All None (the toy world): a plain float32 model.
    Under DeepSpeed ZeRO-3 (TrainingArguments with a stage-3 config made before this call), transformers builds
    the model partitioned and initialises the missing head with its parameters gathered (rank 0's values).
    """
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    if model_params is not None:
        set_pad_token(tokenizer, model_params.pad_token)
    check_tokenizer(tokenizer)
    add_scoring_template(tokenizer)  # the checkpoint's tokenizer then gives plain transformers the kit's ids
    kwargs = _load_kwargs(model_params, quant)
    if seed is not None:
        torch.manual_seed(seed)  # the head's initialisation is part of the reward model's seed
    # The load report would flag the policy's LM head as unexpected and the score head as missing: both are
    # what turning a causal LM into a reward model means, so it is silenced and said once, plainly, instead.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            policy_dir, num_labels=1, pad_token_id=tokenizer.pad_token_id, **kwargs
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    log.info("reward model from %s: backbone loaded, LM head left out, new scalar head initialised", policy_dir)
    return prepare_for_training(model, model_params, quant, lora, "SEQ_CLS"), tokenizer


def prepare_for_training(model, model_params=None, quant=None, lora=None, task_type: str = "SEQ_CLS"):
    """`model` made ready for training the kit's way: prepared for k-bit training when it was loaded in 4 bits
    (gradient checkpointing as `model_params` asks), then wrapped in a LoRA adapter of `task_type` (``SEQ_CLS`` for
    a reward model, ``TOKEN_CLS`` for a process reward model) whose new head `score` stays fully trainable, when
    `lora` is enabled. Returns the model (unchanged when neither applies)."""
    if quant is not None and quant.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        gc = bool(model_params is not None and model_params.gradient_checkpointing)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gc,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora is not None and lora.enabled:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(
            task_type=task_type, r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
            target_modules=list(lora.target_modules), modules_to_save=["score"]))
    return model


def _load_kwargs(model_params=None, quant=None, head: str = "score") -> dict:
    """`from_pretrained` keyword arguments for the dtype and attention of `model_params` (ModelParams) and the
    4-bit quantisation of `quant` (QuantParams), which leaves the output layer `head` in full precision; both
    None: a plain float32 model. The dtype is always passed: transformers 5 loads with dtype="auto" (the
    checkpoint's own dtype) when none is given, so a float32 request on a bf16 checkpoint would load it in bf16."""
    kwargs = {"dtype": _dtype(model_params.dtype) if model_params is not None else torch.float32}
    if model_params is not None:
        attn = resolve_attn_implementation(model_params.attn_implementation, model_params.dtype)
        if attn:
            kwargs["attn_implementation"] = attn
    if quant is not None and quant.load_in_4bit:
        kwargs["quantization_config"] = bnb_config(quant, head)
        kwargs["device_map"] = {"": torch.cuda.current_device()} if torch.cuda.is_available() else "cpu"
    return kwargs


def frozen_policy(policy_dir: str | Path, model_params=None, quant=None):
    """The policy checkpoint as a frozen causal LM (eval mode, no gradients), loaded in the same dtype,
    attention and quantisation as the reward model trained beside it (GRM's DPO reference and the source of its
    LM head). Under DeepSpeed ZeRO-3 transformers builds it partitioned, like the reward model."""
    from transformers import AutoModelForCausalLM

    # in 4 bits the LM head stays in full precision: GRM trains a copy of it and reads the reference's logits
    model = AutoModelForCausalLM.from_pretrained(policy_dir, **_load_kwargs(model_params, quant, head="lm_head"))
    return model.eval().requires_grad_(False)


def bnb_config(quant, head: str = "score"):
    """bitsandbytes 4-bit config from QuantParams; the output layer `head` (the reward model's `score`, a causal
    LM's `lm_head`) is never quantised."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant.quant_type,
                              bnb_4bit_use_double_quant=quant.double_quant,
                              bnb_4bit_compute_dtype=_dtype(quant.compute_dtype), llm_int8_skip_modules=[head])


def merge_adapter(adapter_dir: str | Path, out_dir: str | Path, base_dir: str | Path, model_params=None,
                  quant=None) -> Path:
    """Merge a saved LoRA adapter (with its trained `score` head) into its base and save a plain
    sequence-classification checkpoint in `out_dir`. Done on the CPU so it never competes with training for GPU
    memory. With 4-bit training the base is the 4-bit model dequantised, so the merged weights are the ones the
    adapter was trained against. Returns `out_dir`."""
    from peft import PeftModel

    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    kwargs = {"num_labels": 1, "pad_token_id": tokenizer.pad_token_id}
    dtype = _dtype(model_params.dtype) if model_params is not None else torch.float32
    if quant is not None and quant.load_in_4bit:
        base = AutoModelForSequenceClassification.from_pretrained(
            base_dir, quantization_config=bnb_config(quant), device_map="cpu", **kwargs)
        base = base.dequantize(dtype=dtype)
    else:
        base = AutoModelForSequenceClassification.from_pretrained(base_dir, dtype=dtype, **kwargs)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    merged.save_pretrained(out_dir)
    normal_permissions(out_dir)
    return Path(out_dir)


def load_reward_adapter(adapter_dir: str | Path, base_dir: str | Path | None = None, model_params=None, quant=None):
    """Load a base model plus a saved LoRA adapter (and its head) as the trained reward model. The base comes from
    the adapter's config unless `base_dir` is given; `quant` reloads it in 4 bits as in training.
    Returns (model, tokenizer), the model in eval mode."""
    from peft import PeftModel

    base_dir = base_dir or json.loads((Path(adapter_dir) / "adapter_config.json").read_text())["base_model_name_or_path"]
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    kwargs = {"num_labels": 1, "pad_token_id": tokenizer.pad_token_id,
              "dtype": _dtype(model_params.dtype) if model_params is not None else torch.float32}
    if quant is not None and quant.load_in_4bit:
        kwargs.update(quantization_config=bnb_config(quant),
                      device_map={"": torch.cuda.current_device()} if torch.cuda.is_available() else "cpu")
    base = AutoModelForSequenceClassification.from_pretrained(base_dir, **kwargs)
    model = PeftModel.from_pretrained(base, adapter_dir)
    model.eval()
    return model, tokenizer


def load_reward_model(path: str | Path):
    """Load a saved reward model and its tokenizer with plain `transformers`. Returns (model, tokenizer)."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    check_tokenizer(tokenizer)
    model = AutoModelForSequenceClassification.from_pretrained(path)
    model.eval()
    return model, tokenizer


def backbone_of(model):
    """The transformer body and the `score` head of a sequence-classification model (unwrapping peft if present)."""
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return getattr(model, model.base_model_prefix), model.score


def head_of(model) -> torch.nn.Module:
    """The `score` head module inside `model`, through any wrappers: DistributedDataParallel and the DeepSpeed engine
    (`.module`), peft (`get_base_model()`; the head is then peft's trained copy wrapper)."""
    m = model
    for _ in range(8):
        if hasattr(m, "get_base_model"):
            m = m.get_base_model()
        if isinstance(getattr(m, "score", None), torch.nn.Module):
            return m.score
        inner = getattr(m, "module", None)
        if not isinstance(inner, torch.nn.Module):
            break
        m = inner
    raise TypeError(f"no `score` head found in {type(model).__name__}; expected a sequence-classification model")


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) mask -> (B,) index of each row's last real token; right or left padding alike."""
    T = attention_mask.shape[-1]
    idx = torch.arange(T, device=attention_mask.device)
    return (idx * attention_mask.to(idx.dtype)).argmax(-1)


@dataclass
class RewardOutput:
    """hidden: (B, T, D) final-layer states after the final norm; rewards: (B,) scalar reward at the last non-pad
    token (the EOS in the kit's format);
    token_rewards: (B, T) the head applied at every position."""

    hidden: torch.Tensor
    rewards: torch.Tensor
    token_rewards: torch.Tensor


def reward_forward(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   position_ids: torch.Tensor | None = None) -> RewardOutput:
    """One forward pass returning final states and rewards. `position_ids` default to counts over real tokens.

    The call goes through `model`'s own forward (whatever wraps it: DDP, the DeepSpeed engine, peft), so data
    parallel gradient hooks and ZeRO-3's parameter gathering run as they are meant to; a forward hook on the `score`
    head catches its input, the final states after the norm (B, T, D), and its output, the per-token rewards.
    """
    if position_ids is None:
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    caught = {}

    def catch(module, args, output):
        caught["hidden"], caught["token_rewards"] = args[0], output

    handle = head_of(model).register_forward_hook(catch)
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
    finally:
        handle.remove()
    hidden, token_rewards = caught["hidden"], caught["token_rewards"].squeeze(-1)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    rewards = token_rewards[rows, last_token_index(attention_mask).to(hidden.device)]
    return RewardOutput(hidden, rewards, token_rewards)


@torch.no_grad()
def score(model, tokenizer, prompts: list[str], responses: list[str], batch_size: int = 128,
          desc: str = "scoring", eos: bool = True) -> torch.Tensor:
    """Rewards (N,) for (prompt, response) pairs, in the kit's format, batched. `eos` False scores BOS + prompt +
    response without the final EOS, so each reward is read at the response's last token (`data.encode`)."""
    from tqdm.auto import tqdm

    model.eval()
    out = []
    for s in tqdm(range(0, len(prompts), batch_size), desc=desc, leave=False):
        batch = zip(prompts[s:s + batch_size], responses[s:s + batch_size])
        seqs = [encode(tokenizer, p, r, eos) for p, r in batch]
        b = pad_batch(seqs, tokenizer.pad_token_id)
        dev = next(model.parameters()).device
        r = reward_forward(model, b["input_ids"].to(dev), b["attention_mask"].to(dev), b["position_ids"].to(dev))
        out.append(r.rewards.float().cpu())
    return torch.cat(out) if out else torch.zeros(0)
