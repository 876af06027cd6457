"""A rough per-device memory estimate for a reward-model training run, printed before it starts.

Counts (bytes per parameter): weights (4 in float32, 2 in bf16, about 0.5 in 4 bits), gradients and AdamW states of
the trained parameters (two float32 moments, plus a float32 master copy in bf16 mixed precision), divided over the
processes as ZeRO partitions them (stage 2: gradients and optimizer states; stage 3: weights too), and
activations after Korthikanti et al. (2022), "Reducing Activation Recomputation in Large Transformer Models":
about 34 * s * b * h bytes per layer in 16 bits without recomputation (attention scores are not kept with
flash-attention), about 2 * s * b * h per layer plus one layer's worth with gradient checkpointing.
With GRM the language-model head (vocab x hidden) rides on the reward model (trained in a full fine-tune,
frozen under LoRA), its logits add 2 * b * s * vocab float32 values, and the DPO variant's frozen reference
adds a second copy of the policy's weights (partitioned like the reward model's under ZeRO-3).
DeepSpeed offload is read from the config's `zero_optimization` sections: `offload_optimizer` (device cpu or nvme)
moves the optimizer states (float32 moments and master copy) off the device; `offload_param` (ZeRO-3 only) moves
the weights too, leaving about one layer's full weights on the device at a time (the layer being computed). What
is offloaded is reported as host memory, not counted in the device total.
It is an estimate to catch an impossible configuration early, not a measurement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .launch import deepspeed_config_path

GIB = 1024 ** 3


@dataclass
class MemoryEstimate:
    n_params: int
    n_trainable: int
    weights: float
    gradients: float
    optimizer: float
    activations: float
    offloaded: float = 0.0  # bytes moved to CPU (or NVMe) memory per process by DeepSpeed offload

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations

    def describe(self, mode: str) -> str:
        g = lambda b: f"{b / GIB:.2f} GiB"  # noqa: E731
        return (f"[gcrm] estimated memory per device ({mode}): {self.n_params / 1e9:.3f}B parameters, "
                f"{self.n_trainable / 1e6:.2f}M trained; weights {g(self.weights)}, gradients {g(self.gradients)}, "
                f"optimizer {g(self.optimizer)}, activations ~{g(self.activations)} -> about {g(self.total)}"
                + (f"; offloaded to host memory {g(self.offloaded)}" if self.offloaded else ""))


def count_parameters(backbone_dir: str | Path) -> tuple[int, dict]:
    """Parameters of the sequence-classification model built from `backbone_dir`'s config (no weights loaded:
    the model is built on the meta device). Returns (count, config as dict)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    cfg = AutoConfig.from_pretrained(backbone_dir, num_labels=1)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(cfg)
    return sum(p.numel() for p in model.parameters()), cfg.to_dict()


def lora_parameters(cfg: dict, lora) -> int:
    """Adapter parameters for a Llama-like config: r * (in + out) per targeted projection per layer."""
    h = cfg.get("hidden_size", 0)
    inter = cfg.get("intermediate_size", 4 * h)
    heads = cfg.get("num_attention_heads", 1)
    kv = cfg.get("num_key_value_heads", heads) or heads
    head_dim = cfg.get("head_dim") or h // max(heads, 1)
    shapes = {"q_proj": (h, heads * head_dim), "k_proj": (h, kv * head_dim), "v_proj": (h, kv * head_dim),
              "o_proj": (heads * head_dim, h), "gate_proj": (h, inter), "up_proj": (h, inter),
              "down_proj": (inter, h)}
    per_layer = sum(lora.r * (i + o) for name, (i, o) in shapes.items() if name in lora.target_modules)
    return per_layer * cfg.get("num_hidden_layers", 0) + h  # + the score head


def estimate_memory(p, backbone_dir: str | Path, spec=None) -> tuple[MemoryEstimate, str]:
    """Estimate per-device memory for training a reward model with params `p` (RMTrainingParams-like) from
    `backbone_dir`, with the regularisers of `spec` (RewardModelSpec; None: plain BT). Returns (estimate, a
    one-line description of the mode)."""
    n, cfg = count_parameters(backbone_dir)
    bf16 = p.model.dtype == "bfloat16"
    zero = _zero_config(p.distributed.deepspeed)
    stage = int(zero.get("stage", 0))
    offload_opt = _offloaded(zero, "offload_optimizer") and stage >= 1
    offload_param = _offloaded(zero, "offload_param") and stage >= 3
    world = p.distributed.n_processes
    vocab_h = cfg.get("vocab_size", 0) * cfg.get("hidden_size", 0)
    grm = spec is not None and spec.grm_weight > 0
    if p.quant.load_in_4bit:
        w_bytes = 0.5 * n + 2 * vocab_h  # embeddings stay 16-bit
    else:
        w_bytes = (2 if bf16 else 4) * n
    trained = lora_parameters(cfg, p.lora) if p.lora.enabled else n
    if grm:
        head_bytes = (2 if bf16 or p.quant.load_in_4bit else 4) * vocab_h
        if spec.grm_regulariser == "dpo":
            w_bytes = 2 * w_bytes + head_bytes  # the reference: the same backbone plus its LM head
        w_bytes += head_bytes
        n += vocab_h
        if not p.lora.enabled:
            trained += vocab_h
    grad_bytes = (2 if bf16 and not p.lora.enabled else 4) * trained
    opt_bytes = (12 if bf16 and not p.lora.enabled else 8) * trained
    h, layers = cfg.get("hidden_size", 0), cfg.get("num_hidden_layers", 0)
    layer_bytes = w_bytes / max(layers, 1)  # one layer's full weights, gathered for its forward and backward
    if stage >= 3:
        w_bytes /= world
    if stage >= 2:
        grad_bytes /= world
    if stage >= 1:
        opt_bytes /= world
    offloaded = 0.0
    if offload_opt:  # optimizer states live in host memory; the optimizer steps there
        offloaded += opt_bytes
        opt_bytes = 0.0
    if offload_param:  # partitions live in host memory; a layer's full weights come to the device when it runs
        offloaded += w_bytes
        w_bytes = layer_bytes
    sbh = 2 * p.training.batch_size * p.training.max_length * h  # chosen and rejected: 2 sequences per pair
    width = 1.0 if (bf16 or p.quant.load_in_4bit) else 2.0  # float32 activations take twice the 16-bit bytes
    if p.model.gradient_checkpointing:
        act = width * (2 * sbh * layers + 34 * sbh)
    else:
        act = width * 34 * sbh * layers
    if grm:
        act += 4 * 2 * p.training.batch_size * p.training.max_length * cfg.get("vocab_size", 0)
    mode = ", ".join(filter(None, [
        "4-bit" if p.quant.load_in_4bit else ("bf16" if bf16 else "float32"),
        f"LoRA r={p.lora.r}" if p.lora.enabled else "full fine-tune",
        f"ZeRO-{stage} over {world} processes" if stage else (f"{world} processes" if world > 1 else "1 process"),
        "offload: " + " and ".join(x for x, on in (("optimizer", offload_opt), ("parameters", offload_param)) if on)
        if offload_opt or offload_param else "",
        "gradient checkpointing" if p.model.gradient_checkpointing else "",
        f"GRM-{spec.grm_regulariser}" + (" with a frozen reference" if spec.grm_regulariser == "dpo" else "")
        if grm else "",
        f"{p.training.batch_size} pairs x {p.training.max_length} tokens per device"]))
    return MemoryEstimate(n, trained, w_bytes, grad_bytes, opt_bytes, act, offloaded), mode


def _zero_config(name: str) -> dict:
    """The `zero_optimization` section of the DeepSpeed config `name` (params/deepspeed/<name>.json or a JSON path);
    {} without DeepSpeed."""
    if not name:
        return {}

    cfg = json.loads(deepspeed_config_path(name).read_text())
    return cfg.get("zero_optimization", {}) or {}


def _zero_stage(name: str) -> int:
    return int(_zero_config(name).get("stage", 0))


def _offloaded(zero: dict, section: str) -> bool:
    """Whether the `zero_optimization` section `section` (offload_optimizer, offload_param) moves data off the
    device: its device is cpu or nvme (DeepSpeed's default, and "none", keep it there)."""
    sub = zero.get(section) or {}
    return isinstance(sub, dict) and str(sub.get("device", "none")).lower() in ("cpu", "nvme")
