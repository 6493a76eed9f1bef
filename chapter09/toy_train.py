"""Training the toy twins from scratch on the toy world, saved with ``save_pretrained``.

Each twin is a tiny model of the *same* transformers class as the real checkpoint
it stands in for, so the chapter's loading code cannot tell them apart.

    python -m chapter09.toyworld train clip
    python -m chapter09.toyworld train multilingual_text
"""
from __future__ import annotations

import importlib
import random
import time
from pathlib import Path

import numpy as np

from . import config
from .toyworld import Scene, generate_scenes
from .training import LossLog, adamw_cosine, clip_contrastive_loss, decay_groups, grouped_batch, optimizer_step

# role -> "module:function" that trains it; each takes (out_dir: Path, steps: int | None, seed: int).
TRAINERS = {
    "clip": "chapter09.toy_train:train_clip",
    "captioner": "chapter09.toy_train_vl:train_captioner",
    "vqa": "chapter09.toy_train_vl:train_vqa",
    "multilingual_text": "chapter09.toy_train:train_multilingual_text",
    "translator_en_zh": "chapter09.toy_train_capstone:train_translator_en_zh",
    "translator_zh_en": "chapter09.toy_train_capstone:train_translator_zh_en",
    "chinese_clip": "chapter09.toy_train_capstone:train_chinese_clip",
}

FINE_PATCH_SIZE = 8  # phase 3 of the toy CLIP: small shapes need patches smaller than themselves
TOY_IMAGE_SIZE = 64  # the toy processors resize the 128-px scenes to this, as CLIP's resize to 224


def train_role(role: str, out_dir=None, steps: int | None = None, seed: int = 0) -> Path:
    if role not in TRAINERS:
        raise SystemExit(f"no toy trainer for role {role!r}; trainable roles: {', '.join(TRAINERS)}")
    module_name, function_name = TRAINERS[role].split(":")
    trainer = getattr(importlib.import_module(module_name), function_name)
    out_dir = Path(out_dir) if out_dir else config.model_spec(role).toy_path
    started = time.time()
    trainer(out_dir, steps, seed)
    print(f"trained toy {role!r} in {time.time() - started:.0f} s -> {out_dir}")
    return out_dir


# ----------------------------------------------------------------------------- shared pieces
def toy_corpus(n_scenes: int = 4000, seed: int = 0) -> list[str]:
    """Every kind of text the toy world produces, for training tokenizers."""
    texts = []
    for split in ("train", "heldout"):
        for scene in generate_scenes(n_scenes, seed, split, unique=False):
            for lang in ("en", "zh"):
                texts += scene.captions(lang)
                texts.append(scene.short_caption(lang))
            for qa in scene.questions():
                texts += [qa["question"], qa["answer"]]
    return texts


def sample_caption(scene: Scene, rng: random.Random, short_fraction: float = 0.25, lang: str | None = None) -> str:
    """A random phrasing in a random language; sometimes only colours and shapes."""
    lang = lang or rng.choice(("en", "zh"))
    if rng.random() < short_fraction:
        return scene.short_caption(lang)
    return rng.choice(scene.captions(lang))


def render_pixels(scenes: list[Scene], image_processor, batch: int = 512):
    """Render scenes and preprocess them exactly as at inference time; float16 to halve memory."""
    import torch

    chunks = []
    for start in range(0, len(scenes), batch):
        images = [s.render() for s in scenes[start:start + batch]]
        chunks.append(image_processor(images=images, return_tensors="pt")["pixel_values"].to(torch.float16))
    return torch.cat(chunks)


def autocast(device: str = "cpu"):
    """bf16 autocast where the CPU has bf16 units (about 4x faster matmuls), else a no-op."""
    import contextlib

    import torch

    from .models import cpu_supports_bf16

    if device == "cpu" and cpu_supports_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- tiny CLIP
def build_clip_tokenizer(corpus: list[str], vocab_size: int = 600):
    """A CLIPTokenizer whose byte-level BPE vocabulary is learnt from the toy corpus.

    CLIPTokenizer always rebuilds CLIP's own pipeline (lower-casing, its regex split,
    byte-level BPE with ``</w>`` word ends), so the merges are learnt under that same
    pipeline and the saved vocab.json/merges.txt load like OpenAI's. Two choices:

    * English merges are learnt by BPE, so frequent words become single tokens.
    * Chinese gets merges from bytes to *single characters* only. CLIP's regex keeps a
      run of Chinese characters as one "word", and free BPE would learn whole phrases
      ("左上方有一个小的") as tokens; a held-out phrase such as 红色星形 would then be a
      token the model never trained on. Per-character tokens compose, as in Chinese-CLIP.
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

    def add(token: str) -> None:
        vocab.setdefault(token, len(vocab))

    byte_chars = pre_tokenizers.ByteLevel.alphabet()
    for char in sorted(byte_chars):
        add(char)
        add(char + "</w>")
    for left, right in merges:
        add(left + right)
    cjk = sorted({char for text in corpus for char in text if not char.isascii()})
    to_bytes = _byte_level_mapping()
    prefix_merges, char_merges = [], []
    for char in cjk:
        pieces = [to_bytes[b] for b in char.encode("utf-8")]
        # merge left to right: b1+b2, then (b1b2)+b3 ..., with and without the word-end mark
        for i in range(1, len(pieces)):
            left = "".join(pieces[:i])
            if i < len(pieces) - 1:
                prefix_merges.append((left, pieces[i]))
                add(left + pieces[i])
            else:
                char_merges += [(left, pieces[i]), (left, pieces[i] + "</w>")]
                add(left + pieces[i])
                add(left + pieces[i] + "</w>")
    for merge in dict.fromkeys(prefix_merges + char_merges):  # ordered, de-duplicated
        merges.append(merge)
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


def _byte_level_mapping() -> dict[int, str]:
    """GPT-2's byte -> printable character table, the one byte-level BPE uses."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {byte: chr(code) for byte, code in zip(printable, codes)}


def tiny_clip_config(vocab_size: int, bos_id: int, eos_id: int):
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=128, intermediate_size=512, num_hidden_layers=3,
                         num_attention_heads=4, max_position_embeddings=64, bos_token_id=bos_id,
                         eos_token_id=eos_id, pad_token_id=eos_id),
        vision_config=dict(image_size=TOY_IMAGE_SIZE, patch_size=16, hidden_size=128, intermediate_size=512,
                           num_hidden_layers=4, num_attention_heads=4),
        projection_dim=128,
    )


def toy_clip_processor(tokenizer):
    from transformers import CLIPImageProcessor, CLIPProcessor

    image_processor = CLIPImageProcessor(size={"shortest_edge": TOY_IMAGE_SIZE},
                                         crop_size={"height": TOY_IMAGE_SIZE, "width": TOY_IMAGE_SIZE})
    return CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


CLIP_LR = 1e-3
# Phase 4 shows the short "a red circle" captions twice as often as the other phases.
# (Repeats of one short caption in a batch need no multi-positive targets: identical texts
# embed identically, and plain InfoNCE then gives the same gradients as UniCL-style targets.)
SHORT_CAPTIONS = dict(short_fraction=0.5)
# Phase 5 batches scenes in groups drawn alike but for one object's shape; each colour has
# exactly four training-split shapes (the fifth is a held-out pair), so a group is all of them.
SHAPE_GROUP = 4


def train_clip(out_dir: Path, steps: int | None = None, seed: int = 0, n_train: int = 24000,
               batch_size: int = 128, lr: float = CLIP_LR, log_every: int = 100, hard_negative_steps: int = 1000,
               fine_patch_steps: int = 1500, short_caption_steps: int = 2000, shape_group_steps: int = 2000):
    """Train the tiny CLIP in five phases and save it.

    1. ``steps`` of plain contrastive training on random batches.
    2. ``hard_negative_steps`` more, where each scene comes with a *twin* that differs only
       in one object's shape. Random batches can be solved from colour, size and position
       alone, so phase 1 leaves shape weak; twins make shape the only way to tell two
       scenes apart (the hard-negative idea of NegCLIP, Yuksekgonul et al. 2023).
    3. ``fine_patch_steps`` with the vision tower re-cut into 8-px patches (``finer_patches``)
       and the text tower frozen. Phases 1-2 run on 16-px patches, 2x cheaper per step.
    4. ``short_caption_steps`` more like phase 3 on fresh scenes, with ``SHORT_CAPTIONS``.
    5. ``shape_group_steps`` (run twice) with *both* towers learning again, on batches of shape groups
       (``shape_variants``). The text tower learnt its shape words while the 16-px vision
       tower could hardly see shape, so "a red circle" and "a red square" embedded almost
       alike (cosine 0.986) and capped zero-shot shape near 0.75 whatever the vision side
       learnt; here both sides must tell all four shapes of a colour apart (0.74 -> 0.94).
       The multilingual twin is distilled from the text tower afterwards, so it follows.
    """
    from transformers import CLIPModel

    from .clip_utils import quiet_transformers

    quiet_transformers()
    steps = 3000 if steps is None else steps
    seed_everything(seed)
    tokenizer = build_clip_tokenizer(toy_corpus())
    processor = toy_clip_processor(tokenizer)
    model = CLIPModel(tiny_clip_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id))
    scenes = generate_scenes(n_train, config.TOY_TRAIN_SEED + seed, "train", unique=False)
    print(f"tiny CLIP: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
          f"{len(scenes)} training scenes, {steps} + {hard_negative_steps} steps of {batch_size}")
    history = _contrastive_steps(model, tokenizer, scenes, render_pixels(scenes, processor.image_processor),
                                 steps, batch_size, lr, seed, log_every)
    history += _hard_negative_phase(model, tokenizer, processor, hard_negative_steps, n_train, batch_size,
                                    lr * 0.3, seed, log_every)
    if fine_patch_steps > 0:
        model = finer_patches(model, FINE_PATCH_SIZE)
        history += _fine_patch_phase(model, tokenizer, processor, fine_patch_steps, n_train, batch_size,
                                     lr * 0.5, seed, log_every)
        history += _fine_patch_phase(model, tokenizer, processor, short_caption_steps, n_train, batch_size,
                                     lr * 0.5, seed + 1, log_every, **SHORT_CAPTIONS)
    for restart in range(2):  # twice, the second time on fresh scenes with a new warm-up (a warm restart)
        history += _shape_group_phase(model, tokenizer, processor, shape_group_steps, n_train, batch_size,
                                      lr * 0.5, seed + restart, log_every)
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return history


def finer_patches(model, patch_size: int):
    """The same CLIP with a vision tower that cuts images into smaller patches.

    A small toy object is ~11 px wide at 64 px: inside one 16-px patch its shape is
    mostly lost. Re-patching at 8 px (FlexiViT-style, Beyer et al. 2023) keeps every
    learnt weight; only the patch projection is resampled (a 2x2 average-pool, scaled so
    a flat patch projects as before) and the position table interpolated to the finer grid.
    """
    import torch
    import torch.nn.functional as F
    from transformers import CLIPConfig, CLIPModel

    old_config = model.config
    old_patch = old_config.vision_config.patch_size
    if patch_size == old_patch:
        return model
    config = CLIPConfig.from_dict(old_config.to_dict())
    config.vision_config.patch_size = patch_size
    new_model = CLIPModel(config)
    state = model.state_dict()
    embeddings = "vision_model.embeddings."
    weight = state[embeddings + "patch_embedding.weight"]
    scale = (old_patch / patch_size) ** 2
    state[embeddings + "patch_embedding.weight"] = F.interpolate(weight, size=(patch_size, patch_size),
                                                                 mode="area") * scale
    positions = state[embeddings + "position_embedding.weight"]
    old_grid = old_config.vision_config.image_size // old_patch
    new_grid = config.vision_config.image_size // patch_size
    grid = positions[1:].reshape(old_grid, old_grid, -1).permute(2, 0, 1).unsqueeze(0)
    grid = F.interpolate(grid, size=(new_grid, new_grid), mode="bicubic", align_corners=False)
    state[embeddings + "position_embedding.weight"] = torch.cat(
        [positions[:1], grid.squeeze(0).permute(1, 2, 0).reshape(new_grid * new_grid, -1)])
    state.pop(embeddings + "position_ids", None)
    missing, unexpected = new_model.load_state_dict(state, strict=False)
    assert not unexpected and all(name.endswith("position_ids") for name in missing), (missing, unexpected)
    return new_model


def _fine_patch_phase(model, tokenizer, processor, steps, n_train, batch_size, lr, seed, log_every, **step_options):
    """Train the re-patched vision tower against the frozen text tower.

    Freezing the text side keeps every text embedding where it was, so the multilingual
    text twin distilled from it stays aligned with the new image embeddings.
    """
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith(("vision_model.", "visual_projection.", "logit_scale"))
    print(f"finer patches ({model.config.vision_config.patch_size} px), text tower frozen:", end=" ")
    history = _hard_negative_phase(model, tokenizer, processor, steps, n_train, batch_size, lr, seed + 2, log_every,
                                   **step_options)
    for parameter in model.parameters():
        parameter.requires_grad = True
    return history


def continue_clip_training(out_dir: Path, phase: str, steps: int, seed: int = 0, n_train: int = 24000,
                           batch_size: int = 128, log_every: int = 100):
    """Run one phase of ``train_clip`` alone, continuing from the CLIP saved in ``out_dir``."""
    from transformers import AutoProcessor, CLIPModel

    from .clip_utils import quiet_transformers

    quiet_transformers()
    seed_everything(seed)
    model = CLIPModel.from_pretrained(out_dir)
    processor = AutoProcessor.from_pretrained(out_dir)
    args = (processor.tokenizer, processor, steps, n_train, batch_size)
    if phase == "hard_negatives":
        history = _hard_negative_phase(model, *args, CLIP_LR * 0.3, seed, log_every)
    elif phase == "finer_patches":
        model = finer_patches(model, FINE_PATCH_SIZE)
        history = _fine_patch_phase(model, *args, CLIP_LR * 0.5, seed, log_every)
    elif phase == "short_captions":
        history = _fine_patch_phase(model, *args, CLIP_LR * 0.5, seed + 1, log_every, **SHORT_CAPTIONS)
    elif phase == "shape_groups":
        history = _shape_group_phase(model, *args, CLIP_LR * 0.5, seed, log_every)
    else:
        raise ValueError("phase must be hard_negatives, finer_patches, short_captions or shape_groups, "
                         f"not {phase!r}")
    model.eval()
    model.save_pretrained(out_dir)
    return history


def shape_twin(scene: Scene, rng: random.Random) -> Scene:
    """The same scene, drawn the same way, with one object's shape changed (train-split pairs only)."""
    from .toyworld import HELDOUT_COMBOS, SHAPES, ToyObject

    objects = list(scene.objects)
    index = rng.randrange(len(objects))
    obj = objects[index]
    choices = [s for s in SHAPES if s != obj.shape and (obj.colour, s) not in HELDOUT_COMBOS]
    objects[index] = ToyObject(obj.colour, rng.choice(choices), obj.size, obj.cell)
    return Scene(tuple(objects), scene.background, scene.seed)


def _hard_negative_phase(model, tokenizer, processor, steps, n_train, batch_size, lr, seed, log_every,
                         **step_options):
    if steps <= 0:
        return []
    rng = random.Random(seed + 1)
    base = generate_scenes(n_train // 2, config.TOY_TRAIN_SEED + seed + 1, "train", unique=False)
    scenes = [scene for original in base for scene in (original, shape_twin(original, rng))]
    print(f"hard negatives: {len(base)} scenes and their shape twins, {steps} steps")
    return _contrastive_steps(model, tokenizer, scenes, render_pixels(scenes, processor.image_processor),
                              steps, batch_size, lr, seed + 1, log_every, group=2, **step_options)


def shape_variants(scene: Scene, rng: random.Random, group: int = SHAPE_GROUP) -> list[Scene]:
    """``group`` copies of the scene, drawn alike, one object taking a different training-split shape in each."""
    from .toyworld import HELDOUT_COMBOS, SHAPES, ToyObject

    objects = list(scene.objects)
    index = rng.randrange(len(objects))
    obj = objects[index]
    shapes = [s for s in SHAPES if (obj.colour, s) not in HELDOUT_COMBOS]
    rng.shuffle(shapes)
    variants = []
    for shape in shapes[:group]:
        objects[index] = ToyObject(obj.colour, shape, obj.size, obj.cell)
        variants.append(Scene(tuple(objects), scene.background, scene.seed))
    return variants


def _shape_group_phase(model, tokenizer, processor, steps, n_train, batch_size, lr, seed, log_every,
                       group: int = SHAPE_GROUP):
    """Both towers, every batch made of shape groups (phase 5 of ``train_clip``)."""
    if steps <= 0:
        return []
    rng = random.Random(seed + 5)
    base = generate_scenes(2 * n_train // group, config.TOY_TRAIN_SEED + seed + 101, "train", unique=False)
    scenes = [variant for scene in base for variant in shape_variants(scene, rng, group)]
    for parameter in model.parameters():
        parameter.requires_grad = True
    print(f"shape groups: {len(base)} scenes x {group} shapes, both towers, {steps} steps")
    return _contrastive_steps(model, tokenizer, scenes, render_pixels(scenes, processor.image_processor),
                              steps, batch_size, lr, seed, log_every, group=group, rng=rng, **SHORT_CAPTIONS)


def _contrastive_steps(model, tokenizer, scenes, pixels, steps, batch_size, lr, seed, log_every, group: int = 1,
                       short_fraction: float = 0.25, rng: random.Random | None = None):
    """AdamW + warm-up/cosine on symmetric InfoNCE; scenes ``group*i ... group*i+group-1`` share a batch."""
    optimizer, schedule = adamw_cosine(decay_groups(model, 0.1), lr, steps, betas=(0.9, 0.98))
    rng = rng or random.Random(seed)
    model.train()
    log = LossLog(steps, log_every)
    for step in range(steps):
        index = grouped_batch(rng, len(scenes), batch_size, group)
        texts = [sample_caption(scenes[i], rng, short_fraction) for i in index]
        tokens = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        with autocast():
            out = model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask,
                        pixel_values=pixels[index].float())
            loss = clip_contrastive_loss(out.image_embeds, out.text_embeds, model.logit_scale)
        log.add(optimizer_step(loss, optimizer, schedule, model.parameters()),
                f"temperature {1 / model.logit_scale.exp().item():.3f}")
    model.eval()
    return log.means


# ----------------------------------------------------------------------------- multilingual text encoder
def build_bert_tokenizer(corpus: list[str], out_dir: Path):
    """A BERT WordPiece tokenizer over the toy corpus: whole English words, single Chinese characters.

    BERT's basic tokenizer already splits Chinese into characters and lower-cases English.
    Letters and ``##letters`` are in the vocabulary so an unseen English word is spelt out
    rather than lost as [UNK].
    """
    import re
    import string

    from transformers import BertTokenizer

    words = set()
    for text in corpus:
        words.update(re.findall(r"[a-z]+|[^\sa-z]", text.lower()))
    letters = list(string.ascii_lowercase) + [f"##{c}" for c in string.ascii_lowercase + string.digits]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words | set(string.digits)) + letters
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
    return BertTokenizer(str(out_dir / "vocab.txt"), do_lower_case=True, tokenize_chinese_chars=True,
                         model_max_length=64)


def train_multilingual_text(out_dir: Path, steps: int | None = None, seed: int = 0, batch_size: int = 128,
                            lr: float = 5e-4, log_every: int = 100, n_train: int = 20000):
    """Distil the toy CLIP's text tower into a small BERT that reads English *and* Chinese.

    The recipe behind clip-ViT-B-32-multilingual-v1 (Reimers & Gurevych, 2020): the
    student maps a sentence in either language to the teacher's embedding of the
    English sentence (mean-squared error), so its vectors land in CLIP's image space
    and can search images encoded by the teacher's image tower.
    """
    import tempfile

    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sentence_transformer.modules import Dense, Pooling
    from transformers import BertConfig, BertModel

    from .clip_utils import ClipEncoder, quiet_transformers

    quiet_transformers()
    steps = steps or 1500
    seed_everything(seed)
    teacher = ClipEncoder("clip", models="toy", dtype="float32")
    with tempfile.TemporaryDirectory() as build:
        build = Path(build)
        tokenizer = build_bert_tokenizer(toy_corpus(), build)
        bert = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=128, num_hidden_layers=3,
                                    num_attention_heads=4, intermediate_size=512, max_position_embeddings=64))
        bert.save_pretrained(build)
        tokenizer.save_pretrained(build)
        word = Transformer(str(build), max_seq_length=64)
    pooling = Pooling(word.get_embedding_dimension(), "mean")
    dense = Dense(word.get_embedding_dimension(), teacher.dim, activation_function=torch.nn.Identity())
    student = SentenceTransformer(modules=[word, pooling, dense], device="cpu")

    scenes = generate_scenes(n_train, config.TOY_TRAIN_SEED + seed, "train", unique=False)
    rng = random.Random(seed)
    optimizer, schedule = adamw_cosine(student.parameters(), lr, steps, weight_decay=0.01)
    print(f"multilingual student: {sum(p.numel() for p in student.parameters()) / 1e6:.2f} M parameters, "
          f"teacher {teacher.resolved.location}, {steps} steps")
    student.train()
    log = LossLog(steps, log_every, metric="mse", digits=5)
    for step in range(steps):
        batch = rng.sample(scenes, batch_size // 2)
        english, pairs = [], []
        for scene in batch:
            short = rng.random() < 0.25
            english.append(scene.short_caption("en") if short else rng.choice(scene.captions("en")))
            pairs.append(scene.short_caption("zh") if short else rng.choice(scene.captions("zh")))
        # the teacher embeds the English sentence; the student must reproduce it from both languages
        targets = torch.from_numpy(teacher.encode_texts(english, normalize=False)).repeat(2, 1)
        features = student.tokenize(english + pairs)
        output = student(features)["sentence_embedding"]
        log.add(optimizer_step(torch.nn.functional.mse_loss(output, targets), optimizer, schedule))
    student.eval()
    student.save(str(out_dir))
    return log.means
