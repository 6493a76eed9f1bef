"""The toy Chinese-CLIP (``ChineseCLIPModel``): the toy CLIP's image tower, locked, and a Chinese BERT text tower."""
from __future__ import annotations

import random
from pathlib import Path

from .. import config
from ..training import (
    LossLog,
    adamw_cosine,
    autocast,
    clip_contrastive_loss,
    grouped_batch,
    optimizer_step,
    seed_everything,
    train_device,
)
from .corpus import render_pixels, sample_caption, toy_corpus
from .scenes import generate_scenes
from .tokenizers import word_tokenizer
from .train_clip import shape_twin


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

    from ..clip import feature_tensor

    steps = steps or 1200
    seed_everything(seed)
    tokenizer = word_tokenizer(toy_corpus(1500))
    model, side = chinese_clip_from_toy_clip(tokenizer)
    image_processor = ChineseCLIPImageProcessorPil(size={"height": side, "width": side},
                                                   crop_size={"height": side, "width": side})
    processor = ChineseCLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    rng = random.Random(seed)
    base = generate_scenes(n_train // 2, config.TOY_TRAIN_SEED + seed, "train", unique=False)
    scenes = [scene for original in base for scene in (original, shape_twin(original, rng))]
    pixels = render_pixels(scenes, image_processor)
    device = train_device()
    model.to(device).eval()
    with torch.inference_mode():
        image_vectors = torch.cat([F.normalize(feature_tensor(model.get_image_features(
            pixel_values=pixels[i:i + 512].to(device).float())).float(), dim=-1) for i in range(0, len(scenes), 512)])
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
        tokens = tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(device)
        with autocast(device):
            text = feature_tensor(model.get_text_features(**tokens))
            loss = clip_contrastive_loss(image_vectors[index], text, model.logit_scale)
        log.add(optimizer_step(loss, optimizer, schedule, trainable))
    model.eval().to("cpu")
    for parameter in model.parameters():
        parameter.requires_grad = True
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    print(f"held-out text->image R@5 (Chinese, 500 images): {chinese_clip_recall(out_dir)['R@5']:.3f}")
    return log.means


def chinese_clip_recall(location, n: int = 500, seed: int = config.TOY_HELDOUT_SEED + 3) -> dict:
    """Text->image Recall@1/5/10 of a Chinese-CLIP on ``n`` held-out scenes, one Chinese caption each."""
    from ..clip import ClipEncoder
    from ..models import ResolvedModel, Settings
    from ..retrieval import recall_at_k

    resolved = ResolvedModel("chinese_clip", config.model_spec("chinese_clip"), str(location), "toy")
    encoder = ClipEncoder("chinese_clip", Settings("toy", dtype="float32"), resolved=resolved)
    scenes = generate_scenes(n, seed, "heldout")
    rng = random.Random(seed)
    images = encoder.encode_images([scene.render() for scene in scenes])
    texts = encoder.encode_texts([rng.choice(scene.captions("zh")) for scene in scenes])
    return recall_at_k(texts @ images.T, [{i} for i in range(n)], (1, 5, 10))


