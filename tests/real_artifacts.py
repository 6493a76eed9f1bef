"""Local checkpoints with the REAL tokenizers and architectures of the chapter's two CLIPs, random weights.

No hub here, but two packages ship the real artifacts in their wheels (installed test-only,
``--no-deps``, from requirements-real-artifacts.txt):

* ``open-clip-torch`` -- OpenAI CLIP's BPE file ``bpe_simple_vocab_16e6.txt.gz``, its reference
  tokenizer ``tokenizer.py`` and the ViT-B/32 architecture ``model_configs/ViT-B-32.json``;
* ``cn-clip`` -- Chinese-CLIP's BERT vocabulary ``clip/vocab.txt``, its pure-Python tokenizer
  ``clip/bert_tokenizer.py`` and the ViT-B/16 + RoBERTa-wwm-ext-base configs.

``build_clip`` and ``build_chinese_clip`` turn those files into folders that load exactly as
``openai/clip-vit-base-patch32`` and ``OFA-Sys/chinese-clip-vit-base-patch16`` do (same classes,
same sizes, same tokenizer, same image-processor settings); only the weights are random. The
peers' own tokenizers are loaded by file path, never by importing the packages: open_clip's
``__init__`` pulls in torchvision and timm, cn_clip's ``clip/__init__`` its model code.
"""
from __future__ import annotations

import ast
import functools
import gzip
import importlib.util
import json
import sys
from pathlib import Path

CLIP_HUB_ID = "openai/clip-vit-base-patch32"
CHINESE_CLIP_HUB_ID = "OFA-Sys/chinese-clip-vit-base-patch16"
# OpenAI CLIP's normalisation, used by both checkpoints' published preprocessor_config.json
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_CONTEXT = 77  # open_clip.tokenizer.DEFAULT_CONTEXT_LENGTH
CHINESE_CLIP_CONTEXT = 52  # cn_clip.clip.utils.tokenize(context_length=52)
N_MERGES = 49152 - 256 - 2  # OpenAI's merge count: vocab 49,408 = 2 x 256 bytes + merges + 2 specials


def package_dir(name: str) -> Path | None:
    """Where an installed top-level package lives, found without importing it."""
    spec = importlib.util.find_spec(name)  # a top-level find_spec never runs the package's __init__
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def missing_reason() -> str | None:
    """None when both packages' files are here; otherwise what to install."""
    wanted = {
        "open_clip": ("bpe_simple_vocab_16e6.txt.gz", "tokenizer.py", "model_configs/ViT-B-32.json"),
        "cn_clip": ("clip/vocab.txt", "clip/bert_tokenizer.py", "clip/utils.py", "clip/model_configs/ViT-B-16.json",
                    "clip/model_configs/RoBERTa-wwm-ext-base-chinese.json"),
    }
    for package, files in wanted.items():
        folder = package_dir(package)
        lost = [f for f in files if folder is None or not (folder / f).is_file()]
        if lost:
            return (f"{package} files missing ({', '.join(lost)}): "
                    "pip install --no-deps -r requirements-real-artifacts.txt")
    for module in ("ftfy", "regex", "six"):  # what the peers' tokenizer modules import
        if importlib.util.find_spec(module) is None:
            return f"{module} is missing (pip install -r requirements-test.txt)"
    return None


def open_clip_file(relative: str) -> Path:
    return package_dir("open_clip") / relative


def cn_clip_file(relative: str) -> Path:
    return package_dir("cn_clip") / relative


def _load_by_path(name: str, path: Path):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- the peers' own tokenizers
@functools.cache
def open_clip_tokenizer():
    """open_clip/tokenizer.py, loaded by path: its ``SimpleTokenizer`` and ``tokenize`` (77 tokens)."""
    return _load_by_path("_ch09_open_clip_tokenizer", open_clip_file("tokenizer.py"))


@functools.cache
def cn_clip_bert_tokenizer():
    """cn_clip's ``FullTokenizer`` on its shipped vocab.txt, from clip/bert_tokenizer.py loaded by path."""
    module = _load_by_path("_ch09_cn_clip_bert_tokenizer", cn_clip_file("clip/bert_tokenizer.py"))
    return module.FullTokenizer(vocab_file=str(cn_clip_file("clip/vocab.txt")))


@functools.cache
def cn_clip_tokenize():
    """cn_clip's own ``clip.utils.tokenize`` function (context length 52).

    ``cn_clip/clip/utils.py`` imports torchvision and the model at the top, so the module cannot be
    imported here; its ``tokenize`` function is taken out of the file with ``ast`` and run as
    written, over the ``FullTokenizer`` that ``cn_clip.clip`` builds (``_tokenizer``).
    """
    import typing

    import torch

    source = cn_clip_file("clip/utils.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "tokenize")
    namespace = {"torch": torch, "Union": typing.Union, "List": list, "_tokenizer": cn_clip_bert_tokenizer()}
    exec(compile(ast.Module(body=[node], type_ignores=[]), str(cn_clip_file("clip/utils.py")), "exec"), namespace)
    return namespace["tokenize"]


# ----------------------------------------------------------------------------- OpenAI CLIP ViT-B/32
def _byte_symbols() -> list[str]:
    """GPT-2 / CLIP byte-level alphabet: the 256 byte values as printable characters, in vocabulary order.

    Printable bytes (! to ~, inverted ! to not-sign, registered-sign to y-umlaut) stand for themselves;
    the other 68 are mapped, in byte order, onto code points 256, 257, ...
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("\xa1"), ord("\xac") + 1),
                 *range(ord("\xae"), ord("\xff") + 1)]
    rest = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(rest))]


@functools.cache
def clip_vocab_and_merges() -> tuple[dict[str, int], tuple[str, ...]]:
    """vocab.json and merges.txt of OpenAI CLIP, from bpe_simple_vocab_16e6.txt.gz (49,408 entries).

    Order: the 256 byte symbols, the same with ``</w>``, one entry per merge (lines 1..48,894 of
    the file; line 0 is a version header), then ``<|startoftext|>`` and ``<|endoftext|>``.
    """
    lines = gzip.open(open_clip_file("bpe_simple_vocab_16e6.txt.gz")).read().decode("utf-8").split("\n")
    merges = tuple(lines[1:1 + N_MERGES])
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(tokens)}
    assert len(vocab) == len(tokens) == 49408, len(vocab)
    return vocab, merges


def open_clip_config() -> dict:
    return json.loads(open_clip_file("model_configs/ViT-B-32.json").read_text())


def clip_config():
    """transformers' CLIPConfig at ViT-B/32's sizes, read from open_clip's ViT-B-32.json.

    The architecture numbers come from the json; the rest is what the published
    openai/clip-vit-base-patch32 config.json says: QuickGELU (OpenAI's weights were trained with
    it; open_clip names that variant ViT-B-32-quickgelu), 4x MLPs, 64-wide heads, LayerNorm eps
    1e-5, and the legacy text ids bos 0 / eos 2 / pad 1, which make transformers pool the text
    at the highest id, <|endoftext|>, as OpenAI's code does.
    """
    from transformers import CLIPConfig

    cfg = open_clip_config()
    text, vision = cfg["text_cfg"], cfg["vision_cfg"]
    return CLIPConfig(
        text_config=dict(vocab_size=text["vocab_size"], hidden_size=text["width"],
                         intermediate_size=4 * text["width"], num_hidden_layers=text["layers"],
                         num_attention_heads=text["heads"], max_position_embeddings=text["context_length"],
                         hidden_act="quick_gelu", layer_norm_eps=1e-5, bos_token_id=0, eos_token_id=2,
                         pad_token_id=1),
        vision_config=dict(image_size=vision["image_size"], patch_size=vision["patch_size"],
                           hidden_size=vision["width"], intermediate_size=4 * vision["width"],
                           num_hidden_layers=vision["layers"], num_attention_heads=vision["width"] // 64,
                           hidden_act="quick_gelu", layer_norm_eps=1e-5),
        projection_dim=cfg["embed_dim"], logit_scale_init_value=2.6592)


def clip_image_processor():
    """openai/clip-vit-base-patch32's preprocessor_config.json: short side 224, bicubic, centre crop 224."""
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(do_resize=True, size={"shortest_edge": 224}, resample=3, do_center_crop=True,
                              crop_size={"height": 224, "width": 224}, do_rescale=True, rescale_factor=1 / 255,
                              do_normalize=True, image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD),
                              do_convert_rgb=True)


def clip_tokenizer(folder: Path):
    """CLIPTokenizer on the converted vocab.json + merges.txt (written into ``folder``), 77 tokens."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab_and_merges()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return CLIPTokenizer(vocab=dict(vocab), merges=[tuple(m.split()) for m in merges], model_max_length=CLIP_CONTEXT)


def build_clip(out_dir: str | Path, seed: int = 0) -> Path:
    """A save_pretrained folder that loads as openai/clip-vit-base-patch32 does, random weights (~151 M)."""
    import torch
    from transformers import CLIPModel, CLIPProcessor

    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    CLIPModel(clip_config()).save_pretrained(out_dir)
    CLIPProcessor(image_processor=clip_image_processor(), tokenizer=clip_tokenizer(out_dir)).save_pretrained(out_dir)
    return out_dir


# ----------------------------------------------------------------------------- Chinese-CLIP ViT-B/16
def cn_clip_configs() -> tuple[dict, dict]:
    folder = "clip/model_configs/"
    vision = json.loads(cn_clip_file(folder + "ViT-B-16.json").read_text())
    text = json.loads(cn_clip_file(folder + "RoBERTa-wwm-ext-base-chinese.json").read_text())
    return vision, text


def chinese_clip_config():
    """ChineseCLIPConfig at the sizes of cn_clip's ViT-B-16.json and RoBERTa-wwm-ext-base-chinese.json.

    cn_clip's ViT uses 64-wide heads and 4x MLPs with QuickGELU, as OpenAI's, and its text tower is
    a BERT with the json's numbers; pad id 0 ([PAD]) as in the published config.
    """
    from transformers import ChineseCLIPConfig

    vision, text = cn_clip_configs()
    width = vision["vision_width"]
    return ChineseCLIPConfig(
        text_config=dict(vocab_size=text["vocab_size"], hidden_size=text["text_hidden_size"],
                         intermediate_size=text["text_intermediate_size"],
                         num_hidden_layers=text["text_num_hidden_layers"],
                         num_attention_heads=text["text_num_attention_heads"],
                         max_position_embeddings=text["text_max_position_embeddings"],
                         type_vocab_size=text["text_type_vocab_size"], hidden_act=text["text_hidden_act"],
                         hidden_dropout_prob=text["text_hidden_dropout_prob"],
                         attention_probs_dropout_prob=text["text_attention_probs_dropout_prob"],
                         initializer_range=text["text_initializer_range"], layer_norm_eps=1e-12, pad_token_id=0),
        vision_config=dict(image_size=vision["image_resolution"], patch_size=vision["vision_patch_size"],
                           hidden_size=width, intermediate_size=4 * width, num_hidden_layers=vision["vision_layers"],
                           num_attention_heads=width // 64, hidden_act="quick_gelu", layer_norm_eps=1e-5),
        projection_dim=vision["embed_dim"], logit_scale_init_value=2.6592)


def chinese_clip_image_processor():
    """OFA-Sys/chinese-clip-vit-base-patch16's preprocessor_config.json: a bicubic resize of the whole
    image to 224 x 224 (no aspect-preserving resize, no centre crop), CLIP's mean and std.

    That is cn_clip's own ``image_transform``: ``Resize((224, 224), BICUBIC)``, ToTensor, Normalize.
    """
    from transformers import ChineseCLIPImageProcessor

    return ChineseCLIPImageProcessor(do_resize=True, size={"height": 224, "width": 224}, resample=3,
                                     do_center_crop=False, crop_size={"height": 224, "width": 224},
                                     do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                                     image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD), do_convert_rgb=True)


def chinese_clip_tokenizer():
    """BertTokenizer on cn_clip's vocab.txt (21,128 entries), lower-casing, CJK characters split."""
    from transformers import BertTokenizer

    return BertTokenizer(vocab=str(cn_clip_file("clip/vocab.txt")), do_lower_case=True,
                         tokenize_chinese_chars=True)


def build_chinese_clip(out_dir: str | Path, seed: int = 0) -> Path:
    """A save_pretrained folder that loads as OFA-Sys/chinese-clip-vit-base-patch16 does, random weights (~188 M)."""
    import torch
    from transformers import ChineseCLIPModel, ChineseCLIPProcessor

    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    ChineseCLIPModel(chinese_clip_config()).save_pretrained(out_dir)
    ChineseCLIPProcessor(image_processor=chinese_clip_image_processor(),
                         tokenizer=chinese_clip_tokenizer()).save_pretrained(out_dir)
    return out_dir
