"""Toy twins of the chapter's vision-language models, trained from scratch on the toy world.

    python -m chapter09.toyworld train captioner     # BlipForConditionalGeneration, English + Chinese
    python -m chapter09.toyworld train vqa           # BlipForQuestionAnswering, English + Chinese
    python -m chapter09.toyworld train blip2         # Blip2ForConditionalGeneration with a tiny OPT

Each is the real checkpoint's class at a tiny size, saved with its processor, so
the lessons load it exactly as they load the hub model. Language is chosen by a
prompt token (``<en>`` / ``<zh>``) the captioner continues, as BLIP continues
"a picture of".
"""
from __future__ import annotations

import random
import time
from pathlib import Path

from . import config
from .toy_train import cosine_schedule, render_pixels, seed_everything, toy_corpus
from .toyworld import Scene, generate_scenes

TOY_VL_IMAGE_SIZE = 96
LANG_TOKENS = {"en": "<en>", "zh": "<zh>"}
IMAGE_TOKEN = "<image>"


# ----------------------------------------------------------------------------- tokenizer
def build_word_tokenizer(corpus: list[str]):
    """A BertTokenizer (BLIP's tokenizer class) whose vocabulary is every toy word and Chinese character.

    BERT's pre-tokeniser already splits Chinese into single characters, so held-out
    phrases such as 红色星形 are made of characters the model has seen.
    """
    from tokenizers import normalizers, pre_tokenizers
    from transformers import BertTokenizer

    normalise = normalizers.BertNormalizer(lowercase=True, handle_chinese_chars=True)
    split = pre_tokenizers.BertPreTokenizer()
    words = set()
    for text in corpus:
        words.update(piece for piece, _span in split.pre_tokenize_str(normalise.normalize_str(text)))
    words.update("0123456789.,:;?!'\"()-，。：；？！、")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *LANG_TOKENS.values(), IMAGE_TOKEN]
    vocab = {token: i for i, token in enumerate(specials + sorted(words - set(specials)))}
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=96)
    tokenizer.add_special_tokens({"additional_special_tokens": [*LANG_TOKENS.values(), IMAGE_TOKEN]})
    return tokenizer


def blip_image_processor():
    from transformers import BlipImageProcessor

    return BlipImageProcessor(size={"height": TOY_VL_IMAGE_SIZE, "width": TOY_VL_IMAGE_SIZE})


def tiny_blip_config(tokenizer, layers: int = 3, hidden: int = 128):
    from transformers import BlipConfig

    return BlipConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=hidden, encoder_hidden_size=hidden,
                         intermediate_size=4 * hidden, num_hidden_layers=layers, num_attention_heads=4,
                         max_position_embeddings=96, bos_token_id=tokenizer.cls_token_id,
                         sep_token_id=tokenizer.sep_token_id, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.sep_token_id),
        vision_config=dict(image_size=TOY_VL_IMAGE_SIZE, patch_size=16, hidden_size=hidden,
                           intermediate_size=4 * hidden, num_hidden_layers=layers, num_attention_heads=4),
        projection_dim=hidden,
    )


def toy_caption(scene: Scene, lang: str) -> str:
    """The one phrasing the toy captioner learns: every object's size, colour, shape and place."""
    return scene.captions(lang)[0]


def _optimizer(model, lr: float, steps: int):
    import torch

    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2 and "embed" not in n]
    rest = [p for n, p in model.named_parameters() if p.requires_grad and not (p.ndim >= 2 and "embed" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}],
                                  lr=lr, betas=(0.9, 0.98))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine_schedule(s, steps, max(1, steps // 20)))
    return optimizer, schedule


def _train_loop(model, steps: int, make_batch, lr: float, log_every: int = 100, name: str = "model"):
    """AdamW + cosine schedule + bf16 autocast; ``make_batch(step)`` returns the model's keyword inputs."""
    import torch

    # One thread: on a small shared CPU, two threads of tiny matmuls spin against each other
    # (measured 8 s per step with 2 threads under load versus 0.5 s with 1).
    torch.set_num_threads(1)
    optimizer, schedule = _optimizer(model, lr, steps)
    model.train()
    started, running, history = time.time(), 0.0, []
    for step in range(steps):
        loss = model(**make_batch(step)).loss  # fp32: tiny models gain nothing from bf16 autocast
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        running += loss.item()
        history.append(loss.item())
        if (step + 1) % log_every == 0:
            print(f"[{name}] step {step + 1:>5}/{steps}  loss {running / log_every:.3f}  "
                  f"{time.time() - started:.0f} s", flush=True)
            running = 0.0
    model.eval()
    return history


def _save(model, processor, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)


# ----------------------------------------------------------------------------- captioner
def train_captioner(out_dir: Path, steps: int | None = None, seed: int = 0, n_train: int = 12000,
                    batch_size: int = 64, lr: float = 2e-3):
    """BlipForConditionalGeneration that captions in English after ``<en>`` and in Chinese after ``<zh>``."""
    import torch
    from transformers import BlipForConditionalGeneration, BlipProcessor

    from .clip_utils import quiet_transformers

    quiet_transformers()
    steps = steps or 1400
    seed_everything(seed)
    tokenizer = build_word_tokenizer(toy_corpus(2000))
    processor = BlipProcessor(image_processor=blip_image_processor(), tokenizer=tokenizer)
    model = BlipForConditionalGeneration(tiny_blip_config(tokenizer))
    scenes = generate_scenes(n_train, config.TOY_TRAIN_SEED + seed, "train", unique=False)
    pixels = render_pixels(scenes, processor.image_processor)
    print(f"toy captioner: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
          f"{len(scenes)} scenes, {steps} steps of {batch_size}", flush=True)
    rng = random.Random(seed)

    def batch(_step):
        index = rng.sample(range(len(scenes)), batch_size)
        langs = [rng.choice(("en", "zh")) for _ in index]
        texts = [f"{LANG_TOKENS[lang]} {toy_caption(scenes[i], lang)}" for i, lang in zip(index, langs)]
        tokens = tokenizer(texts, padding=True, return_tensors="pt")
        labels = tokens.input_ids.masked_fill(tokens.attention_mask == 0, -100)
        labels[:, :2] = -100  # [CLS] and the language token are given, not predicted
        return dict(pixel_values=pixels[index].float(), input_ids=tokens.input_ids,
                    attention_mask=tokens.attention_mask, labels=labels)

    history = _train_loop(model, steps, batch, lr, name="captioner")
    _save(model, processor, out_dir)
    return history


# ----------------------------------------------------------------------------- VQA
def toy_questions(scene: Scene) -> list[dict]:
    return scene.questions()


def train_vqa(out_dir: Path, steps: int | None = None, seed: int = 0, n_train: int = 12000,
              batch_size: int = 64, lr: float = 2e-3):
    """BlipForQuestionAnswering answering the toy world's count/colour/shape/position questions, en + zh."""
    import torch
    from transformers import BlipForQuestionAnswering, BlipProcessor

    from .clip_utils import quiet_transformers

    quiet_transformers()
    steps = steps or 1400
    seed_everything(seed)
    tokenizer = build_word_tokenizer(toy_corpus(2000))
    processor = BlipProcessor(image_processor=blip_image_processor(), tokenizer=tokenizer)
    model = BlipForQuestionAnswering(tiny_blip_config(tokenizer))
    scenes = generate_scenes(n_train, config.TOY_TRAIN_SEED + 1 + seed, "train", unique=False)
    pixels = render_pixels(scenes, processor.image_processor)
    pairs = [(i, qa) for i, scene in enumerate(scenes) for qa in scene.questions()]
    print(f"toy VQA: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
          f"{len(pairs)} question/answer pairs on {len(scenes)} scenes, {steps} steps of {batch_size}", flush=True)
    rng = random.Random(seed)

    def batch(_step):
        chosen = rng.sample(pairs, batch_size)
        questions = tokenizer([qa["question"] for _i, qa in chosen], padding=True, return_tensors="pt")
        answers = tokenizer([qa["answer"] for _i, qa in chosen], padding=True, return_tensors="pt")
        labels = answers.input_ids.masked_fill(answers.attention_mask == 0, -100)
        return dict(pixel_values=pixels[[i for i, _qa in chosen]].float(), input_ids=questions.input_ids,
                    attention_mask=questions.attention_mask, decoder_input_ids=answers.input_ids,
                    decoder_attention_mask=answers.attention_mask, labels=labels)

    history = _train_loop(model, steps, batch, lr, name="vqa")
    _save(model, processor, out_dir)
    return history
