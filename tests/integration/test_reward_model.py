"""Reward models as plain transformers checkpoints: same rewards in the kit and in transformers, whatever the
padding; a few real training steps of both objectives; resume after an interruption."""

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, TrainerCallback

from gcrm_kit.data import PreferencePair, encode, pad_batch
from gcrm_kit.models import load_reward_model, reward_forward, reward_model_from_policy, score
from gcrm_kit.params import RMTrainingParams, RewardModelSpec, from_dict
from gcrm_kit.qvalues import Prototype, build_prototype, q_values

PROMPTS = ["1+2?", "3*4-1?", "7 plus 3 times 2?"]
RESPONSES = ["1+2=3;A:3", "3*4=2;2-1=1;A:1", "7+3=0;0*2=0;A:0"]


def test_rewards_equal_in_kit_and_plain_transformers_any_padding(tiny_policy_dir, tmp_path):
    model, tok = reward_model_from_policy(tiny_policy_dir, seed=0)
    with torch.no_grad():
        model.score.weight.normal_()  # a head that is not near zero, so differences would show
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    reloaded, tok2 = load_reward_model(tmp_path)
    seqs = [encode(tok, p, r) for p, r in zip(PROMPTS, RESPONSES)]
    with torch.no_grad():
        # reference: plain transformers, one unpadded sequence at a time
        ref = torch.stack([plain(input_ids=torch.tensor([s.input_ids])).logits[0, 0] for s in seqs])
        # plain transformers on a right-padded batch pools at the last non-pad token (pad != EOS)
        b = pad_batch(seqs, tok.pad_token_id, "right")
        hf_batch = plain(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, 0]
        assert torch.allclose(hf_batch, ref, atol=1e-5)
        for side in ("right", "left"):
            b = pad_batch(seqs, tok.pad_token_id, side)
            out = reward_forward(reloaded, b["input_ids"], b["attention_mask"], b["position_ids"])
            assert torch.allclose(out.rewards, ref, atol=1e-5), side
    assert torch.allclose(score(reloaded, tok2, PROMPTS, RESPONSES, batch_size=2), ref, atol=1e-5)


def test_prototype_save_load_and_q_values(tiny_policy_dir, tmp_path):
    model, tok = reward_model_from_policy(tiny_policy_dir, seed=0)
    proto = build_prototype(model, tok, PROMPTS, RESPONSES, "correct", provenance={"data": "test"})
    proto.save(tmp_path)
    back = Prototype.load(tmp_path, "correct")
    assert torch.allclose(back.vector, proto.vector) and back.provenance["count"] == 3
    assert back.provenance["pooling"] == "last" and back.provenance["data"] == "test"
    with pytest.raises(FileNotFoundError, match="available: \\['correct'\\]"):
        Prototype.load(tmp_path, "helpful")
    h = torch.randn(2, 5, proto.vector.numel())
    q = q_values(h, proto.vector)
    assert q.shape == (2, 5) and bool((q.abs() <= 1 + 1e-6).all())
    assert q_values(proto.vector[None, None], proto.vector).item() == pytest.approx(1.0, abs=1e-5)


def _tiny_world(tiny_policy_dir, n=24):
    from gcrm_kit.rm_training import RMData

    pairs = [PreferencePair(f"{i % 10}+1?", f"{i % 10}+1={(i + 1) % 10};A:{(i + 1) % 10}",
                            f"{i % 10}+1={(i + 2) % 10};A:{(i + 2) % 10}") for i in range(n)]
    return RMData(tiny_policy_dir, {}, pairs, pairs[:4], {})


def _params(**training):
    return from_dict(RMTrainingParams, {
        "contrastive": {"n_positive": 4, "n_negative": 4},
        "training": {"batch_size": 4, "epochs": 1, "logging_steps": 1, "save_steps": 2, "learning_rate": 1e-3, **training}})


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_training_steps_run_and_save_a_standard_checkpoint(tiny_policy_dir, tmp_path, weight):
    from gcrm_kit.rm_training import train_one_reward_model

    world = _tiny_world(tiny_policy_dir)
    out = train_one_reward_model(_params(), world, RewardModelSpec("m", weight), 0, tmp_path / "rm")
    log = json.loads((out / "training_log.json").read_text())
    steps = [h for h in log if "bt_loss" in h]
    assert len(steps) == 6  # 24 pairs / 4 per step, one epoch
    assert all(("contrastive_loss" in h) == (weight > 0) for h in steps)
    if weight > 0:
        assert all(h["contrastive_loss"] >= 0.62 for h in steps)  # the floor of the unscaled cosine
    assert (out / "DONE").is_file() and not (out / "checkpoints").exists()
    assert (out / "prototypes" / "correct.pt").is_file()
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_labels == 1 and model.config.pad_token_id is not None
    from gcrm_kit.rm_runs import policy_dir_of

    spec = json.loads((out / "rm_spec.json").read_text())
    assert (out / spec["policy_dir_relative"]).resolve() == Path(tiny_policy_dir).resolve() == policy_dir_of(out)


class _StopAfter(TrainerCallback):
    def __init__(self, n):
        self.n = n

    def on_step_end(self, args, state, control, **kw):
        if state.global_step == self.n:
            raise KeyboardInterrupt("simulated kill")


def test_interrupted_training_resumes_from_checkpoint(tiny_policy_dir, tmp_path, monkeypatch):
    from gcrm_kit import rm_training
    from gcrm_kit.training import RewardTrainer

    world = _tiny_world(tiny_policy_dir)
    original_init = RewardTrainer.__init__

    def init_with_kill(self, *a, **kw):
        original_init(self, *a, **kw)
        self.add_callback(_StopAfter(5))  # killed during step 5, after the save at step 4

    monkeypatch.setattr(RewardTrainer, "__init__", init_with_kill)
    with pytest.raises(KeyboardInterrupt):
        rm_training.train_one_reward_model(_params(), world, RewardModelSpec("m", 0.5), 0, tmp_path / "rm")
    assert (tmp_path / "rm" / "checkpoints" / "checkpoint-4").is_dir()
    monkeypatch.setattr(RewardTrainer, "__init__", original_init)
    out = rm_training.train_one_reward_model(_params(), world, RewardModelSpec("m", 0.5), 0, tmp_path / "rm")
    log = json.loads((out / "training_log.json").read_text())
    steps = [h["step"] for h in log if "bt_loss" in h]
    assert steps[0] == 1 and steps[-1] == 6 and 5 in steps  # steps 1-4 restored from the checkpoint, 5-6 new


@pytest.mark.parametrize("reg", ["sft", "dpo", "dpo_noref"])
def test_grm_training_keeps_a_plain_checkpoint(tiny_policy_dir, tmp_path, reg):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from gcrm_kit.rm_training import train_one_reward_model

    world = _tiny_world(tiny_policy_dir)
    spec = RewardModelSpec("grm", contrastive_weight=0.5, grm_weight=0.1, grm_regulariser=reg)
    out = train_one_reward_model(_params(), world, spec, 0, tmp_path / "rm")
    log = json.loads((out / "training_log.json").read_text())
    steps = [h for h in log if "bt_loss" in h]
    assert steps and all("grm_loss" in h and "contrastive_loss" in h for h in steps)
    # the saved reward model is a plain sequence-classification checkpoint: no LM head inside it
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if "lm_head" in k]
    head = load_file(str(out / "grm_lm_head.safetensors"))["weight"]
    policy_head = AutoModelForCausalLM.from_pretrained(tiny_policy_dir).lm_head.weight
    assert head.shape == policy_head.shape and not torch.allclose(head, policy_head)  # it was trained
    AutoModelForSequenceClassification.from_pretrained(out)


def test_grm_loss_value_matches_hand_computation_on_first_step(tiny_policy_dir):
    """The logged GRM-SFT loss of the first step equals the policy's own per-token NLL on the chosen responses,
    computed here independently, since the attached head is the policy's and the backbone is untouched yet."""
    from transformers import AutoModelForCausalLM

    from gcrm_kit.data import PairCollator, encode_pairs
    from gcrm_kit.training import RewardTrainer, attach_lm_head
    from transformers import TrainingArguments

    world = _tiny_world(tiny_policy_dir, n=4)
    model, tok = reward_model_from_policy(tiny_policy_dir, seed=0)
    policy = AutoModelForCausalLM.from_pretrained(tiny_policy_dir).eval()
    attach_lm_head(model, policy)
    enc, _ = encode_pairs(tok, world.train_pairs, 64)
    batch = PairCollator(tok.pad_token_id)(enc)
    spec = RewardModelSpec("g", grm_weight=0.5, grm_regulariser="sft")
    trainer = RewardTrainer(model=model, args=TrainingArguments(output_dir="/tmp/unused", report_to="none",
                                                                use_cpu=True),
                            contrastive=_params().contrastive, spec=spec)
    model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(model, batch)
        B = 4
        logits = policy(input_ids=batch["input_ids"][:B], attention_mask=batch["attention_mask"][:B]).logits
        lp = torch.log_softmax(logits[:, :-1], -1).gather(2, batch["input_ids"][:B, 1:, None]).squeeze(-1)
        m = batch["response_mask"][:B, 1:].float()
        nll = (-(lp * m).sum(-1) / m.sum(-1)).mean()
        from gcrm_kit.models import reward_forward
        r = reward_forward(model, batch["input_ids"], batch["attention_mask"], batch["position_ids"]).rewards
        bt = -torch.nn.functional.logsigmoid(r[:B] - r[B:]).mean()
    assert loss.item() == pytest.approx((0.5 * bt + 0.5 * nll).item(), rel=1e-4)


def test_saved_reward_model_files_have_normal_permissions(tiny_policy_dir, tmp_path):
    """Trainer writes weights and checkpoints 0600; the kit leaves every file of a reward model as open() would."""
    import stat

    from gcrm_kit.io import _UMASK

    from gcrm_kit import rm_training

    world = _tiny_world(tiny_policy_dir)
    out = rm_training.train_one_reward_model(_params(), world, RewardModelSpec("m", 0.5), 0, tmp_path / "rm")
    modes = {f.relative_to(out): stat.S_IMODE(f.stat().st_mode) for f in out.rglob("*") if f.is_file()}
    assert modes and all(m == 0o666 & ~_UMASK for m in modes.values()), modes
