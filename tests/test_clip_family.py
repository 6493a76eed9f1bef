"""`--clip-model`: any CLIP-family checkpoint serves role clip, read by its own conventions (``clip_family``).

Each class (CLIPModel, SiglipModel, ChineseCLIPModel, AltCLIPModel) is built here as a tiny random model
(2 layers, width 32, 32-px images) with a processor whose tokenizer is a toy twin's (CLIP's BPE for CLIP and
SigLIP, Chinese-CLIP's WordPiece for Chinese-CLIP and AltCLIP), saved to a folder, and loaded the way a user's
checkpoint is: ``Settings(clip_model=folder)``. The model's own forward pass is the reference for the scores.
"""
import json

import numpy as np
import pytest
import real_artifacts
import torch
import transformers as tf
from PIL import Image

from chapter09.capstone.__main__ import build_parser
from chapter09.capstone.__main__ import main as capstone
from chapter09.capstone.search.index_model import IndexModelMismatchError, index_clip_settings
from chapter09.capstone.store.database import Store
from chapter09.capstone.store.tables import EncoderIdentity
from chapter09.clip import ClipEncoder
from chapter09.clip_family import SIGLIP_CONTEXT, family_of
from chapter09.config import TOY_MODELS_DIR
from chapter09.errors import UsageError
from chapter09.models import ModelUnavailableError, Settings, resolve
from chapter09.toyworld import write_dataset

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::UserWarning")]

WIDTH, SIDE, PROJECTION = 32, 32, 24
CLASSES = ("CLIPModel", "SiglipModel", "ChineseCLIPModel", "AltCLIPModel")


def _vision():
    return dict(hidden_size=WIDTH, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                image_size=SIDE, patch_size=8)


def _text(tokenizer, positions: int, **extra):
    special = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
               "pad_token_id": tokenizer.pad_token_id}
    return dict(hidden_size=WIDTH, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                vocab_size=len(tokenizer), max_position_embeddings=positions,
                **{k: v for k, v in special.items() if v is not None}, **extra)


def build_tiny(model_class: str, folder, bpe, wordpiece):
    """A random ``model_class`` and its processor (``bpe``/``wordpiece``: toy twins' tokenizers), saved to
    ``folder`` with save_pretrained."""
    torch.manual_seed(0)
    square = {"height": SIDE, "width": SIDE}
    if model_class == "CLIPModel":
        model = tf.CLIPModel(tf.CLIPConfig(text_config=_text(bpe, 77), vision_config=_vision(),
                                           projection_dim=PROJECTION))
        processor = tf.CLIPProcessor(tf.CLIPImageProcessor(size={"shortest_edge": SIDE}, crop_size=square), bpe)
    elif model_class == "SiglipModel":
        model = tf.SiglipModel(tf.SiglipConfig(text_config=_text(bpe, SIGLIP_CONTEXT), vision_config=_vision()))
        processor = tf.SiglipProcessor(tf.SiglipImageProcessor(size=square), bpe)
    elif model_class == "ChineseCLIPModel":
        model = tf.ChineseCLIPModel(tf.ChineseCLIPConfig(text_config=_text(wordpiece, 64), vision_config=_vision(),
                                                         projection_dim=PROJECTION))
        processor = tf.ChineseCLIPProcessor(tf.ChineseCLIPImageProcessor(size=square, crop_size=square), wordpiece)
    else:
        model = tf.AltCLIPModel(tf.AltCLIPConfig(text_config=_text(wordpiece, 66, project_dim=WIDTH),
                                                 vision_config=_vision(), projection_dim=PROJECTION))
        processor = tf.AltCLIPProcessor(tf.CLIPImageProcessor(size={"shortest_edge": SIDE}, crop_size=square),
                                        wordpiece)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip_family")
    bpe = tf.AutoTokenizer.from_pretrained(TOY_MODELS_DIR / "clip")
    wordpiece = tf.AutoTokenizer.from_pretrained(TOY_MODELS_DIR / "chinese_clip")
    return {name: build_tiny(name, root / name, bpe, wordpiece) for name in CLASSES}


@pytest.fixture(autouse=True)
def torch_fp32(monkeypatch):
    monkeypatch.setenv("CH09_FP32_RUNTIME", "torch")  # no ONNX export of each tiny model: seconds saved


def chosen(folder) -> Settings:
    return Settings("auto", device="cpu", precision="fp32", clip_model=str(folder))


def scenes():
    return [Image.new("RGB", (48, 32), (230, 20, 20)), Image.new("RGB", (32, 32), (20, 20, 230)),
            Image.new("RGB", (40, 40), (20, 200, 20))]


TEXTS = ["a red circle", "a blue square", "a green triangle"]


@pytest.mark.parametrize("model_class", CLASSES)
def test_encoder_loads_any_family_and_matches_the_models_own_scores(tiny, model_class):
    encoder = ClipEncoder("clip", chosen(tiny[model_class]))
    assert encoder.resolved.source == "local-dir" and type(encoder.torch_model).__name__ == model_class
    images, texts = encoder.encode_images(scenes()), encoder.encode_texts(TEXTS)
    expected_dim = WIDTH if model_class == "SiglipModel" else PROJECTION  # SigLIP: no projection_dim
    assert images.shape == (3, expected_dim) and texts.shape == (3, expected_dim) and encoder.dim == expected_dim
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)

    ours = encoder.match_scores(images, texts)
    pixels = encoder.processor.image_processor(images=scenes(), return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        logits = encoder.torch_model(pixel_values=pixels, **encoder.tokenize(TEXTS)).logits_per_image
    theirs = torch.sigmoid(logits) if model_class == "SiglipModel" else logits.softmax(dim=-1)
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-4)
    if model_class == "SiglipModel":  # independent per pair: they need not sum to one
        assert np.all((ours > 0) & (ours < 1)) and np.abs(ours.sum(axis=1) - 1).max() > 0.05
    else:
        np.testing.assert_allclose(ours.sum(axis=1), 1, atol=1e-6)


def test_siglip_pads_to_its_context_and_lowercases(tiny):
    encoder = ClipEncoder("clip", chosen(tiny["SiglipModel"]))
    tokens = encoder.tokenize(["A Red Circle", "a"])
    assert tokens["input_ids"].shape == (2, SIGLIP_CONTEXT)  # padded to 64 as trained, not to the longest
    assert torch.equal(tokens["input_ids"][0], encoder.tokenize(["a red circle"])["input_ids"][0])
    clip = ClipEncoder("clip", chosen(tiny["CLIPModel"]))
    assert clip.tokenize(["a red circle", "a"])["input_ids"].shape[1] < SIGLIP_CONTEXT  # CLIP: the longest


def test_chinese_clip_processor_squashes_rather_than_crops():
    """cn_clip resizes the whole image to a square (no crop); transformers' processor with the published
    checkpoint's preprocessor_config (``real_artifacts``) does the same, so ClipEncoder adds nothing: the red
    left tenth of a 2:1 picture survives in the first pixel columns, where a centre crop would cut it."""
    processor = real_artifacts.chinese_clip_image_processor()
    picture = Image.new("RGB", (200, 100), (20, 20, 230))
    picture.paste((230, 20, 20), (0, 0, 20, 100))
    pixels = processor(images=[picture], return_tensors="pt")["pixel_values"][0]
    assert pixels.shape[-2:] == (224, 224)
    assert pixels[0, :, :10].mean() > pixels[2, :, :10].mean()  # red over blue at the left edge
    assert pixels[2, :, -10:].mean() > pixels[0, :, -10:].mean()  # and blue at the right


@pytest.mark.parametrize("argv", [["index", "lib", "--index", "idx"], ["search", "--index", "idx"],
                                  ["serve", "--index", "idx"], ["match", "photo.jpg", "a dog"]])
def test_clip_model_flag_reaches_settings(argv):
    args = build_parser().parse_args([*argv, "--clip-model", "google/siglip-base-patch16-224"])
    assert Settings.from_args(args).clip_model == "google/siglip-base-patch16-224"
    assert Settings.from_args(build_parser().parse_args(argv)).clip_model is None


def test_refusals_say_what_to_do(tmp_path):
    with pytest.raises(UsageError, match="--models toy"):
        Settings("toy", clip_model="google/siglip-base-patch16-224")
    with pytest.raises(UsageError, match="empty"):
        Settings("auto", clip_model=" ")
    with pytest.raises(ModelUnavailableError, match="no such folder"):
        resolve("clip", Settings("auto", clip_model=str(tmp_path / "missing")))
    with pytest.raises(UsageError, match="SigLIP 2"):
        family_of(tf.Siglip2Config())
    with pytest.raises(UsageError, match="bert"):
        family_of(tf.BertConfig())


def _search(capsys, index, *extra):
    code = capstone(["search", "--index", str(index), "--text", "a red circle", "--k", "4", "--json", *extra])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 else None), captured.err


def test_index_and_search_with_siglip_through_the_command_line(tiny, tmp_path, capsys):
    library = write_dataset(tmp_path / "library", n=6, seed=3, split="heldout")
    index = tmp_path / "index"
    siglip = tiny["SiglipModel"]
    assert capstone(["index", str(library), "--index", str(index), "--clip-model", str(siglip), "--precision", "fp32",
                     "--workers", "0", "--no-progress", "--json", "--models", "auto"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["added"] == 6
    identity = Store.open(index).identity("clip")
    assert identity.location == str(siglip.resolve()) and identity.chosen and identity.dim == WIDTH

    code, result, _err = _search(capsys, index, "--models", "auto")  # no --clip-model: the index's model reads
    assert code == 0 and len(result["hits"]) == 4
    encoder = ClipEncoder("clip", chosen(siglip))
    paths = sorted(p.relative_to(library).as_posix() for p in (library / "images").iterdir())
    cosines = encoder.encode_images([library / p for p in paths]) @ encoder.encode_texts(["a red circle"])[0]
    by_path = dict(zip(paths, cosines))
    for hit in result["hits"]:  # the scores are SigLIP's cosines (stored as float16)
        assert hit["score"] == pytest.approx(by_path[hit["path"]], abs=2e-3)
    assert [h["path"] for h in result["hits"]][0] == max(by_path, key=by_path.get)

    code, _result, err = _search(capsys, index, "--models", "auto", "--clip-model", str(tiny["CLIPModel"]))
    assert code == 2 and str(siglip.resolve()) in err and str(tiny["CLIPModel"].resolve()) in err
    code, _result, err = _search(capsys, index, "--models", "toy")
    assert code == 2 and "--clip-model" in err


@pytest.mark.slow
@pytest.mark.parametrize("model_class", ["SiglipModel", "AltCLIPModel"])
def test_onnx_runtime_fp32_agrees_with_torch(tiny, model_class, monkeypatch, tmp_path):
    """A chosen checkpoint is not a toy, so fp32 on a CPU runs on ONNX Runtime (``onnx_runtime.fp32_runtime``):
    the exported towers must give torch's vectors for the families the CLIP export was not written for."""
    pytest.importorskip("onnxruntime")
    monkeypatch.delenv("CH09_FP32_RUNTIME")
    monkeypatch.setenv("CH09_CACHE", str(tmp_path))
    ort = ClipEncoder("clip", chosen(tiny[model_class]))
    assert ort.runtime == "onnxruntime"
    monkeypatch.setenv("CH09_FP32_RUNTIME", "torch")
    reference = ClipEncoder("clip", chosen(tiny[model_class]))
    assert reference.runtime == "torch"
    for ours, theirs in ((ort.encode_images(scenes()), reference.encode_images(scenes())),
                         (ort.encode_texts(TEXTS), reference.encode_texts(TEXTS))):
        assert np.min(np.sum(ours * theirs, axis=1)) > 0.9999


class _Store:
    """What ``index_clip_settings`` reads of a store: its roles and the clip table's identity."""

    def __init__(self, identity):
        self.location, self.roles, self._identity = "/tmp/idx", ["clip"], identity

    def identity(self, role):
        return self._identity


def test_index_model_rule_without_a_command_line(tiny, tmp_path):
    default = Settings("auto", device="cpu")
    built_default = EncoderIdentity("clip", "/some/default/clip", "fp32", 512)
    assert index_clip_settings(_Store(built_default), default) is default  # nothing chosen: resolved as before
    siglip = str(tiny["SiglipModel"].resolve())
    built_chosen = EncoderIdentity("clip", siglip, "fp32", WIDTH, chosen=True)
    assert index_clip_settings(_Store(built_chosen), default).clip_model == siglip
    with pytest.raises(IndexModelMismatchError, match="/some/default/clip"):
        index_clip_settings(_Store(built_default), chosen(tiny["SiglipModel"]))
    gone = EncoderIdentity("clip", str(tmp_path / "deleted"), "fp32", WIDTH, chosen=True)
    with pytest.raises(IndexModelMismatchError, match="no longer there"):
        index_clip_settings(_Store(gone), default)


@pytest.mark.slow
def test_a_chosen_model_indexes_the_same_on_the_ray_engine(tiny, tmp_path, capsys):
    """``--clip-model`` on Ray: the actors load the chosen SigLIP checkpoint, so the rows equal the local engine's."""
    library = write_dataset(tmp_path / "library", n=6, seed=5, split="heldout")
    siglip = str(tiny["SiglipModel"])
    vectors = {}
    for engine in ("local", "ray"):
        index = tmp_path / f"index-{engine}"
        assert capstone(["index", str(library), "--index", str(index), "--clip-model", siglip, "--precision", "fp32",
                         "--workers", "0", "--no-progress", "--json", "--models", "auto", "--engine", engine,
                         *(["--actors", "1"] if engine == "ray" else [])]) == 0
        assert json.loads(capsys.readouterr().out)["added"] == 6
        store = Store.open(index)
        assert store.identity("clip").location == str(tiny["SiglipModel"].resolve())
        rows = store.images("clip").table.to_arrow().to_pylist()
        vectors[engine] = {row["path"]: np.asarray(row["vector"], np.float32) for row in rows}
    assert vectors["ray"].keys() == vectors["local"].keys()
    for path, vector in vectors["local"].items():
        assert float(vector @ vectors["ray"][path]) > 0.999, path
