"""Training the toy CLIP (a tiny ``CLIPModel``) from scratch in five phases; see ``train_clip``.

The whole recipe is one ``ClipRecipe``: its step counts, learning rate, batch size, and the table of
phases (``ClipRecipe.phases``) that says what each phase's batches are made of, which towers learn, and
the one seed offset each phase draws its scenes, twins and batch order from. The committed twin was
trained with the defaults, ``seed=0``.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path

from .. import config
from ..training import (
    LossLog,
    adamw_cosine,
    autocast,
    clip_contrastive_loss,
    decay_groups,
    grouped_batch,
    optimizer_step,
    seed_everything,
    train_device,
)
from .corpus import PARTIAL_CAPTION_SHARE, SHORT_CAPTION_SHARE, render_pixels, sample_caption, toy_corpus
from .scenes import HELDOUT_COMBOS, SHAPES, Scene, ToyObject, generate_scenes
from .tokenizers import build_clip_tokenizer

FINE_PATCH_SIZE = 8  # phase 3 of the toy CLIP: small shapes need patches smaller than themselves
TOY_IMAGE_SIZE = 64  # the toy processors resize the 128-px scenes to this, as CLIP's resize to 224


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


# Phase 5 batches scenes in groups drawn alike but for one object's shape; each colour has
# exactly four training-split shapes (the fifth is a held-out pair), so a group is all of them.
SHAPE_GROUP = 4


@dataclass(frozen=True)
class Phase:
    """One phase of the recipe.

    ``batches``: ``random`` (scenes as drawn), ``twins`` (each scene beside its shape twin, ``shape_twin``) or
    ``shape_groups`` (``SHAPE_GROUP`` shape variants of a scene, ``shape_variants``). ``seed``: the offset from
    the run's seed that this phase's scenes, twins and batch order are drawn from (``scene_seed``, when set,
    for its scenes alone), so no phase replays another's data. ``lr_factor``: later phases start from a
    trained model, and smaller steps keep what the earlier ones learnt.
    """

    key: str  # what ``continue_clip_training`` calls it
    name: str
    steps: int
    batches: str
    seed: int
    lr_factor: float = 1.0
    scene_seed: int | None = None
    repatch: bool = False  # re-cut the vision tower into ``fine_patch_size`` patches first (``finer_patches``)
    text_frozen: bool = False  # only the vision side learns: text embeddings, and the multilingual twin, stay put
    short_fraction: float = SHORT_CAPTION_SHARE  # share of the short "a red circle" captions


@dataclass(frozen=True)
class ClipRecipe:
    """Every number of the toy CLIP's training (see ``train_clip`` for what each phase is for)."""

    steps: int = 3000
    hard_negative_steps: int = 1000
    fine_patch_steps: int = 1500
    short_caption_steps: int = 2000
    shape_group_steps: int = 2000
    n_train: int = 24000
    batch_size: int = 128
    lr: float = 1e-3
    fine_patch_size: int = FINE_PATCH_SIZE
    shape_group: int = SHAPE_GROUP
    log_every: int = 100

    def phases(self) -> list[Phase]:
        # Phases 3-5 retrain a re-patched tower, which needs larger steps than phase 2 (lr factor 0.5 vs 0.3).
        # Phases 4 and 5 show the short captions twice as often as the others. (Repeats of one short caption
        # in a batch need no multi-positive targets: identical texts embed identically, and plain InfoNCE then
        # gives the same gradients as UniCL-style targets.)
        phases = [Phase("random", "random batches", self.steps, "random", seed=0),
                  Phase("hard_negatives", "hard negatives", self.hard_negative_steps, "twins", seed=1, lr_factor=0.3)]
        if self.fine_patch_steps > 0:
            phases += [Phase("finer_patches", "finer patches", self.fine_patch_steps, "twins", seed=3, lr_factor=0.5,
                             repatch=True, text_frozen=True),
                       Phase("short_captions", "short captions", self.short_caption_steps, "twins", seed=4,
                             lr_factor=0.5, text_frozen=True, short_fraction=0.5)]
        # run twice, the second time on fresh scenes with a new warm-up (a warm restart)
        phases += [Phase("shape_groups", f"shape groups ({restart + 1} of 2)", self.shape_group_steps, "shape_groups",
                         seed=5 + restart, scene_seed=101 + restart, lr_factor=0.5, short_fraction=0.5)
                   for restart in range(2)]
        return phases


def train_clip(out_dir: Path, steps: int | None = None, seed: int = 0, recipe: ClipRecipe | None = None,
               **changes) -> list[float]:
    """Train the tiny CLIP in the five phases of ``recipe`` (default ``ClipRecipe()``, with ``steps`` and any
    field in ``changes`` replaced) and save it; returns the logged losses.

    1. ``steps`` of plain contrastive training on random batches.
    2. ``hard_negative_steps`` more, where each scene comes with a *twin* that differs only
       in one object's shape. Random batches can be solved from colour, size and position
       alone, so phase 1 leaves shape weak; twins make shape the only way to tell two
       scenes apart (the hard-negative idea of NegCLIP, Yuksekgonul et al. 2023).
    3. ``fine_patch_steps`` with the vision tower re-cut into 8-px patches (``finer_patches``)
       and the text tower frozen. Phases 1-2 run on 16-px patches, 2x cheaper per step.
    4. ``short_caption_steps`` more like phase 3 on fresh scenes, with more short captions.
    5. ``shape_group_steps`` (run twice) with *both* towers learning again, on batches of shape groups
       (``shape_variants``). The text tower learnt its shape words while the 16-px vision
       tower could hardly see shape, so "a red circle" and "a red square" embedded almost
       alike and capped zero-shot shape whatever the vision side learnt; here both sides must tell all
       four shapes of a colour apart (README: results).
       The multilingual twin is distilled from the text tower afterwards, so it follows.
    """
    from transformers import CLIPModel

    recipe = replace(recipe or ClipRecipe(), **changes, **({} if steps is None else {"steps": steps}))
    seed_everything(seed)
    tokenizer = build_clip_tokenizer(toy_corpus(langs=("en",)))
    processor = toy_clip_processor(tokenizer)
    model = CLIPModel(tiny_clip_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id))
    print(f"tiny CLIP: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
          f"{recipe.n_train} training scenes, {recipe.steps} + {recipe.hard_negative_steps} steps of "
          f"{recipe.batch_size}")
    history = []
    for phase in recipe.phases():
        if phase.repatch:
            model = finer_patches(model, recipe.fine_patch_size)
        history += _run_phase(model, tokenizer, processor, phase, recipe, seed)
    model.eval().to("cpu")
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return history


def continue_clip_training(out_dir: Path, phase: str, steps: int, seed: int = 0, **changes) -> list[float]:
    """Run one phase of the recipe alone (``hard_negatives``, ``finer_patches``, ``short_captions`` or
    ``shape_groups``, its first round), continuing from the CLIP saved in ``out_dir``, and save it there.

    Kept because the committed toy CLIP was made this way, phase by phase from an earlier model (the
    top-level README says how); a second shape-group round is ``shape_groups`` with ``seed + 1``.
    """
    from transformers import AutoProcessor, CLIPModel

    recipe = replace(ClipRecipe(), **changes)
    chosen = next((p for p in recipe.phases() if p.key == phase and p.key != "random"), None)
    if chosen is None:
        raise ValueError("phase must be hard_negatives, finer_patches, short_captions or shape_groups, "
                         f"not {phase!r}")
    seed_everything(seed)
    model = CLIPModel.from_pretrained(out_dir)
    processor = AutoProcessor.from_pretrained(out_dir)
    if chosen.repatch:
        model = finer_patches(model, recipe.fine_patch_size)
    history = _run_phase(model, processor.tokenizer, processor, replace(chosen, steps=steps), recipe, seed)
    model.eval().to("cpu")
    model.save_pretrained(out_dir)
    return history


def _phase_scenes(phase: Phase, recipe: ClipRecipe, seed: int) -> tuple[list[Scene], int, random.Random]:
    """(scenes in batch order groups, group size, the batch-order rng) of one phase."""
    offset = phase.seed if phase.scene_seed is None else phase.scene_seed
    draw = {"random": recipe.n_train, "twins": recipe.n_train // 2,
            "shape_groups": 2 * recipe.n_train // recipe.shape_group}[phase.batches]
    base = generate_scenes(draw, config.TOY_TRAIN_SEED + seed + offset, "train", unique=False)
    rng = random.Random(seed + phase.seed)
    if phase.batches == "random":
        return base, 1, rng
    if phase.batches == "twins":  # the twins draw from their own rng; the batch order from a fresh one
        scenes = [scene for original in base for scene in (original, shape_twin(original, rng))]
        print(f"{phase.name}: {len(base)} scenes and their shape twins, {phase.steps} steps")
        return scenes, 2, random.Random(seed + phase.seed)
    scenes = [variant for scene in base for variant in shape_variants(scene, rng, recipe.shape_group)]
    print(f"{phase.name}: {len(base)} scenes x {recipe.shape_group} shapes, both towers, {phase.steps} steps")
    return scenes, recipe.shape_group, rng  # the variants and the batch order share one rng


def _run_phase(model, tokenizer, processor, phase: Phase, recipe: ClipRecipe, seed: int) -> list[float]:
    if phase.steps <= 0:
        return []
    scenes, group, rng = _phase_scenes(phase, recipe, seed)
    for name, parameter in model.named_parameters():
        parameter.requires_grad = not phase.text_frozen or name.startswith(
            ("vision_model.", "visual_projection.", "logit_scale"))
    if phase.text_frozen:
        print(f"  ({model.config.vision_config.patch_size} px patches, text tower frozen)")
    history = _contrastive_steps(model, tokenizer, scenes, render_pixels(scenes, processor.image_processor),
                                 phase.steps, recipe.batch_size, recipe.lr * phase.lr_factor, rng,
                                 recipe.log_every, group=group, short_fraction=phase.short_fraction)
    for parameter in model.parameters():
        parameter.requires_grad = True
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


def shape_twin(scene: Scene, rng: random.Random) -> Scene:
    """The same scene, drawn the same way, with one object's shape changed (train-split pairs only)."""
    objects = list(scene.objects)
    index = rng.randrange(len(objects))
    obj = objects[index]
    choices = [s for s in SHAPES if s != obj.shape and (obj.colour, s) not in HELDOUT_COMBOS]
    objects[index] = ToyObject(obj.colour, rng.choice(choices), obj.size, obj.cell)
    return Scene(tuple(objects), scene.background, scene.seed)


def shape_variants(scene: Scene, rng: random.Random, group: int = SHAPE_GROUP) -> list[Scene]:
    """``group`` copies of the scene, drawn alike, one object taking a different training-split shape in each."""
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


def _contrastive_steps(model, tokenizer, scenes, pixels, steps, batch_size, lr, rng: random.Random, log_every,
                       group: int = 1, short_fraction: float = SHORT_CAPTION_SHARE):
    """AdamW + warm-up/cosine on symmetric InfoNCE; scenes ``group*i ... group*i+group-1`` share a batch.

    Captions are English only, as OpenAI's CLIP saw (``sample_caption(..., lang="en")``).
    """
    device = train_device()
    model.to(device)
    optimizer, schedule = adamw_cosine(decay_groups(model, 0.1), lr, steps, betas=(0.9, 0.98))
    model.train()
    log = LossLog(steps, log_every)
    for step in range(steps):
        index = grouped_batch(rng, len(scenes), batch_size, group)
        texts = [sample_caption(scenes[i], rng, short_fraction, lang="en", partial_fraction=PARTIAL_CAPTION_SHARE)
                 for i in index]
        tokens = tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(device)
        with autocast(device):
            out = model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask,
                        pixel_values=pixels[index].to(device).float())
            loss = clip_contrastive_loss(out.image_embeds, out.text_embeds, model.logit_scale)
        log.add(optimizer_step(loss, optimizer, schedule, model.parameters()),
                f"temperature {1 / model.logit_scale.exp().item():.3f}")
    model.eval()
    return log.means


