"""The Q-value trace figure marks a sample's first wrong step at its TOKEN: the verifier gives a character offset,
which only equals the token index for a one-character-per-token tokenizer."""

from types import SimpleNamespace

import numpy as np
import pytest
from tokenizers import Regex, Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from gcrm_kit.data import GenerationRecord
from gcrm_kit.filtering import make_sample_set, trace_figure
from gcrm_kit.params import FilteringParams, from_dict


@pytest.fixture(scope="module")
def step_tokenizer():
    """One token per solution step ("1+4=5;"), so characters != tokens."""
    core = Tokenizer(models.WordLevel(vocab={"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("[^;]+;?"), behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")


def test_first_error_char_maps_to_the_token_index(step_tokenizer):
    wrong = "1+4=5;5*2=1;1+1=2;A:2"  # the second step (character 6, token 1) is the first wrong one
    recs = [GenerationRecord("1+4*2+1?", "1+4=5;5*2=0;0+1=1;A:1", True, "1", {"first_error_char": None}),
            GenerationRecord("1+4*2+1?", wrong, False, "2", {"first_error_char": 6}),
            GenerationRecord("1+4*2+1?", "1+4=5;A:5", False, "5")]
    ss = make_sample_set("test", recs, step_tokenizer)
    assert ss.length.tolist() == [5, 5, 3]  # steps + answer + EOS
    assert ss.first_error_token.tolist() == [-1, 1, -1]

    q = np.full((3, 5), np.nan)
    for i, n in enumerate(ss.length):
        q[i, :n] = np.linspace(0.5, -0.5, n) * (1 if ss.correct[i] else -1)
    p = from_dict(FilteringParams, {"skip_tokens": 1})
    scores = {("goal", 0): {"test": SimpleNamespace(q=q)}}
    offline = SimpleNamespace(chosen={("q_goal", 0): {"threshold": 0.0}})
    fig = trace_figure(p, {"test": ss}, scores, offline)
    marks = [t for t in fig.data if t.mode == "markers"]
    assert len(marks) == 1 and list(marks[0].x) == [1] and list(marks[0].y) == [q[1, 1]]
