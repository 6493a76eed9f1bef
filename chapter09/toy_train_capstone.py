"""Toy twins for the capstone: opus-mt translators (MarianMT) and Chinese-CLIP.

    python -m chapter09.toyworld train translator_en_zh
    python -m chapter09.toyworld train translator_zh_en
    python -m chapter09.toyworld train chinese_clip

Same classes as the real checkpoints (MarianMTModel + MarianTokenizer with
sentencepiece models; ChineseCLIPModel + a BertTokenizer), so the capstone loads
them with the code it uses for Helsinki-NLP/opus-mt-* and OFA-Sys/chinese-clip-*.
"""
from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

from . import config
from .toy_train import autocast, render_pixels, seed_everything, toy_corpus
from .toyworld import Scene, generate_scenes
from .training import LossLog, adamw_cosine, clip_contrastive_loss, grouped_batch, optimizer_step


# ----------------------------------------------------------------------------- translators
def parallel_pair(scene: Scene, rng: random.Random) -> tuple[str, str]:
    """An (English, Chinese) pair saying the same thing: the n-th phrasings match, as do the short forms."""
    if rng.random() < 0.25:
        return scene.short_caption("en"), scene.short_caption("zh")
    i = rng.randrange(4)
    return scene.captions("en")[i], scene.captions("zh")[i]


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


def train_translator(direction: str, out_dir: Path, steps: int | None = None, seed: int = 0,
                     batch_size: int = 64, lr: float = 2e-3):
    from transformers import MarianConfig, MarianMTModel

    from .clip_utils import quiet_transformers

    quiet_transformers()
    steps = steps or 1200
    seed_everything(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_marian_tokenizer(out_dir)
    pad = tokenizer.pad_token_id
    model = MarianMTModel(MarianConfig(
        vocab_size=len(tokenizer), d_model=128, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=256, decoder_ffn_dim=256, max_position_embeddings=128,
        pad_token_id=pad, eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=pad,
        forced_eos_token_id=tokenizer.eos_token_id, share_encoder_decoder_embeddings=True, scale_embedding=True,
        dropout=0.0))
    scenes = generate_scenes(20000, config.TOY_TRAIN_SEED + seed, "train", unique=False)
    rng = random.Random(seed)
    optimizer, schedule = adamw_cosine(model.parameters(), lr, steps, weight_decay=0.01)
    print(f"toy MarianMT {direction}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
          f"vocabulary {len(tokenizer)}, {steps} steps of {batch_size}")
    model.train()
    log = LossLog(steps, 100)
    for step in range(steps):
        pairs = [parallel_pair(rng.choice(scenes), rng) for _ in range(batch_size)]
        source, target = zip(*pairs) if direction == "en_zh" else zip(*[(zh, en) for en, zh in pairs])
        batch = tokenizer(list(source), text_target=list(target), padding=True, return_tensors="pt")
        batch["labels"][batch["labels"] == pad] = -100
        log.add(optimizer_step(model(**batch).loss, optimizer, schedule, model.parameters()))
    model.eval()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    print(f"held-out exact-match: {translation_accuracy(direction, out_dir):.3f}")
    return model, tokenizer


def translation_accuracy(direction: str, location, n: int = 200) -> float:
    """Exact-match rate on held-out scenes (including colour x shape pairs never seen in training)."""
    from .models import ResolvedModel
    from .translation import Translator

    role = "translator_" + direction
    resolved = ResolvedModel(role, config.model_spec(role), str(location), "toy")
    translator = Translator(direction, resolved=resolved)
    rng = random.Random(7)
    pairs = [parallel_pair(scene, rng) for scene in generate_scenes(n, config.TOY_HELDOUT_SEED, "heldout")]
    source, target = zip(*pairs) if direction == "en_zh" else zip(*[(zh, en) for en, zh in pairs])
    out = translator.translate(list(source))
    return sum(a == b for a, b in zip(out, target)) / len(target)


def train_translator_en_zh(out_dir: Path, steps: int | None = None, seed: int = 0):
    return train_translator("en_zh", out_dir, steps, seed)


def train_translator_zh_en(out_dir: Path, steps: int | None = None, seed: int = 0):
    return train_translator("zh_en", out_dir, steps, seed)


# ----------------------------------------------------------------------------- Chinese-CLIP
def build_bert_tokenizer(out_dir: Path):
    """BertTokenizer over the toy world's words and every Chinese character (as Chinese-CLIP's vocab)."""
    from transformers import BertTokenizer

    words = set()
    for text in toy_corpus(1500):
        for piece in text.lower().replace(",", " , ").replace(":", " : ").replace("?", " ? ").split():
            for char in piece:
                if not char.isascii():
                    words.add(char)
            if piece.isascii():
                words.add(piece)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return BertTokenizer(str(out_dir / "vocab.txt"), model_max_length=64)


def chinese_clip_from_toy_clip(tokenizer, clip_dir: Path | None = None):
    """A ChineseCLIPModel whose image tower is a copy of the toy CLIP's, as Chinese-CLIP starts from OpenAI CLIP.

    Chinese-CLIP (Yang et al. 2022) initialises its ViT from CLIP and first trains the
    Chinese text tower against the *locked* image tower (LiT, Zhai et al. 2022); the toy
    twin does the same, so its image side is already good and only BERT has to learn.
    """
    from transformers import ChineseCLIPConfig, ChineseCLIPModel, CLIPModel

    clip = CLIPModel.from_pretrained(clip_dir or config.model_spec("clip").toy_path)
    vision = {k: v for k, v in clip.config.vision_config.to_dict().items()
              if k not in ("model_type", "transformers_version", "dtype", "architectures")}
    model = ChineseCLIPModel(ChineseCLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=512, num_hidden_layers=3,
                         num_attention_heads=4, max_position_embeddings=64, pad_token_id=0),
        vision_config=vision, projection_dim=clip.config.projection_dim))
    image_side = {k: v for k, v in clip.state_dict().items() if k.startswith(("vision_model.", "visual_projection."))}
    missing, unexpected = model.load_state_dict(image_side, strict=False)
    assert not unexpected and not [k for k in missing if k.startswith(("vision_model.", "visual_projection."))
                                   and not k.endswith("position_ids")], (missing, unexpected)
    return model, clip.config.vision_config.image_size


def train_chinese_clip(out_dir: Path, steps: int | None = None, seed: int = 0, n_train: int = 16000,
                       batch_size: int = 128, lr: float = 1e-3, log_every: int = 100):
    """Locked-image text training (Chinese-CLIP's stage 1) on Chinese captions, shape twins in every batch.

    The image tower is frozen, so every training image is encoded once, up front; a step
    then costs one BERT forward/backward. Scenes 2i and 2i+1 differ in one object's shape
    only (``shape_twin``), so colour and position alone never separate a batch.
    """
    import torch
    import torch.nn.functional as F
    from transformers import ChineseCLIPProcessor
    from transformers.models.chinese_clip import ChineseCLIPImageProcessorPil

    from .clip_utils import feature_tensor, quiet_transformers
    from .toy_train import sample_caption, shape_twin

    quiet_transformers()
    steps = steps or 1200
    seed_everything(seed)
    tokenizer = build_bert_tokenizer(out_dir)
    model, side = chinese_clip_from_toy_clip(tokenizer)
    image_processor = ChineseCLIPImageProcessorPil(size={"height": side, "width": side},
                                                   crop_size={"height": side, "width": side})
    processor = ChineseCLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    rng = random.Random(seed)
    base = generate_scenes(n_train // 2, config.TOY_TRAIN_SEED + seed, "train", unique=False)
    scenes = [scene for original in base for scene in (original, shape_twin(original, rng))]
    pixels = render_pixels(scenes, image_processor)
    model.eval()
    with torch.inference_mode():
        image_vectors = torch.cat([F.normalize(feature_tensor(model.get_image_features(
            pixel_values=pixels[i:i + 512].float())).float(), dim=-1) for i in range(0, len(scenes), 512)])
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith(("text_model.", "text_projection", "logit_scale"))
    trainable = [p for p in model.parameters() if p.requires_grad]
    print(f"toy Chinese-CLIP: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters "
          f"({sum(p.numel() for p in trainable) / 1e6:.2f} M trained; image tower copied from the toy CLIP and "
          f"locked), {len(scenes)} scenes, {steps} steps of {batch_size} Chinese captions")
    optimizer, schedule = adamw_cosine(trainable, lr, steps, weight_decay=0.1, betas=(0.9, 0.98))
    model.text_model.train()
    log = LossLog(steps, log_every)
    for step in range(steps):
        index = grouped_batch(rng, len(scenes), batch_size, group=2)  # each scene beside its shape twin
        texts = [sample_caption(scenes[i], rng, lang="zh") for i in index]
        tokens = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        with autocast():
            text = feature_tensor(model.get_text_features(**tokens))
            loss = clip_contrastive_loss(image_vectors[index], text, model.logit_scale)
        log.add(optimizer_step(loss, optimizer, schedule, trainable))
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad = True
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    print(f"held-out text->image R@5 (Chinese, 500 images): {chinese_clip_recall(out_dir)['R@5']:.3f}")
    return log.means


def chinese_clip_recall(location, n: int = 500, seed: int = config.TOY_HELDOUT_SEED + 3) -> dict:
    """Text->image Recall@1/5/10 of a Chinese-CLIP on ``n`` held-out scenes, one Chinese caption each."""
    from .clip_utils import ClipEncoder, recall_at_k
    from .models import ResolvedModel

    resolved = ResolvedModel("chinese_clip", config.model_spec("chinese_clip"), str(location), "toy")
    encoder = ClipEncoder("chinese_clip", resolved=resolved, dtype="float32")
    scenes = generate_scenes(n, seed, "heldout")
    rng = random.Random(seed)
    images = encoder.encode_images([scene.render() for scene in scenes])
    texts = encoder.encode_texts([rng.choice(scene.captions("zh")) for scene in scenes])
    return recall_at_k(texts @ images.T, [{i} for i in range(n)], (1, 5, 10))
