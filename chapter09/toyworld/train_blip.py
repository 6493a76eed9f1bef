"""Toy twins of the chapter's vision-language models, trained from scratch on the toy world.

    python -m chapter09.toyworld train captioner     # BlipForConditionalGeneration, English + Chinese
    python -m chapter09.toyworld train vqa           # BlipForQuestionAnswering, English + Chinese

Each is the real checkpoint's class at a tiny size, saved with its processor, so
the lessons load it exactly as they load the hub model. Language is chosen by a
prompt token (``<en>`` / ``<zh>``) the captioner continues, as BLIP continues
"a picture of".

tests/test_vl_toy_quality.py asserts their held-out figures; chapter09/README.md gives the
training times and the figures behind each choice below. What makes the recipe work:

* 96-px images in 16-px patches: each cell of the scene's 3x3 grid is 2x2 patches and a
  small shape is about 16 px wide (at 64 px a small shape fills less than one patch), and
  each step is cheaper than at 64 px in 8-px patches (37 tokens instead of 65).
* A vision warm-up (``warm_up_vision``): a throw-away linear head (``CellProbe``) reads each
  grid cell's colour, shape and size off the patch tokens. These dense labels teach the
  tower what is where in a few hundred cheap steps (no text decoder runs); the probe's loss
  stays on while the text part trains.
* Unnamed colours (``render_in_unnamed_colours``): training also shows the train split's
  scenes with every colour swapped for one the toy world has no word for (and no colour
  label). Trained on named colours alone, the tower could not tell the shape of the six
  never-seen colour x shape pairs (red is never a star, so "red" came to mean "not a
  star"). No named colour x shape pair is added: HELDOUT_COMBOS stay unseen.
* The captioner's input colour words are sometimes replaced by [MASK] (labels kept), so
  the shape that follows must be read off the image, not guessed from the colour word
  (a design choice, not measured on its own).
* Each image is encoded once per step and reused: the captioner learns its English and its
  Chinese caption from the same image features, the VQA model several questions.
* The training forward passes are the ones ``generate`` runs: BLIP-VQA's answer decoder
  sees *every* question position at inference, padding included, so it does in training
  too (``_vqa_loss``).
* The captioner learns one canonical phrasing per language (size, colour, shape, place of
  every object, in reading order), so greedy decoding has one answer to find.
"""
from __future__ import annotations

import random
import time
from pathlib import Path

from .. import config
from ..language import LANG_TOKENS
from ..training import LossLog, adamw_cosine, decay_groups, optimizer_step, seed_everything
from .corpus import render_pixels
from .scenes import COLOURS, HELDOUT_COMBOS, SHAPES, SIZES, Scene, generate_scenes
from .tokenizers import blip_word_tokenizer

# The vision warm-up trains only the tower and a linear probe: larger batches and steps than captioning.
WARM_UP_BATCH = 64
WARM_UP_LR = 2e-3
UNNAMED_SEED_OFFSET = 50  # unnamed-colour scenes are drawn apart from the named ones
VQA_SCENE_SEED_OFFSET = 1  # the VQA twin trains on other scenes than the captioner

# 96 px in 16-px patches: the 3x3 grid's cells are 2x2 patches each, and a small shape is
# about 16 px wide (at 64 px it would be 11 px, less than one patch).
TOY_VL_IMAGE_SIZE = 96
TOY_VL_PATCH_SIZE = 16


def blip_image_processor(size: int = TOY_VL_IMAGE_SIZE):
    from transformers import BlipImageProcessor

    return BlipImageProcessor(size={"height": size, "width": size})


def tiny_blip_config(tokenizer, layers: int = 3, hidden: int = 128, vision_layers: int | None = None,
                     image_size: int = TOY_VL_IMAGE_SIZE, patch_size: int = TOY_VL_PATCH_SIZE):
    from transformers import BlipConfig

    return BlipConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=hidden, encoder_hidden_size=hidden,
                         intermediate_size=4 * hidden, num_hidden_layers=layers, num_attention_heads=4,
                         max_position_embeddings=96, bos_token_id=tokenizer.cls_token_id,
                         sep_token_id=tokenizer.sep_token_id, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.sep_token_id),
        vision_config=dict(image_size=image_size, patch_size=patch_size, hidden_size=hidden,
                           intermediate_size=4 * hidden, num_hidden_layers=vision_layers or layers,
                           num_attention_heads=4, initializer_range=0.02),  # BLIP's default 1e-10 starts positions at 0
        projection_dim=hidden,
    )


def toy_caption(scene: Scene, lang: str) -> str:
    """The one phrasing the toy captioner learns: every object's size, colour, shape and place."""
    return scene.captions(lang)[0]


def heldout_scenes(n: int, offset: int = 1) -> list[Scene]:
    """Held-out scenes (all 30 colour x shape pairs, a seed never trained on) for measuring the twins."""
    return generate_scenes(n, config.TOY_HELDOUT_SEED + offset, "heldout")


# ----------------------------------------------------------------------------- training loop
def _train_loop(model, steps: int, batch_loss, lr: float, warmup: int, log_every: int = 50, name: str = "model",
                on_log=None):
    """AdamW with warm-up and a cosine decay; ``batch_loss(step)`` returns the step's loss tensor."""
    import torch

    # One thread: on a small shared CPU, two threads of tiny matmuls spin against each other.
    torch.set_num_threads(1)
    optimizer, schedule = adamw_cosine(decay_groups(model, 0.05), lr, steps, warmup, betas=(0.9, 0.98))
    model.train()
    log = LossLog(steps, log_every, name=name)
    for step in range(steps):
        loss = batch_loss(step)  # fp32: tiny models gain nothing from bf16 autocast
        if log.add(optimizer_step(loss, optimizer, schedule, model.parameters())) and on_log is not None:
            model.eval()
            on_log(step + 1)
            model.train()
    model.eval()
    return log.losses


def _save(model, processor, out_dir: Path) -> None:
    """Weights in fp16 (half the size in git; the lessons load them back in fp32), and the processor."""
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    model.to(torch.float16).save_pretrained(out_dir)
    model.to(torch.float32)
    processor.save_pretrained(out_dir)


def _new_processor():
    from transformers import BlipProcessor

    tokenizer = blip_word_tokenizer()
    return BlipProcessor(image_processor=blip_image_processor(), tokenizer=tokenizer)


# ----------------------------------------------------------------------------- unnamed colours
def unnamed_colours(n: int, rng: random.Random, min_distance: float = 110.0) -> list[tuple[int, int, int]]:
    """``n`` RGB colours far from every colour the toy world names and from its light backgrounds."""
    import numpy as np

    named = np.array([rgb for _zh, rgb in COLOURS.values()] + [(228, 228, 228)], dtype=float)
    colours = []
    while len(colours) < n:
        rgb = np.array([rng.randrange(256) for _ in range(3)], dtype=float)
        if np.sqrt(((named - rgb) ** 2).sum(1)).min() >= min_distance:
            colours.append(tuple(int(c) for c in rgb))
    return colours


def render_in_unnamed_colours(scene: Scene, rng: random.Random):
    """The scene with each named colour swapped for a colour the toy world has no word for.

    Shapes then come in many more colours than the named six, so a shape can only be told
    from its outline, never from its colour: the six colour x shape pairs that training
    never shows (HELDOUT_COMBOS) stay unseen, and no named pair is added.
    """
    import numpy as np
    from PIL import Image

    pixels = np.asarray(scene.render(), dtype=np.int16)
    named = np.array([rgb for _zh, rgb in COLOURS.values()], dtype=np.int16)
    foreground = np.abs(pixels - np.array(scene.background, dtype=np.int16)).max(-1) > 30
    nearest = np.abs(pixels[foreground][:, None, :] - named[None]).sum(-1).argmin(1)
    replacement = np.array(unnamed_colours(len(named), rng), dtype=np.int16)
    pixels[foreground] = replacement[nearest]
    return Image.fromarray(pixels.astype(np.uint8))


def render_unnamed_pixels(scenes: list[Scene], image_processor, seed: int, batch: int = 512):
    """``render_pixels`` for ``render_in_unnamed_colours``."""
    import torch

    rng = random.Random(seed)
    chunks = []
    for start in range(0, len(scenes), batch):
        images = [render_in_unnamed_colours(s, rng) for s in scenes[start:start + batch]]
        chunks.append(image_processor(images=images, return_tensors="pt")["pixel_values"].to(torch.float16))
    return torch.cat(chunks)


# ----------------------------------------------------------------------------- vision warm-up
def cell_targets(scenes: list[Scene]):
    """Per grid cell (3x3, reading order): colour, shape and size class of its object, 0 when empty."""
    import torch

    colour_id = {c: i + 1 for i, c in enumerate(COLOURS)}
    shape_id = {s: i + 1 for i, s in enumerate(SHAPES)}
    size_id = {s: i + 1 for i, s in enumerate(SIZES)}
    targets = torch.zeros(len(scenes), 9, 3, dtype=torch.long)
    for n, scene in enumerate(scenes):
        for obj in scene.objects:
            targets[n, obj.cell[0] * 3 + obj.cell[1]] = torch.tensor(
                [colour_id[obj.colour], shape_id[obj.shape], size_id[obj.size]])
    return targets


def cell_pooling(image_size: int = TOY_VL_IMAGE_SIZE, patch_size: int = TOY_VL_PATCH_SIZE):
    """A (9, 1 + patches) matrix that averages the patch tokens whose centres fall in each grid cell."""
    import torch

    grid = image_size // patch_size
    cell_of = [min(2, int((i + 0.5) * patch_size * 3 // image_size)) for i in range(grid)]
    pool = torch.zeros(9, 1 + grid * grid)
    for row in range(grid):
        for col in range(grid):
            pool[cell_of[row] * 3 + cell_of[col], 1 + row * grid + col] = 1.0
    return pool / pool.sum(dim=1, keepdim=True)


class CellProbe:
    """A throw-away head that reads colour, shape and size of each grid cell off the vision tower's tokens.

    Training the vision tower through it for a few hundred steps (dense, cheap labels: no
    text decoder runs) teaches its patch tokens what is where before captioning starts;
    the captioner's decoder then only has to learn to look. Colour, shape and size have
    separate heads, so features stay factorised for colour x shape pairs never seen.

    A second head names the grid cell of every patch token from that token alone. Without
    it the tokens need not remember where they are (the pooling knows), and a VQA twin
    trained so answered "where is ...?" at chance level.
    """

    def __init__(self, vision_config):
        import torch

        self.sizes = (len(COLOURS) + 1, len(SHAPES) + 1, len(SIZES) + 1)
        self.head = torch.nn.ModuleDict({"what": torch.nn.Linear(vision_config.hidden_size, sum(self.sizes)),
                                         "where": torch.nn.Linear(vision_config.hidden_size, 9)})
        self.pool = cell_pooling(vision_config.image_size, vision_config.patch_size)
        self.cell_of_patch = self.pool[:, 1:].argmax(0)  # (patches,) the cell each patch lies in

    def logits(self, vision_model, pixel_values):
        return self.logits_from_tokens(vision_model(pixel_values=pixel_values).last_hidden_state)

    def logits_from_tokens(self, tokens):
        cells = self.pool.to(tokens.dtype) @ tokens  # (batch, 9, hidden)
        return self.head["what"](cells).split(self.sizes, dim=-1)

    def loss(self, vision_model, pixel_values, targets):
        return self.loss_on_tokens(vision_model(pixel_values=pixel_values).last_hidden_state, targets)

    def loss_on_tokens(self, tokens, targets):
        import torch.nn.functional as F

        what = sum(F.cross_entropy(logit.flatten(0, 1), targets[..., k].flatten())
                   for k, logit in enumerate(self.logits_from_tokens(tokens)))
        where = self.head["where"](tokens[:, 1:])  # (batch, patches, 9)
        return what + F.cross_entropy(where.flatten(0, 1), self.cell_of_patch.repeat(len(tokens)))

    def accuracy(self, vision_model, pixel_values, targets, cells=None) -> tuple[float, float]:
        """(colour, shape) accuracy over the occupied cells (or over ``cells``, a boolean mask)."""
        import torch

        with torch.inference_mode():
            colour, shape, _size = self.logits(vision_model, pixel_values)
        cells = targets[..., 0] > 0 if cells is None else cells
        return ((colour.argmax(-1) == targets[..., 0])[cells].float().mean().item(),
                (shape.argmax(-1) == targets[..., 1])[cells].float().mean().item())


def unseen_cells(scenes: list[Scene]):
    """(scenes, 9) mask of the cells holding a colour x shape pair that training never shows."""
    import torch

    mask = torch.zeros(len(scenes), 9, dtype=torch.bool)
    for n, scene in enumerate(scenes):
        for obj in scene.objects:
            mask[n, obj.cell[0] * 3 + obj.cell[1]] = (obj.colour, obj.shape) in HELDOUT_COMBOS
    return mask


class TrainingData:
    """Pre-rendered training scenes: named-colour scenes with their cell labels, plus the same kind of
    scenes in unnamed colours (``render_in_unnamed_colours``) whose colour labels are left out."""

    def __init__(self, image_processor, n_named: int, n_unnamed: int, seed: int):
        started = time.time()
        self.scenes = generate_scenes(n_named, config.TOY_TRAIN_SEED + seed, "train", unique=False)
        self.unnamed_scenes = generate_scenes(n_unnamed, config.TOY_TRAIN_SEED + UNNAMED_SEED_OFFSET + seed, "train",
                                              unique=False)
        self.pixels = render_pixels(self.scenes, image_processor)
        self.unnamed_pixels = render_unnamed_pixels(self.unnamed_scenes, image_processor, seed)
        self.targets = cell_targets(self.scenes)
        self.unnamed_targets = cell_targets(self.unnamed_scenes)
        self.unnamed_targets[..., 0] = -100  # their colours have no name: no colour label
        print(f"rendered {n_named} + {n_unnamed} (unnamed colours) training scenes in {time.time() - started:.0f} s",
              flush=True)


def warm_up_vision(model, probe: CellProbe, data: TrainingData, steps: int, batch_size: int, lr: float,
                   rng: random.Random, name: str, image_processor, probe_scenes: list[Scene] | None = None):
    """Train ``model.vision_model`` alone through ``probe`` on named and unnamed-colour scenes, half each."""
    import torch

    def batch_loss(_step):
        named = rng.sample(range(len(data.pixels)), batch_size // 2)
        unnamed = rng.sample(range(len(data.unnamed_pixels)), batch_size // 2)
        pixels = torch.cat([data.pixels[named], data.unnamed_pixels[unnamed]]).float()
        targets = torch.cat([data.targets[named], data.unnamed_targets[unnamed]])
        return probe.loss(model.vision_model, pixels, targets)

    on_log = None
    if probe_scenes:
        probe_pixels = render_pixels(probe_scenes, image_processor).float()
        probe_targets = cell_targets(probe_scenes)
        unseen = unseen_cells(probe_scenes)
        seen = (probe_targets[..., 0] > 0) & ~unseen

        def on_log(step):
            if step % 200 == 0:
                figures = [probe.accuracy(model.vision_model, probe_pixels, probe_targets, cells)
                           for cells in (seen, unseen)]
                print("    held-out cells, colour/shape: seen pairs {:.3f}/{:.3f}, never-seen pairs {:.3f}/{:.3f}"
                      .format(*figures[0], *figures[1]), flush=True)

    trainable = torch.nn.ModuleDict({"vision": model.vision_model, "probe": probe.head})
    return _train_loop(trainable, steps, batch_loss, lr, warmup=max(1, steps // 10), name=f"{name} vision warm-up",
                       on_log=on_log)


def _train_loop_wrapped(model, probe, steps, batch_loss, lr, name, on_log):
    """``_train_loop`` over the model and the probe's heads together (one optimiser)."""
    import torch

    trainable = torch.nn.ModuleDict({"model": model, "probe": probe.head})
    return _train_loop(trainable, steps, batch_loss, lr, warmup=max(1, steps // 20), name=name, on_log=on_log)


# ----------------------------------------------------------------------------- captioner
def colour_token_ids(tokenizer) -> list[int]:
    """Ids of the colour words: English words, and the first character of each Chinese colour (红 of 红色)."""
    words = list(COLOURS) + [zh[0] for zh, _rgb in COLOURS.values()]
    return tokenizer.convert_tokens_to_ids(words)


def caption_batch(tokenizer, scenes: list[Scene], colour_ids, rng: random.Random, mask_colour_input: float,
                  unnamed: bool = False):
    """Token ids and labels for the English then the Chinese caption of each scene.

    ``mask_colour_input``: the share of colour words replaced by [MASK] in the *input* (their
    labels stay): the next word, the shape, must then be read off the image rather than
    guessed from the colour word. For unnamed-colour scenes every colour word is masked
    and has no label.
    """
    import torch

    texts = [f"{LANG_TOKENS[lang]} {toy_caption(scene, lang)}" for lang in ("en", "zh") for scene in scenes]
    tokens = tokenizer(texts, padding=True, return_tensors="pt")
    input_ids = tokens.input_ids
    labels = input_ids.masked_fill(tokens.attention_mask == 0, -100)
    labels[:, :2] = -100  # [CLS] and the language token are given, not predicted
    is_colour = torch.isin(input_ids, torch.tensor(colour_ids))
    if unnamed:
        labels = labels.masked_fill(is_colour, -100)
        chosen = is_colour
    else:
        chosen = is_colour & (torch.rand(input_ids.shape, generator=_torch_generator(rng)) < mask_colour_input)
    input_ids = input_ids.masked_fill(chosen, tokenizer.mask_token_id)
    return input_ids, tokens.attention_mask, labels


def _torch_generator(rng: random.Random):
    import torch

    return torch.Generator().manual_seed(rng.randrange(2**31))


def _new_blip(model_class, seed: int):
    """A fresh tiny BLIP of ``model_class`` (captioner or VQA) with the toy processor; every draw seeded."""
    seed_everything(seed)
    processor = _new_processor()
    return processor, model_class(tiny_blip_config(processor.tokenizer, layers=3, vision_layers=3))


def _vision_and_probe(model, probe, data: TrainingData, rng: random.Random, batch_size: int, unnamed_batch_size: int):
    """Draw named and unnamed-colour scenes, run the vision tower, and the cell probe's loss on its tokens."""
    import torch

    named = rng.sample(range(len(data.scenes)), batch_size)
    unnamed = rng.sample(range(len(data.unnamed_scenes)), unnamed_batch_size)
    pixels = torch.cat([data.pixels[named], data.unnamed_pixels[unnamed]]).float()
    image_embeds = model.vision_model(pixel_values=pixels).last_hidden_state
    loss = probe.loss_on_tokens(image_embeds, torch.cat([data.targets[named], data.unnamed_targets[unnamed]]))
    return named, unnamed, image_embeds, loss


def train_captioner(out_dir: Path, steps: int | None = None, seed: int = 0, n_train: int = 20000,
                    n_unnamed: int = 10000, batch_size: int = 32, unnamed_batch_size: int = 16,
                    warm_up_steps: int | None = None, lr: float = 1.5e-3, mask_colour_input: float = 0.3,
                    eval_every: int = 0):
    """BlipForConditionalGeneration that captions in English after ``<en>`` and in Chinese after ``<zh>``.

    1. ``warm_up_vision``: the vision tower learns each grid cell's colour, shape and size.
    2. ``steps`` of captioning (both languages per image) with the cell probe's loss kept on,
       on named-colour scenes plus a few unnamed-colour ones whose colour words are masked.
    """
    from transformers import BlipForConditionalGeneration

    steps = steps or 1200
    warm_up_steps = min(500, steps) if warm_up_steps is None else warm_up_steps
    processor, model = _new_blip(BlipForConditionalGeneration, seed)
    tokenizer = processor.tokenizer
    print(f"toy captioner: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; "
          f"{warm_up_steps} vision warm-up steps, then {steps} steps of {batch_size} + {unnamed_batch_size} images "
          f"x 2 languages", flush=True)
    data = TrainingData(processor.image_processor, n_train, n_unnamed, seed)
    rng = random.Random(seed)
    probe = CellProbe(model.config.vision_config)
    probe_scenes = heldout_scenes(100, offset=7) if eval_every else None
    history = warm_up_vision(model, probe, data, warm_up_steps, WARM_UP_BATCH, WARM_UP_LR, rng, "captioner",
                             processor.image_processor, probe_scenes)
    colour_ids = colour_token_ids(tokenizer)

    def batch_loss(_step):
        named, unnamed, image_embeds, loss = _vision_and_probe(model, probe, data, rng, batch_size,
                                                               unnamed_batch_size)
        for part, scenes, is_unnamed in ((image_embeds[:batch_size], [data.scenes[i] for i in named], False),
                                         (image_embeds[batch_size:], [data.unnamed_scenes[i] for i in unnamed], True)):
            input_ids, attention_mask, labels = caption_batch(tokenizer, scenes, colour_ids, rng, mask_colour_input,
                                                              unnamed=is_unnamed)
            weight = len(scenes) / (batch_size + unnamed_batch_size)
            loss = loss + weight * model.text_decoder(
                input_ids=input_ids, attention_mask=attention_mask, encoder_hidden_states=part.repeat(2, 1, 1),
                labels=labels, reduction="mean").loss
        return loss

    on_log = None
    if eval_every:
        def on_log(step):
            if step % eval_every == 0:
                for lang in ("en", "zh"):
                    every = caption_accuracy_of(model, processor, probe_scenes, lang)
                    unseen = caption_accuracy_of(model, processor, probe_scenes, lang, only_unseen_pairs=True)
                    print(f"    held-out probe [{lang}]: all {every:.3f}, with never-seen pairs {unseen:.3f}", flush=True)

    history += _train_loop_wrapped(model, probe, steps, batch_loss, lr, "captioner", on_log)
    _save(model, processor, out_dir)
    return history


def caption_accuracy_of(model, processor, scenes: list[Scene], lang: str, only_unseen_pairs: bool = False) -> float:
    """Share of scenes whose greedy caption names every object's colour and shape (``captioning`` scoring)."""
    import torch

    from ..captioning import names_every_object
    from ..language import tidy_text
    if only_unseen_pairs:
        scenes = [s for s in scenes if any((o.colour, o.shape) in HELDOUT_COMBOS for o in s.objects)]
    hits = 0
    for start in range(0, len(scenes), 64):
        chunk = scenes[start:start + 64]
        inputs = processor(images=[s.render() for s in chunk], text=[LANG_TOKENS[lang]] * len(chunk),
                           return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=80 if lang == "zh" else 40, num_beams=1, do_sample=False)
        captions = [tidy_text(t) for t in processor.batch_decode(out, skip_special_tokens=True)]
        hits += sum(names_every_object(c, s, lang) for c, s in zip(captions, chunk))
    return hits / max(1, len(scenes))


# ----------------------------------------------------------------------------- VQA
def _vqa_loss(model, image_embeds, question_ids, question_mask, answer_ids, answer_mask, labels):
    """BlipForQuestionAnswering's loss, computed the way its ``generate`` reads the question.

    Each image's tokens serve its ``len(question_ids) // len(image_embeds)`` questions
    (consecutive rows). The answer decoder attends to every question position, padding
    included, because ``generate`` gives it an all-ones mask: training with the same view
    keeps batched answers independent of how much padding a batch has.
    """
    image_embeds = image_embeds.repeat_interleave(len(question_ids) // len(image_embeds), dim=0)
    question_embeds = model.text_encoder(input_ids=question_ids, attention_mask=question_mask,
                                         encoder_hidden_states=image_embeds).last_hidden_state
    return model.text_decoder(input_ids=answer_ids, attention_mask=answer_mask, encoder_hidden_states=question_embeds,
                              labels=labels, reduction="mean").loss


def train_vqa(out_dir: Path, steps: int | None = None, seed: int = 0, n_train: int = 20000, n_unnamed: int = 10000,
              batch_size: int = 32, unnamed_batch_size: int = 16, questions_per_image: int = 4,
              warm_up_steps: int | None = None, lr: float = 1.5e-3, eval_every: int = 0):
    """BlipForQuestionAnswering answering the toy world's count/colour/shape/position questions, en + zh.

    The same two stages as ``train_captioner``; unnamed-colour scenes only feed the cell probe.
    """
    from transformers import BlipForQuestionAnswering

    steps = steps or 1500
    warm_up_steps = min(500, steps) if warm_up_steps is None else warm_up_steps
    processor, model = _new_blip(BlipForQuestionAnswering, seed)
    tokenizer = processor.tokenizer
    print(f"toy VQA: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; {warm_up_steps} vision "
          f"warm-up steps, then {steps} steps of {batch_size} images x {questions_per_image} questions", flush=True)
    data = TrainingData(processor.image_processor, n_train, n_unnamed, seed + VQA_SCENE_SEED_OFFSET)
    questions = [scene.questions() for scene in data.scenes]
    rng = random.Random(seed)
    probe = CellProbe(model.config.vision_config)
    probe_scenes = heldout_scenes(40, offset=7) if eval_every else None
    history = warm_up_vision(model, probe, data, warm_up_steps, WARM_UP_BATCH, WARM_UP_LR, rng, "vqa",
                             processor.image_processor,
                             probe_scenes)

    def batch_loss(_step):
        named, unnamed, image_embeds, loss = _vision_and_probe(model, probe, data, rng, batch_size,
                                                               unnamed_batch_size)
        chosen = [qa for i in named for qa in rng.sample(questions[i], min(questions_per_image, len(questions[i])))
                  + rng.choices(questions[i], k=max(0, questions_per_image - len(questions[i])))]
        asked = tokenizer([qa["question"] for qa in chosen], padding=True, return_tensors="pt")
        answers = tokenizer([qa["answer"] for qa in chosen], padding=True, return_tensors="pt")
        labels = answers.input_ids.masked_fill(answers.attention_mask == 0, -100)
        return loss + _vqa_loss(model, image_embeds[:batch_size], asked.input_ids, asked.attention_mask,
                                answers.input_ids, answers.attention_mask, labels)

    on_log = None
    if eval_every:
        def on_log(step):
            if step % eval_every == 0:
                print(f"    held-out probe: {vqa_accuracy_of(model, processor, probe_scenes):.3f}", flush=True)

    history += _train_loop_wrapped(model, probe, steps, batch_loss, lr, "vqa", on_log)
    _save(model, processor, out_dir)
    return history


def vqa_accuracy_of(model, processor, scenes: list[Scene]) -> float:
    """Exact-answer accuracy over every question of ``scenes``, batched as ``vqa.BlipAnswerer`` does."""
    import torch

    from ..language import tidy_text

    pairs = [(scene, qa) for scene in scenes for qa in scene.questions()]
    hits = 0
    for start in range(0, len(pairs), 64):
        chunk = pairs[start:start + 64]
        inputs = processor(images=[s.render() for s, _qa in chunk], text=[qa["question"] for _s, qa in chunk],
                           return_tensors="pt", padding=True)
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=10, num_beams=1, do_sample=False)
        answers = [tidy_text(t) for t in processor.batch_decode(out, skip_special_tokens=True)]
        hits += sum(a == qa["answer"] for a, (_s, qa) in zip(answers, chunk))
    return hits / len(pairs)
