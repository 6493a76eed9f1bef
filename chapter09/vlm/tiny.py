"""A vision-language model small enough to read in one sitting: CLIP's vision tower, a projector, a causal LM.

    python -m chapter09.vlm toy-data DATA --n 3000 --split train    # images/ + captions.json
    python -m chapter09.vlm train DATA/captions.json --out runs/tiny_vlm [--lm toy|Qwen/Qwen3-0.6B]
    python -m chapter09.vlm eval runs/tiny_vlm HELDOUT/captions.json
    python -m chapter09.vlm generate runs/tiny_vlm image1.png image2.png

The image becomes a row of "visual words": CLIP's patch embeddings, mapped by a
two-layer MLP (the projector) to the LM's embedding size and placed before the
caption's tokens. Training is next-token prediction on the caption only.
``captions.json`` is ``[{"image": "images/x.png", "caption": "..."}]``, image paths
relative to the json file. With the real models this is CLIP ViT-B/32 + Qwen3-0.6B;
in the toy world, the toy CLIP's vision tower + a tiny Qwen3 with the same design.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from torch import nn

from ..errors import UsageError

META_FILE = "tiny_vlm.json"


class TinyVLM(nn.Module):
    def __init__(self, vision, lm, tokenizer, image_processor):
        super().__init__()
        self.vision, self.lm, self.tokenizer, self.image_processor = vision, lm, tokenizer, image_processor
        vision_width, lm_width = vision.config.hidden_size, lm.config.hidden_size
        self.projector = nn.Sequential(nn.LayerNorm(vision_width), nn.Linear(vision_width, lm_width), nn.GELU(),
                                       nn.Linear(lm_width, lm_width))

    # -- the three steps of a VLM
    def image_features(self, pixel_values):
        return self.vision(pixel_values=pixel_values).last_hidden_state  # (batch, patches + 1, vision width)

    def visual_tokens(self, image_features):
        return self.projector(image_features)  # (batch, patches + 1, LM width): the LM reads these as words

    def forward(self, input_ids, attention_mask, labels, pixel_values=None, image_features=None):
        if image_features is None:
            image_features = self.image_features(pixel_values)
        visual = self.visual_tokens(image_features.to(self.projector[0].weight.dtype))
        words = self.lm.get_input_embeddings()(input_ids)
        n = visual.shape[1]
        ones = attention_mask.new_ones(attention_mask.shape[0], n)
        ignore = labels.new_full((labels.shape[0], n), -100)
        return self.lm(inputs_embeds=torch.cat([visual.to(words.dtype), words], 1),
                       attention_mask=torch.cat([ones, attention_mask], 1), labels=torch.cat([ignore, labels], 1))

    @torch.inference_mode()
    def generate(self, images, max_new_tokens: int = 40) -> list[str]:
        from ..captioning import images_to_rgb, tidy_text

        pixels = self.image_processor(images=images_to_rgb(images), return_tensors="pt")["pixel_values"]
        # the LayerNorm and the embedding table keep a float dtype even when Linear layers are int8
        dtype = self.projector[0].weight.dtype
        visual = self.visual_tokens(self.image_features(pixels.to(self.lm.device, self.vision.dtype)).to(dtype))
        mask = torch.ones(visual.shape[:2], dtype=torch.long, device=visual.device)
        out = self.lm.generate(inputs_embeds=visual.to(self.lm.get_input_embeddings().weight.dtype),
                               attention_mask=mask,
                               max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                               eos_token_id=self.tokenizer.eos_token_id or self.tokenizer.sep_token_id,
                               pad_token_id=self.tokenizer.pad_token_id)
        return [tidy_text(t) for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]

    # -- what learns
    def freeze(self, vision: bool = True, train_last_lm_layers: int = -1) -> None:
        """Freeze the vision tower and, when ``train_last_lm_layers`` >= 0, all LM layers but the last N."""
        self.vision.requires_grad_(not vision)
        self.lm.requires_grad_(True)  # start from a fully trainable LM, so calls do not depend on earlier ones
        if train_last_lm_layers >= 0:
            self.lm.requires_grad_(False)
            layers = self.lm.model.layers
            for layer in layers[len(layers) - train_last_lm_layers:] if train_last_lm_layers else []:
                layer.requires_grad_(True)
        self.projector.requires_grad_(True)

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def save(self, out_dir) -> Path:
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.vision.save_pretrained(out / "vision")
        self.image_processor.save_pretrained(out / "vision")
        self.lm.save_pretrained(out / "lm")
        self.tokenizer.save_pretrained(out / "lm")
        save_file({k: v.contiguous() for k, v in self.projector.state_dict().items()}, out / "projector.safetensors")
        (out / META_FILE).write_text(json.dumps({"format": "chapter09.tiny_vlm/1"}))
        return out


def load(model_dir, dtype=torch.float32) -> TinyVLM:
    from safetensors.torch import load_file
    from transformers import AutoImageProcessor, AutoModelForCausalLM, AutoTokenizer, CLIPVisionModel

    from ..models import quiet_loading

    folder = Path(model_dir)
    if not (folder / META_FILE).exists():
        raise FileNotFoundError(f"{folder} is not a tiny VLM folder (no {META_FILE}); "
                                f"train one with `python -m chapter09.vlm train captions.json --out {folder}`")
    with quiet_loading():
        model = TinyVLM(CLIPVisionModel.from_pretrained(folder / "vision", dtype=dtype),
                        AutoModelForCausalLM.from_pretrained(folder / "lm", dtype=dtype),
                        AutoTokenizer.from_pretrained(folder / "lm"),
                        AutoImageProcessor.from_pretrained(folder / "vision"))
    model.projector.load_state_dict(load_file(folder / "projector.safetensors"))
    return model.to(dtype).eval()


def build(vision: str | None = None, lm: str = "toy", settings=None) -> TinyVLM:
    """A fresh VLM: the CLIP vision tower of ``vision`` (default: the ``clip`` role) and the LM ``lm``.

    ``lm="toy"`` makes a tiny Qwen3 (2 layers, width 128) with the toy world's word tokenizer;
    anything else is a causal-LM checkpoint, such as ``Qwen/Qwen3-0.6B``.
    """
    from transformers import AutoImageProcessor, AutoModelForCausalLM, AutoTokenizer, CLIPVisionModel, Qwen3Config

    from ..models import announce, quiet_loading, resolve

    if vision is None:
        resolved = resolve("clip", settings)
        announce(resolved)
        vision = resolved.location
    with quiet_loading():
        vision_model = CLIPVisionModel.from_pretrained(vision)
        image_processor = AutoImageProcessor.from_pretrained(vision)
    if lm == "toy":
        from ..toyworld.tokenizers import blip_word_tokenizer

        tokenizer = blip_word_tokenizer()
        tokenizer.eos_token = tokenizer.sep_token
        language_model = AutoModelForCausalLM.from_config(Qwen3Config(
            vocab_size=len(tokenizer), hidden_size=128, intermediate_size=384, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=256,
            tie_word_embeddings=True, bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
            pad_token_id=tokenizer.pad_token_id))
    else:
        tokenizer = AutoTokenizer.from_pretrained(lm)
        language_model = AutoModelForCausalLM.from_pretrained(lm)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    return TinyVLM(vision_model, language_model, tokenizer, image_processor)


# ----------------------------------------------------------------------------- data
def read_captions(path) -> tuple[list[Path], list[str]]:
    """``captions.json`` -> image paths and captions, with a clear message for each malformed entry."""
    path = Path(path)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise UsageError(f"cannot read {path}: {error}. Expected [{{\"image\": ..., \"caption\": ...}}, ...]")
    if not isinstance(rows, list) or not rows:
        raise UsageError(f"{path} must hold a non-empty JSON list of {{\"image\": ..., \"caption\": ...}}")
    images, captions = [], []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("image"), str) or not str(row.get("caption", "")).strip():
            raise UsageError(f"{path}, entry {i}: needs a string 'image' and a non-empty 'caption', got {row!r}")
        image = Path(row["image"]) if Path(row["image"]).is_absolute() else path.parent / row["image"]
        if not image.exists():
            raise UsageError(f"{path}, entry {i}: image {image} does not exist")
        images.append(image)
        captions.append(row["caption"].strip())
    return images, captions


def write_toy_captions(out_dir, n: int, seed: int, split: str) -> Path:
    """Toy scenes as a captions.json data set (English, every object's size, colour, shape and place)."""
    from ..toyworld import generate_scenes

    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, scene in enumerate(generate_scenes(n, seed, split)):
        name = f"images/{split}_{seed}_{i:05d}.png"
        scene.render().save(out / name)
        rows.append({"image": name, "caption": scene.captions("en")[0]})
    (out / "captions.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False), encoding="utf-8")
    return out / "captions.json"


def _pixels(model: TinyVLM, paths, batch: int = 256):
    from ..images import load_image

    return torch.cat([model.image_processor(images=[load_image(p) for p in paths[i:i + batch]],
                                            return_tensors="pt")["pixel_values"] for i in range(0, len(paths), batch)])


# ----------------------------------------------------------------------------- train / eval
def train(model: TinyVLM, images, captions, steps: int = 1500, batch_size: int = 64, lr: float = 2e-3,
          log_every: int = 100, seed: int = 0) -> list[float]:
    """Next-token training on the captions. A frozen vision tower is run once per image, not once per step."""
    from ..training import LossLog, adamw_cosine, optimizer_step, train_device

    torch.manual_seed(seed)
    rng = random.Random(seed)
    device = train_device()
    model.to(device)
    pixels = _pixels(model, images).to(device)
    frozen_vision = not any(p.requires_grad for p in model.vision.parameters())
    if frozen_vision:
        with torch.inference_mode():
            features = torch.cat([model.image_features(pixels[i:i + 256]) for i in range(0, len(pixels), 256)])
        features = features.clone()
    eos = model.tokenizer.eos_token or model.tokenizer.sep_token
    texts = [f"{c} {eos}" for c in captions]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer, schedule = adamw_cosine(params, lr, steps, weight_decay=0.01)
    model.train()
    log = LossLog(steps, log_every, name="tiny_vlm")
    for step in range(steps):
        index = rng.sample(range(len(texts)), min(batch_size, len(texts)))
        tokens = model.tokenizer([texts[i] for i in index], padding=True, add_special_tokens=False,
                                 return_tensors="pt").to(device)
        labels = tokens.input_ids.masked_fill(tokens.attention_mask == 0, -100)
        inputs = {"image_features": features[index]} if frozen_vision else {"pixel_values": pixels[index]}
        loss = model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask, labels=labels, **inputs).loss
        log.add(optimizer_step(loss, optimizer, schedule, params))
    model.eval().to("cpu")
    return log.losses


def evaluate(model: TinyVLM, images, captions, batch_size: int = 64) -> dict:
    """Exact caption match, and (for toy-world captions) how often every object's colour and shape is right."""
    from collections import Counter

    from ..captioning import named_objects
    from ..images import load_image

    generated = []
    for start in range(0, len(images), batch_size):
        generated += model.generate([load_image(p) for p in images[start:start + batch_size]])
    exact = [g.strip().lower() == c.strip().lower() for g, c in zip(generated, captions)]
    report = {"images": len(images), "exact_match": sum(exact) / len(exact), "examples": list(zip(captions, generated))[:5]}
    references = [named_objects(c, "en") for c in captions]
    if all(references):
        hits = [Counter(named_objects(g, "en")) == Counter(r) for g, r in zip(generated, references)]
        report["objects_correct"] = sum(hits) / len(hits)
    return report
