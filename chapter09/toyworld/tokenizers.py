"""Tokenizers learnt on the toy corpus, saved in the real checkpoints' formats.

* ``build_clip_tokenizer``: byte-level BPE for ``CLIPTokenizer``, learnt on English only (the toy CLIP);
* ``word_tokenizer``: a WordPiece vocabulary of whole toy words and single Chinese characters
  for ``BertTokenizer`` (the multilingual student, Chinese-CLIP's text tower, BLIP);
* ``build_marian_tokenizer``: a shared English+Chinese sentencepiece model for ``MarianTokenizer``.
"""
from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path

from ..language import LANG_TOKENS
from .corpus import toy_corpus

BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
IMAGE_TOKEN = "<image>"
# Punctuation and digits BLIP's vocabulary keeps even where the toy corpus never writes them.
BLIP_EXTRA_WORDS = "0123456789.,:;?!'\"()-，。：；？！、"


def corpus_words(corpus: list[str]) -> set[str]:
    """The words BERT's own normaliser and pre-tokeniser cut ``corpus`` into (Chinese: one character each)."""
    from tokenizers import normalizers, pre_tokenizers

    normalise = normalizers.BertNormalizer(lowercase=True, handle_chinese_chars=True)
    split = pre_tokenizers.BertPreTokenizer()
    words: set[str] = set()
    for text in corpus:
        words.update(piece for piece, _span in split.pre_tokenize_str(normalise.normalize_str(text)))
    return words


def word_tokenizer(corpus: list[str], extra_specials: tuple[str, ...] = (), extra_words: str = "",
                   spell_out_letters: bool = False, max_length: int = 64):
    """A ``BertTokenizer`` whose vocabulary is every toy word and Chinese character.

    BERT's pre-tokeniser splits Chinese into single characters, so held-out phrases such as
    红色星形 are made of characters the model has seen. ``spell_out_letters`` adds letters and
    ``##letters`` so an unseen English word is spelt out rather than lost as [UNK];
    ``extra_specials`` (e.g. BLIP's language tokens) are never split.
    """
    from transformers import BertTokenizer

    specials = [*BERT_SPECIALS, *extra_specials]
    letters = (list(string.ascii_lowercase) + [f"##{c}" for c in string.ascii_lowercase + string.digits]
               if spell_out_letters else [])
    words = corpus_words(corpus) | set(extra_words)
    tokens = list(dict.fromkeys(specials + sorted(words - set(specials)) + letters))
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(tokens)}, do_lower_case=True,
                              model_max_length=max_length)
    if extra_specials:
        tokenizer.add_special_tokens({"additional_special_tokens": list(extra_specials)})
    return tokenizer


def blip_word_tokenizer(corpus: list[str] | None = None):
    """BLIP's tokenizer class over the toy words (or ``corpus``), with the language tokens and ``<image>``
    kept whole (the toy captioner, VQA twin and the tiny VLM's toy LM share it)."""
    return word_tokenizer(corpus or toy_corpus(2000), extra_specials=(*LANG_TOKENS.values(), IMAGE_TOKEN),
                          extra_words=BLIP_EXTRA_WORDS, max_length=96)


def build_clip_tokenizer(corpus: list[str], vocab_size: int = 600):
    """A CLIPTokenizer whose byte-level BPE vocabulary is learnt from the *English* texts of the toy corpus.

    CLIPTokenizer always rebuilds CLIP's own pipeline (lower-casing, its regex split,
    byte-level BPE with ``</w>`` word ends), so the merges are learnt under that same
    pipeline and the saved vocab.json/merges.txt load like OpenAI's. OpenAI's CLIP learnt
    from English image-text pairs, and so does the toy one: the merges come from English
    words only, and a Chinese text falls apart into UTF-8 bytes (three tokens a character)
    whose embeddings training never shaped, as Chinese does in the real CLIP's text tower.
    Every byte, with and without the word-end mark, is in the vocabulary, so no input is
    ever unknown.
    """
    from collections import Counter

    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    template = CLIPTokenizer()  # empty vocabulary, CLIP's normaliser and pre-tokeniser
    normalizer, pre_tokenizer = template.backend_tokenizer.normalizer, template.backend_tokenizer.pre_tokenizer
    words = Counter(word for text in corpus if text.isascii()
                    for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    merges = learn_bpe_merges(words, vocab_size - len(vocab) - len(pre_tokenizers.ByteLevel.alphabet()))
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(char + "</w>", len(vocab))
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=64)


def learn_bpe_merges(words: dict[str, int], max_merges: int, suffix: str = "</w>") -> list[tuple[str, str]]:
    """Byte-pair merges over word counts, the most frequent pair first, ties broken by the pair itself.

    The ``tokenizers`` trainer breaks ties by hash-map order, so the same corpus gave a
    different vocabulary on every run (huggingface/tokenizers#1794) and a different toy CLIP.
    The toy corpus has a few hundred distinct words, so plain Python is instant here.
    """
    from collections import Counter

    spellings = {word: list(word[:-1]) + [word[-1] + suffix] for word in words}
    merges: list[tuple[str, str]] = []
    while len(merges) < max_merges:
        pairs = Counter()
        for word, symbols in spellings.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += words[word]
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        for word, symbols in spellings.items():
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            spellings[word] = merged
    return merges


def build_marian_tokenizer(out_dir: Path, vocab_size: int = 200):
    """A shared English+Chinese sentencepiece model saved the way opus-mt ships it.

    Two choices keep held-out colour x shape pairs translatable: every Chinese character is
    a piece of its own (``user_defined_symbols``), so 红色星形 is 红/色/星/形 and never a
    phrase-piece the model never trained on; and normalisation is off, so full-width
    punctuation (，：。) survives instead of becoming ASCII.
    """
    import sentencepiece as spm
    from transformers import MarianTokenizer

    corpus = toy_corpus(1500)
    chinese_characters = sorted({char for text in corpus for char in text if not char.isascii()})
    with tempfile.TemporaryDirectory() as tmp:
        text_file = Path(tmp) / "corpus.txt"
        text_file.write_text("\n".join(corpus), encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(text_file), model_prefix=str(Path(tmp) / "spm"), vocab_size=vocab_size,
            hard_vocab_limit=False, character_coverage=1.0, model_type="bpe", bos_id=-1, eos_id=-1, unk_id=0,
            pad_id=-1, normalization_rule_name="identity", user_defined_symbols=chinese_characters, minloglevel=2)
        processor = spm.SentencePieceProcessor(model_file=str(Path(tmp) / "spm.model"))
        # opus-mt's vocab.json: </s>=0, <unk>=1, the pieces, <pad> last
        vocab = {"</s>": 0, "<unk>": 1}
        for i in range(processor.get_piece_size()):
            vocab.setdefault(processor.id_to_piece(i), len(vocab))
        vocab["<pad>"] = len(vocab)
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        tokenizer = MarianTokenizer(str(Path(tmp) / "spm.model"), str(Path(tmp) / "spm.model"),
                                    str(Path(tmp) / "vocab.json"), model_max_length=128)
        tokenizer.save_pretrained(out_dir)
    return MarianTokenizer.from_pretrained(out_dir)


