"""The build-your-own VLM: training lowers the loss, saving round-trips, bad captions.json is refused clearly."""
from __future__ import annotations

import pytest
import torch

from chapter09 import config
from chapter09.toyworld import generate_scenes
from chapter09.vlm import tiny as tiny_vlm

# Measured 0.825 on these 120 held-out scenes for the committed toy VLM (1500 steps on 3000 toy
# captions, vision frozen, on the toy CLIP's final tower; 0.708 on the tower before its
# shape-group phase, 0.400 on the 16-px one); the floor sits under it so a regression shows.
# Still below the captioner's 0.98: see chapter09/README.md, known gaps.
TINY_VLM_MIN_ACCURACY = 0.70


@pytest.fixture(scope="module")
def random_vision(tmp_path_factory):
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    folder = tmp_path_factory.mktemp("vision")
    torch.manual_seed(0)
    CLIPVisionModel(CLIPVisionConfig(image_size=64, patch_size=16, hidden_size=64, intermediate_size=128,
                                     num_hidden_layers=1, num_attention_heads=2)).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64}).save_pretrained(folder)
    return str(folder)


def test_training_lowers_the_loss_and_round_trips(tmp_path, random_vision):
    captions_json = tiny_vlm.write_toy_captions(tmp_path / "data", 64, 0, "train")
    images, captions = tiny_vlm.read_captions(captions_json)
    model = tiny_vlm.build(vision=random_vision, lm="toy")
    model.freeze(vision=True, train_last_lm_layers=1)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert any(n.startswith("vision.") for n in frozen) and any("layers.0." in n for n in frozen)
    assert not any("layers.1." in n for n in frozen)
    model.freeze(vision=True, train_last_lm_layers=-1)  # a later call undoes an earlier one: the whole LM trains
    assert all(p.requires_grad for p in model.lm.parameters()) and not any(p.requires_grad for p in model.vision.parameters())
    history = tiny_vlm.train(model, images, captions, steps=60, batch_size=16, log_every=0)
    assert sum(history[-5:]) / 5 < 0.8 * sum(history[:5]) / 5
    loaded = tiny_vlm.load(model.save(tmp_path / "vlm"))
    assert loaded.generate(images[:2], max_new_tokens=6) == model.generate(images[:2], max_new_tokens=6)


@pytest.mark.parametrize("content", ['{"image": "x.png"}', "[]", '[{"image": "missing.png", "caption": "a"}]', "not json"])
def test_bad_captions_json_gets_a_clear_error(tmp_path, content):
    path = tmp_path / "captions.json"
    path.write_text(content)
    with pytest.raises(ValueError) as error:  # library code raises; the command line turns it into exit code 2
        tiny_vlm.read_captions(path)
    assert "captions.json" in str(error.value)



def test_committed_toy_vlm_on_heldout_scenes():
    from chapter09.captioning import names_every_object

    model = tiny_vlm.load(config.TOY_MODELS_DIR / "tiny_vlm")
    scenes = generate_scenes(120, config.TOY_HELDOUT_SEED + 2, "heldout")
    captions = model.generate([s.render() for s in scenes])
    accuracy = sum(names_every_object(c, s, "en") for c, s in zip(captions, scenes)) / len(scenes)
    print(f"tiny VLM held-out caption accuracy (every object's colour and shape): {accuracy:.3f}")
    assert accuracy >= TINY_VLM_MIN_ACCURACY


def test_onnx_runtime_reproduces_the_torch_captions(tmp_path):
    """The exported image encoder + LM step, joined by the NumPy greedy loop, write the same captions as generate()."""
    from chapter09.vlm import onnx as onnx_vlm

    model = tiny_vlm.load(config.TOY_MODELS_DIR / "tiny_vlm")
    onnx_model = onnx_vlm.export(model, tmp_path / "onnx")
    images = [s.render() for s in generate_scenes(12, config.TOY_HELDOUT_SEED + 3, "heldout")]
    assert onnx_model.generate(images) == model.generate(images)
    assert onnx_model.file_bytes() > 0.9 * sum(p.numel() * 4 for p in model.parameters())  # fp32 weights inside
