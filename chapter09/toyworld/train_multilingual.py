"""Distilling the toy CLIP's text tower into a small multilingual BERT (the toy twin of clip-ViT-B-32-multilingual-v1)."""
from __future__ import annotations

import random
import string
from pathlib import Path

from .. import config
from ..training import LossLog, adamw_cosine, optimizer_step, seed_everything, train_device
from .corpus import SHORT_CAPTION_SHARE, toy_corpus
from .scenes import generate_scenes
from .tokenizers import word_tokenizer


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
    from sentence_transformers.util import batch_to_device
    from transformers import BertConfig, BertModel

    from ..clip import ClipEncoder
    from ..models import Settings

    steps = steps or 1500
    seed_everything(seed)
    teacher = ClipEncoder("clip", Settings("toy", dtype="float32"))
    with tempfile.TemporaryDirectory() as build:
        build = Path(build)
        tokenizer = word_tokenizer(toy_corpus(), extra_words=string.digits, spell_out_letters=True)
        bert = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=128, num_hidden_layers=3,
                                    num_attention_heads=4, intermediate_size=512, max_position_embeddings=64))
        bert.save_pretrained(build)
        tokenizer.save_pretrained(build)
        word = Transformer(str(build), max_seq_length=64)
    pooling = Pooling(word.get_embedding_dimension(), "mean")
    dense = Dense(word.get_embedding_dimension(), teacher.dim, activation_function=torch.nn.Identity())
    device = train_device()
    student = SentenceTransformer(modules=[word, pooling, dense], device=device)

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
            short = rng.random() < SHORT_CAPTION_SHARE
            english.append(scene.short_caption("en") if short else rng.choice(scene.captions("en")))
            pairs.append(scene.short_caption("zh") if short else rng.choice(scene.captions("zh")))
        # the teacher embeds the English sentence; the student must reproduce it from both languages
        targets = torch.from_numpy(teacher.encode_texts(english, normalize=False)).repeat(2, 1).to(device)
        features = batch_to_device(student.tokenize(english + pairs), device)
        output = student(features)["sentence_embedding"]
        log.add(optimizer_step(torch.nn.functional.mse_loss(output, targets), optimizer, schedule))
    student.eval().to("cpu")
    student.save(str(out_dir))
    return log.means


