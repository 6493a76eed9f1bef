"""Training the toy CLIP (a tiny ``CLIPModel``) from scratch in five phases; see ``train_clip``."""
from __future__ import annotations

import random
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
)
from .corpus import SHORT_CAPTION_SHARE, render_pixels, sample_caption, toy_corpus
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


CLIP_LR = 1e-3
# Later phases start from a trained model: smaller steps keep what the earlier ones learnt.
HARD_NEGATIVE_LR_FACTOR = 0.3  # phase 2 refines shape on the same tower
FINE_PATCH_LR_FACTOR = 0.5  # phases 3-5 retrain a re-patched tower, which needs larger steps than phase 2
# Each phase draws its scenes and its batch order from its own seed, so phases never replay each other's data.
HARD_NEGATIVE_SEED_OFFSET = 1
SHORT_CAPTION_SEED_OFFSET = 1
FINE_PATCH_SEED_OFFSET = 2
SHAPE_GROUP_RNG_OFFSET = 5
SHAPE_GROUP_SCENE_OFFSET = 101


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
       alike and capped zero-shot shape whatever the vision side learnt; here both sides must tell all four shapes of a colour apart (README: results).
       The multilingual twin is distilled from the text tower afterwards, so it follows.
    """
    from transformers import CLIPModel

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
                                    lr * HARD_NEGATIVE_LR_FACTOR, seed, log_every)
    if fine_patch_steps > 0:
        model = finer_patches(model, FINE_PATCH_SIZE)
        history += _fine_patch_phase(model, tokenizer, processor, fine_patch_steps, n_train, batch_size,
                                     lr * FINE_PATCH_LR_FACTOR, seed, log_every)
        history += _fine_patch_phase(model, tokenizer, processor, short_caption_steps, n_train, batch_size,
                                     lr * FINE_PATCH_LR_FACTOR, seed + SHORT_CAPTION_SEED_OFFSET, log_every,
                                     **SHORT_CAPTIONS)
    for restart in range(2):  # twice, the second time on fresh scenes with a new warm-up (a warm restart)
        history += _shape_group_phase(model, tokenizer, processor, shape_group_steps, n_train, batch_size,
                                      lr * FINE_PATCH_LR_FACTOR, seed + restart, log_every)
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
    history = _hard_negative_phase(model, tokenizer, processor, steps, n_train, batch_size, lr,
                                   seed + FINE_PATCH_SEED_OFFSET, log_every,
                                   **step_options)
    for parameter in model.parameters():
        parameter.requires_grad = True
    return history


def continue_clip_training(out_dir: Path, phase: str, steps: int, seed: int = 0, n_train: int = 24000,
                           batch_size: int = 128, log_every: int = 100):
    """Run one phase of ``train_clip`` alone, continuing from the CLIP saved in ``out_dir``."""
    from transformers import AutoProcessor, CLIPModel

    seed_everything(seed)
    model = CLIPModel.from_pretrained(out_dir)
    processor = AutoProcessor.from_pretrained(out_dir)
    args = (processor.tokenizer, processor, steps, n_train, batch_size)
    if phase == "hard_negatives":
        history = _hard_negative_phase(model, *args, CLIP_LR * HARD_NEGATIVE_LR_FACTOR, seed, log_every)
    elif phase == "finer_patches":
        model = finer_patches(model, FINE_PATCH_SIZE)
        history = _fine_patch_phase(model, *args, CLIP_LR * FINE_PATCH_LR_FACTOR, seed, log_every)
    elif phase == "short_captions":
        history = _fine_patch_phase(model, *args, CLIP_LR * FINE_PATCH_LR_FACTOR, seed + SHORT_CAPTION_SEED_OFFSET,
                                    log_every, **SHORT_CAPTIONS)
    elif phase == "shape_groups":
        history = _shape_group_phase(model, *args, CLIP_LR * FINE_PATCH_LR_FACTOR, seed, log_every)
    else:
        raise ValueError("phase must be hard_negatives, finer_patches, short_captions or shape_groups, "
                         f"not {phase!r}")
    model.eval()
    model.save_pretrained(out_dir)
    return history


def shape_twin(scene: Scene, rng: random.Random) -> Scene:
    """The same scene, drawn the same way, with one object's shape changed (train-split pairs only)."""
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
    rng = random.Random(seed + HARD_NEGATIVE_SEED_OFFSET)
    base = generate_scenes(n_train // 2, config.TOY_TRAIN_SEED + seed + HARD_NEGATIVE_SEED_OFFSET, "train",
                           unique=False)
    scenes = [scene for original in base for scene in (original, shape_twin(original, rng))]
    print(f"hard negatives: {len(base)} scenes and their shape twins, {steps} steps")
    return _contrastive_steps(model, tokenizer, scenes, render_pixels(scenes, processor.image_processor),
                              steps, batch_size, lr, seed + HARD_NEGATIVE_SEED_OFFSET, log_every, group=2,
                              **step_options)


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


def _shape_group_phase(model, tokenizer, processor, steps, n_train, batch_size, lr, seed, log_every,
                       group: int = SHAPE_GROUP):
    """Both towers, every batch made of shape groups (phase 5 of ``train_clip``)."""
    if steps <= 0:
        return []
    rng = random.Random(seed + SHAPE_GROUP_RNG_OFFSET)
    base = generate_scenes(2 * n_train // group, config.TOY_TRAIN_SEED + seed + SHAPE_GROUP_SCENE_OFFSET, "train",
                           unique=False)
    scenes = [variant for scene in base for variant in shape_variants(scene, rng, group)]
    for parameter in model.parameters():
        parameter.requires_grad = True
    print(f"shape groups: {len(base)} scenes x {group} shapes, both towers, {steps} steps")
    return _contrastive_steps(model, tokenizer, scenes, render_pixels(scenes, processor.image_processor),
                              steps, batch_size, lr, seed, log_every, group=group, rng=rng, **SHORT_CAPTIONS)


def _contrastive_steps(model, tokenizer, scenes, pixels, steps, batch_size, lr, seed, log_every, group: int = 1,
                       short_fraction: float = SHORT_CAPTION_SHARE, rng: random.Random | None = None):
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


