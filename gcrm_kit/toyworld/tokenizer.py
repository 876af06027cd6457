"""A character-level tokenizer for the toy world, built with `tokenizers` and saved as a standard HF tokenizer.

Character tokens make positions exact: the verifier's character offset of a first error is a token offset.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
# digits, operators, the solution's punctuation, the marks, and the letters of the verbal wording
ALPHABET = "0123456789+-*%=;:?A!YN " + "".join(sorted(set("plusminustimesmod")))


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Return the toy world's tokenizer: one token per character; `tokenizer(text)` adds BOS in front and leaves
    EOS to the caller, as a causal LM's tokenizer does (`tokenizer(prompt)` is what the policy continues). The kit
    builds its own ids (`data.encode`, always with ``add_special_tokens=False``); a reward model's copy of this
    tokenizer also adds the EOS (`models.add_scoring_template`).

    Padding side is right; the pad token is its own id (never EOS), so the reward read at the last non-pad token
    is the EOS state whatever the padding side.
    """
    specials = [PAD, BOS, EOS, UNK]
    vocab = {tok: i for i, tok in enumerate(specials + list(dict.fromkeys(ALPHABET)))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        padding_side="right",
        add_bos_token=True,
    )
    return tok
