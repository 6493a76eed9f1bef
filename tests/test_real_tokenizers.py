"""Golden checks: the ids the chapter feeds the real CLIP and Chinese-CLIP equal their own projects' tokenizers.

References, run as their projects ship them (loaded by file path, see ``real_artifacts``):
open_clip's ``tokenizer.tokenize`` (OpenAI's BPE, 77 tokens) and cn_clip's ``clip.utils.tokenize``
(Chinese-CLIP's BERT vocabulary, 52 tokens). The chapter's side is ``ClipEncoder.tokenize`` on the
checkpoints ``real_clip_dir`` / ``real_chinese_clip_dir`` that load exactly as the hub ids do.
"""
from __future__ import annotations

import pytest
import real_artifacts as ra
import torch

pytestmark = [pytest.mark.skipif(ra.missing_reason() is not None, reason=str(ra.missing_reason())),
              pytest.mark.filterwarnings("ignore::UserWarning")]

# The Chinese-CLIP project's own README examples, queries a learner types, mixed-language text,
# emoji, typography OpenAI's cleaning rewrites (curly quotes, HTML entities, full-width forms,
# ligatures, control characters) and over-long text.
CORPUS = [
    "a photo of a cat", "A Photo Of A CAT!!", "a photo of a dog swimming in a pool",
    "a girl in a red dress standing in the park", "a black cat wearing glasses", "it's the dog's ball, isn't it?",
    "一只狗在游泳池里游泳", "一个穿红衣服的女孩站在公园里", "戴眼镜的黑猫", "杰尼龟", "皮卡丘", "一张猫的照片。",
    "狗，在泳池里。", "红色的圆形和蓝色的正方形：左边、右边？",
    "a red circle 和一个蓝色的方块", "红色 circle", "COVID-19 2024年的照片", "iPhone 15 拍的日落",
    "🐶 dog in a pool 🏊‍♂️", "cat 😺😺", "猫咪🐱在睡觉💤", "naïve café résumé", "Ünïcödé straße İstanbul",
    "“quoted” ‘text’", "Tom &amp; Jerry", "fish &lt;3 chips", "ＡＢＣ full-width", "１２３只猫", "ﬁne ligature",
    "tab\there\nnew line", "   padded   ", "zero\u200bwidth", "\x00control\x07", "日本語のテキスト", "한국어 텍스트",
    "Привет мир", "https://example.com/a_b?c=d", "3.14159", "I'M HERE", "",
    # over-long: past 77 BPE tokens, past 52 BERT tokens, one 150-letter "word", a long URL
    "a photo of " + "a very big red and blue striped " * 12 + "cat",
    "一只" + "非常非常大的红色和蓝色条纹的" * 8 + "猫", "x" * 150, "hello" * 40,
    "https://example.com/" + "abcdefghij" * 16,
]


def open_clip_ids(texts: list[str]) -> list[list[int]]:
    """open_clip's tokenize, cut after <|endoftext|> (it pads with 0, transformers with the EOT id)."""
    rows = ra.open_clip_tokenizer().tokenize(texts, context_length=ra.CLIP_CONTEXT).tolist()
    return [row[:row.index(49407) + 1] for row in rows]


def chapter_ids(encoder, texts: list[str]) -> list[list[int]]:
    tokens = encoder.tokenize(texts)
    return [ids[:int(mask.sum())] for ids, mask in zip(tokens["input_ids"].tolist(), tokens["attention_mask"])]


def test_the_converted_bpe_is_openai_clip_vocabulary():
    vocab, merges = ra.clip_vocab_and_merges()
    assert len(vocab) == 49408 and len(merges) == 48894
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    assert ra.open_clip_tokenizer().SimpleTokenizer().encoder == {
        {"<|startoftext|>": "<start_of_text>", "<|endoftext|>": "<end_of_text>"}.get(k, k): v for k, v in vocab.items()}


def test_a_photo_of_a_cat_has_the_real_ids(real_clip):
    assert real_clip.tokenize(["a photo of a cat"])["input_ids"][0].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert open_clip_ids(["a photo of a cat"]) == [[49406, 320, 1125, 539, 320, 2368, 49407]]


def test_clip_ids_equal_open_clip(real_clip):
    assert real_clip.max_text_tokens == ra.CLIP_CONTEXT == 77
    ours, theirs = chapter_ids(real_clip, CORPUS), open_clip_ids(CORPUS)
    differ = [(text, a, b) for text, a, b in zip(CORPUS, ours, theirs) if a != b]
    assert not differ, differ[:3]
    # one batch, padded to its longest row and never past 77
    assert real_clip.tokenize(CORPUS)["input_ids"].shape == (len(CORPUS), 77)


def test_clip_truncates_to_77_ending_with_endoftext(real_clip):
    long = CORPUS[-5]
    assert len(ra.open_clip_tokenizer()._tokenizer.encode(long)) + 2 > 77
    ids = chapter_ids(real_clip, [long])[0]
    assert len(ids) == 77 and ids[0] == 49406 and ids[-1] == 49407 and ids == open_clip_ids([long])[0]
    assert real_clip.encode_texts([long, "x " * 500]).shape == (2, 512)  # truncated, not crashed on


def test_chinese_clip_ids_equal_cn_clip(real_chinese_clip):
    """Whole tensors equal: both pad with [PAD] = 0 up to 52."""
    assert real_chinese_clip.max_text_tokens == ra.CHINESE_CLIP_CONTEXT == 52
    theirs = ra.cn_clip_tokenize()(CORPUS, context_length=52)
    ours = real_chinese_clip.tokenize(CORPUS)["input_ids"]
    ours = torch.nn.functional.pad(ours, (0, 52 - ours.shape[1]))
    differ = [(text, a[:12], b[:12]) for text, a, b in zip(CORPUS, ours.tolist(), theirs.tolist()) if a != b]
    assert not differ, differ[:3]
    assert theirs[CORPUS.index("一只狗在游泳池里游泳")][:12].tolist() == [
        101, 671, 1372, 4318, 1762, 3952, 3807, 3737, 7027, 3952, 3807, 102]


def test_chinese_clip_truncates_to_52_ending_with_sep(real_chinese_clip):
    long = CORPUS[-4]
    assert len(ra.cn_clip_bert_tokenizer().tokenize(long)) + 2 > 52
    ids = chapter_ids(real_chinese_clip, [long])[0]
    assert len(ids) == 52 and ids[0] == 101 and ids[-1] == 102
    assert real_chinese_clip.encode_texts([long, "猫" * 600]).shape == (2, 512)  # 600 > BERT's 512 positions


def test_chinese_clip_keeps_cn_clip_long_word_rule(real_chinese_clip):
    """cn_clip splits words of up to 200 characters into word pieces (Google BERT's rule);
    transformers' WordPiece defaults to 100 and would turn a 150-letter word into one [UNK]."""
    ids = chapter_ids(real_chinese_clip, ["x" * 150])[0]
    assert 100 not in ids and len(ids) == 52
    assert chapter_ids(real_chinese_clip, ["y" * 201])[0] == [101, 100, 102]  # past 200: [UNK], as cn_clip
