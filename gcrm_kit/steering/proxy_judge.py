"""The `rm_proxy` judge: real data without a paid judge, PROXIES read off one reward model (its final reward, and
which rated prototype a response's EOS state is nearer), registered under that name when the package loads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .baselines import read_final_states
from .judges import register_judge
from .prototypes import build_prototypes
from .setup import SteeringSetup


class RewardModelProxyJudge:
    """Real data without a paid judge: PROXIES read off one reward model, not ratings of helpfulness or complexity.

    For every (prompt, response), in the kit's format (prompt + response + EOS) through the reward model
    `p.judge_reward_model` (empty: the first of `p.reward_models`; its first seed):

    - `proxy_reward`: its final reward (the HH-RLHF preference it was trained on, not a HelpSteer rating);
    - `proxy_<attribute>`, for every attribute with both a high (`value: true`) and a low (`value: false`)
      prototype in `p.prototypes`: 1 when the EOS state is nearer (by cosine) the high-rated prototypes than the
      low-rated ones (mean cosine over each side), else 0, so its mean over responses is a share;
    - `proxy_<attribute>_margin`: that difference of mean cosines itself.

    The prototypes are this reward model's, built from the same rated responses as the decoder's (not saved). When
    the judge's reward model also guides a decoder, its proxy reads the same kind of states the decoder steered
    towards: a gain on it is necessary for steering to have worked, not evidence that a person (or GPT-4, as in the
    paper) would rate the answers higher. The model is loaded once and kept on the CPU between calls when decoding
    runs on an accelerator."""

    note = ("PROXIES, not ratings: proxy_reward is the judge reward model's final reward; proxy_<attribute> is 1 "
            "when the response's EOS state is nearer (cosine) that reward model's high-rated prototype than its "
            "low-rated one. Not the paper's GPT-4 judgement; register a real judge with steering.register_judge.")

    def __init__(self, setup: SteeringSetup):
        p = setup.params
        if p is None or setup.labels is None:
            raise ValueError("judge rm_proxy: needs a real-data setup (rated labelled responses; see prepare)")
        self.setup, self.p = setup, p
        self.rm_name = setup.reward_model_name(p.judge_reward_model or p.reward_models[0])
        self.rm_seed = setup.seeds[0]
        specs = {}
        for spec in p.prototypes:
            specs.setdefault(spec.attribute, {True: [], False: []})[bool(spec.value)].append(spec.name)
        self.sides = {a: sides for a, sides in specs.items() if sides[True] and sides[False]}
        self.attributes = ["proxy_reward"] + [k for a in self.sides for k in (f"proxy_{a}", f"proxy_{a}_margin")]
        self._model = None
        self._tokenizer = None
        self._protos: dict[str, torch.Tensor] = {}

    def _load(self):
        if self._model is None:
            model, tok = self.setup.load_reward_model(self.rm_name, self.rm_seed)
            protos = build_prototypes(self.p, self.setup, model, tok, self.rm_name, self.rm_seed,
                                      labels=self.setup.labels)
            self._protos = {k: v.vector.float().cpu() for k, v in protos.items()}
            self._model, self._tokenizer = model, tok
        if self._model.device != self.setup.device:
            self._model.to(self.setup.device)
        return self._model, self._tokenizer

    def _park(self) -> None:
        if self._model is not None and self.setup.device.type != "cpu":
            self._model.to("cpu")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    @torch.no_grad()
    def __call__(self, prompts: list[str], responses: list[str]) -> list[dict[str, float]]:
        model, tok = self._load()
        try:
            rewards, finals = read_final_states(model, tok, prompts, responses,
                                                batch_size=self.p.sequence_batch_size or 256)
        finally:
            self._park()
        h = F.normalize(finals, dim=-1)
        out = [{"proxy_reward": float(r)} for r in rewards]
        for a, sides in self.sides.items():
            cos = {side: torch.stack([h @ F.normalize(self._protos[n], dim=0) for n in names]).mean(0)
                   for side, names in sides.items()}
            margin = (cos[True] - cos[False]).tolist()
            for o, m in zip(out, margin):
                o[f"proxy_{a}"] = float(m > 0)
                o[f"proxy_{a}_margin"] = float(m)
        return out


register_judge("rm_proxy", RewardModelProxyJudge)
