"""Per-sample sampling noise: sampling in which a sample's tokens depend only on (seed, sample id).

`generation.sample_responses` draws from one random stream shared by the whole batch, so a sample depends on which
other samples sit in its batch. Pruning changes the batch while it runs; to compare a pruned run with an unpruned
one on the SAME samples, each sample's randomness must belong to the sample. The Gumbel-max trick gives that:
argmax(logits / T + G) with G iid Gumbel(0, 1) is an exact draw from softmax(logits / T), and G can be a pure
function of (seed, sample id, step, token), computed by a counter-based hash. Greedy decoding plus this processor
is then plain multinomial sampling whose result depends on nothing but the sample's own id.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

_M32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, m: int) -> torch.Tensor:
    """(x * m) mod 2**32 for int64 x in [0, 2**32), without overflowing int64 (m is split in 16-bit halves)."""
    lo, hi = m & 0xFFFF, m >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _M32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (Wellons' "lowbias32") on int64 tensors holding values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def hashed_uniform(seed: int, uids: torch.Tensor, step: int | torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Uniforms in (0, 1), shape (B, V), that depend only on (seed, uid of each row, step, token id); `step` is one
    int or a (B,) long tensor of each row's own step.

    uids: (B,) integer sample ids in [0, 2**32). Returns float64 on the uids' device."""
    dev = uids.device
    h = _mix32(torch.full_like(uids, seed & _M32, dtype=torch.long) ^ 0x5BD1E995)
    h = _mix32(h ^ (uids.long() & _M32))
    h = _mix32(h ^ (step & _M32))
    v = _mix32((torch.arange(vocab_size, device=dev, dtype=torch.long) + 0x9E3779B9) & _M32)
    x = _mix32(h[:, None] ^ v[None, :])
    return (x.double() + 0.5) / 2.0 ** 32


class PerSampleGumbel(LogitsProcessor):
    """Makes greedy `generate` sample from softmax(logits / temperature) with noise owned by each sample.

    Call `set_rows(uids, prompt_len)` before each `generate` call: `uids` (B,) names the sample in each row and
    `prompt_len` is the padded prompt width, so the response step is ``input_ids.shape[1] - prompt_len``.
    """

    def __init__(self, seed: int, temperature: float):
        if temperature <= 0:
            raise ValueError("PerSampleGumbel needs temperature > 0 (use plain greedy decoding for 0)")
        self.seed, self.temperature = int(seed), float(temperature)
        self.uids: torch.Tensor | None = None
        self.prompt_len = 0

    def set_rows(self, uids: torch.Tensor, prompt_len: int) -> None:
        self.uids, self.prompt_len = uids, int(prompt_len)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return self.noisy(scores, self.uids, input_ids.shape[1] - self.prompt_len)

    def noisy(self, scores: torch.Tensor, uids: torch.Tensor, step: int | torch.Tensor) -> torch.Tensor:
        """scores (B, V) of response token `step` of the samples `uids` (B,) -> scores / temperature + their Gumbel
        noise, whose argmax is the sample (what a decoding loop without `generate` calls). `step` may be a (B,)
        long tensor, each row's own token index (rows that started at different times)."""
        u = hashed_uniform(self.seed, uids.to(scores.device), step, scores.shape[-1])
        gumbel = -torch.log(-torch.log(u))
        return scores / self.temperature + gumbel.to(scores.dtype)
