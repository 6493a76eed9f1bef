"""The one word-tokenizer builder reproduces the vocabularies of the committed twins that use it."""
import json
import string

import pytest

from chapter09 import config
from chapter09.toyworld.corpus import toy_corpus
from chapter09.toyworld.tokenizers import blip_word_tokenizer, word_tokenizer

pytestmark = pytest.mark.unit


def committed_vocab(role: str) -> dict[str, int]:
    folder = config.model_spec(role).toy_path
    return json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]


@pytest.mark.parametrize("role, build", [
    ("multilingual_text", lambda: word_tokenizer(toy_corpus(), extra_words=string.digits, spell_out_letters=True)),
    ("chinese_clip", lambda: word_tokenizer(toy_corpus(1500))),
    ("captioner", blip_word_tokenizer),
    ("vqa", blip_word_tokenizer),
])
def test_builder_reproduces_the_committed_vocabulary(role, build):
    assert build().get_vocab() == committed_vocab(role)


def test_chinese_is_one_character_per_token_and_unseen_pairs_compose():
    tokenizer = word_tokenizer(toy_corpus(300))
    assert tokenizer.tokenize("红色星形") == ["红", "色", "星", "形"]  # a pair the training split never shows
    assert tokenizer.unk_token not in tokenizer.tokenize("a red star at the top left")
