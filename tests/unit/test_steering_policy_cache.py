"""The policy's key/value cache in step-level decoding: sampling steps from the cache of the prefixes gives the same
steps and log-probabilities as re-encoding them, and the beam search picks the same beams with the same scores with
and without it. Tiny random models only (seconds)."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from gcrm_kit import steering as S
from gcrm_kit.models import reward_model_from_policy
from gcrm_kit.params import BeamParams
from gcrm_kit.qvalues import Prototype
from gcrm_kit.steering.steps import PrefixCache


@pytest.fixture(scope="module")
def policy(tiny_policy_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_policy_dir).eval(), AutoTokenizer.from_pretrained(tiny_policy_dir)


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_steps_from_the_cache_equal_steps_from_reencoded_prefixes(policy):
    pol, tok = policy
    prefixes = [[tok.bos_token_id] + _ids(tok, q) for q in ("1+2?", "3*4-1+5?", "7 plus 3 times 2?")]
    cache = None
    # three rounds; between rounds some candidates survive (uneven step lengths), some prefixes are dropped
    for counts, keep in (([2, 3, 2], [0, 3, 4, 6]), ([1, 2, 1, 2], [1, 2, 5]), ([2, 2, 2], [0, 5])):
        torch.manual_seed(11)
        ref = S.sample_steps(pol, tok, prefixes, counts, 1.0, 6)
        torch.manual_seed(11)
        got, step_cache = S.sample_steps(pol, tok, prefixes, counts, 1.0, 6, prefix_cache=cache, return_cache=True)
        assert [s.ids for s in got] == [s.ids for s in ref]
        assert max(abs(a.logprob - b.logprob) for a, b in zip(got, ref)) < 1e-5
        rows = [p for p, k in zip(prefixes, counts) for _ in range(k)]
        keep = [c for c in keep if got[c].ids]
        prefixes = [rows[c] + got[c].ids for c in keep]
        cache = step_cache.take(keep, [len(got[c].ids) for c in keep])
        assert isinstance(cache, PrefixCache) and cache.lengths == [len(p) for p in prefixes]
    assert cache.layers[0][0].shape[2] == max(len(p) for p in prefixes) - 1


def test_a_cache_of_other_prefixes_is_refused(policy):
    pol, tok = policy
    prefixes = [[tok.bos_token_id] + _ids(tok, q) for q in ("1+2?", "3*4-1+5?")]
    _, step_cache = S.sample_steps(pol, tok, prefixes, 1, 1.0, 4, return_cache=True)
    cache = step_cache.take([0], [2])
    with pytest.raises(ValueError, match="prefix_cache does not hold these prefixes"):
        S.sample_steps(pol, tok, prefixes, 1, 1.0, 4, prefix_cache=cache)


@pytest.mark.parametrize("guided", [False, True])
def test_guided_decode_same_beams_and_scores_with_and_without_the_policy_cache(policy, tiny_policy_dir, guided):
    pol, tok = policy
    scorer = goal = None
    if guided:
        model, _ = reward_model_from_policy(tiny_policy_dir, seed=0)
        proto = Prototype("g", torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(0)))
        goal = S.GoalTerm.from_prototypes("g", {"g": proto}, {"g": 1.0})
        scorer = S.ContextScorer(model.eval())
    prompts = ["1+2?", "3*4-1?", "7 plus 3 times 2?", "5 mod 3?"]
    settings = BeamParams(beam_size=3, n_candidates=2, max_steps=5, max_step_tokens=6, confidence_ratio=1.0)
    a = S.guided_decode(pol, tok, prompts, settings, scorer, goal, seed=5, policy_cache=True)
    b = S.guided_decode(pol, tok, prompts, settings, scorer, goal, seed=5, policy_cache=False)
    assert [x.response for x in a] == [y.response for y in b]
    assert [x.n_steps for x in a] == [y.n_steps for y in b] and max(y.n_steps for y in b) >= 3
    assert max(abs(x.score - y.score) for x, y in zip(a, b)) < 1e-5
    assert [(x.policy_tokens, x.policy_tokens_processed, x.rm_tokens) for x in a] == \
        [(y.policy_tokens, y.policy_tokens_processed, y.rm_tokens) for y in b]


def test_only_policies_with_a_plain_dynamic_cache_use_the_prefix_cache():
    from transformers import LlamaConfig, MistralConfig

    from gcrm_kit.steering.steps import prefix_cache_supported

    assert prefix_cache_supported(LlamaConfig(num_hidden_layers=2))
    assert not prefix_cache_supported(MistralConfig(num_hidden_layers=2, sliding_window=16))
