"""Tokenizers saved with the kit's checkpoints: the toy policy's adds BOS (a causal LM's convention), a reward
model's adds BOS and EOS exactly as `data.encode` places them, for the toy character tokenizer and for a
byte-level subword tokenizer like Llama 3's, and the kit's own ids never change with it."""

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from gcrm_kit.data import encode
from gcrm_kit.models import add_scoring_template
from gcrm_kit.toyworld import build_tokenizer

PAIRS = [("1+2?", "1+2=3;A:3"), ("7 plus 3 times 2?", "7+3=0;0*2=0;A:0")]


def _reloaded(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    return AutoTokenizer.from_pretrained(tmp_path)


def test_toy_policy_tokenizer_adds_bos_only_after_a_reload(tmp_path):
    tok = _reloaded(build_tokenizer(), tmp_path)
    assert tok("1+2?")["input_ids"] == [tok.bos_token_id] + tok("1+2?", add_special_tokens=False)["input_ids"]


def test_reward_tokenizer_gives_the_kits_ids_on_text_and_on_pairs(tmp_path):
    plain = build_tokenizer()
    tok = build_tokenizer()
    add_scoring_template(tok)
    tok = _reloaded(tok, tmp_path)
    for p, r in PAIRS:
        kit = encode(plain, p, r).input_ids
        assert encode(tok, p, r).input_ids == kit  # the kit's own ids are unchanged by the template
        assert tok(p + r)["input_ids"] == tok(p, r)["input_ids"] == kit
        assert kit[0] == tok.bos_token_id and kit[-1] == tok.eos_token_id
    batch = tok([p + r for p, r in PAIRS], padding=True)["input_ids"]
    assert batch[0][:len(encode(tok, *PAIRS[0]).input_ids)] == encode(tok, *PAIRS[0]).input_ids


def _byte_level_tokenizer(bos: str | None) -> PreTrainedTokenizerFast:
    """A small byte-level BPE tokenizer set up as Llama 3's is: a byte-level offset step then a template adding BOS
    (no BOS at all with `bos` None, as Qwen's)."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {t: i for i, t in enumerate(["<|begin_of_text|>", "<|end_of_text|>", "<pad>"] + sorted(alphabet) + ["ĠA"])}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[("Ġ", "A")], unk_token=None))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    steps = [processors.ByteLevel(trim_offsets=False)]
    if bos:
        steps.append(processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                   special_tokens=[(bos, 0)]))
    core.post_processor = processors.Sequence(steps)
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token=bos, eos_token="<|end_of_text|>",
                                   pad_token="<pad>")


@pytest.mark.parametrize("bos", ["<|begin_of_text|>", None])
def test_byte_level_reward_tokenizer_gives_the_kits_ids(tmp_path, bos):
    tok = _byte_level_tokenizer(bos)
    before = [encode(tok, p, r).input_ids for p, r in PAIRS]
    add_scoring_template(tok)
    tok = _reloaded(tok, tmp_path)
    for (p, r), kit in zip(PAIRS, before):
        assert encode(tok, p, r).input_ids == kit
        assert tok(p, r)["input_ids"] == kit  # the pair form: prompt and response tokenised apart, as the kit does
        assert (kit[0] == tok.bos_token_id) == (bos is not None) and kit[-1] == tok.eos_token_id
    # concatenated text can merge across the junction in a subword tokenizer: " A" is one token, " " + "A" two
    p, r = "Q: ", "A"
    assert tok(p + r)["input_ids"] != tok(p, r)["input_ids"] == encode(tok, p, r).input_ids
    # the byte-level offset step survives beside the template
    assert "ByteLevel" in tok.backend_tokenizer.to_str() and "TemplateProcessing" in tok.backend_tokenizer.to_str()
