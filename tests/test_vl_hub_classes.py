"""The real hub classes of 9.4, built tiny and random, saved with matching processors and run
through the chapter's own loading, preprocessing, dtype and generate code."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from chapter09.config import model_spec
from chapter09.models import ResolvedModel, Settings


def _tokenizer():
    from chapter09.toyworld.corpus import toy_corpus
    from chapter09.toyworld.tokenizers import blip_word_tokenizer

    return blip_word_tokenizer(toy_corpus(50))


@pytest.fixture(scope="module")
def tokenizer():
    return _tokenizer()


@pytest.fixture
def image():
    return Image.new("RGB", (40, 30), (200, 30, 30))


def _save_blip(model_class, tokenizer, folder):
    from transformers import BlipProcessor

    from chapter09.toyworld.train_blip import blip_image_processor, tiny_blip_config

    torch.manual_seed(0)
    model = model_class(tiny_blip_config(tokenizer, layers=1, hidden=32)).eval()
    model.save_pretrained(folder)
    BlipProcessor(image_processor=blip_image_processor(), tokenizer=tokenizer).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_captioner_code_path_on_a_random_blip(tmp_path, tokenizer, image, dtype):
    from transformers import BlipForConditionalGeneration

    from chapter09.captioning import Captioner

    folder = _save_blip(BlipForConditionalGeneration, tokenizer, tmp_path)
    resolved = ResolvedModel("captioner", model_spec("captioner"), str(folder), "local-dir")
    captioner = Captioner(Settings(device="cpu", dtype=dtype), resolved=resolved)
    assert captioner.model.dtype == getattr(torch, dtype)
    captions = captioner.caption([image, image], lang="en", max_new_tokens=5)
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)
    assert captioner.caption([], lang="zh") == []
    with pytest.raises(ValueError):
        captioner.caption([image], lang="fr")


def test_real_route_translates_chinese(tmp_path, image):
    """A checkpoint without language tokens (the real BLIP) writes English, and Chinese comes from the translator."""
    from transformers import BertTokenizer, BlipForConditionalGeneration

    from chapter09.captioning import Captioner

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "circle"])}
    folder = _save_blip(BlipForConditionalGeneration, BertTokenizer(vocab=vocab), tmp_path)
    resolved = ResolvedModel("captioner", model_spec("captioner"), str(folder), "local-dir")
    captioner = Captioner(Settings(device="cpu", dtype="float32"), resolved=resolved)
    assert not captioner.bilingual

    class RecordingTranslator:
        def translate(self, texts):
            self.seen = list(texts)
            return [f"译:{t}" for t in texts]

    recorder = RecordingTranslator()
    captioner.translator = lambda: recorder  # stands in for the opus-mt en->zh model
    english = captioner.caption([image], "en", max_new_tokens=4)
    chinese = captioner.caption([image], "zh", max_new_tokens=4)
    assert recorder.seen == english and chinese == [f"译:{english[0]}"]


def test_blip_vqa_code_path_on_a_random_model(tmp_path, tokenizer, image):
    from transformers import BlipForQuestionAnswering

    from chapter09.vqa import BlipAnswerer, ChatSession

    folder = _save_blip(BlipForQuestionAnswering, tokenizer, tmp_path)
    resolved = ResolvedModel("vqa", model_spec("vqa"), str(folder), "local-dir")
    answerer = BlipAnswerer(Settings(device="cpu", dtype="bfloat16"), resolved=resolved)
    answers = answerer.answer_batch([image, image], ["what colour is the circle?", "how many shapes are there?"],
                                    max_new_tokens=3)
    assert len(answers) == 2
    session = ChatSession(answerer, image)
    session.ask("what colour is the circle?")
    assert len(session.history) == 1
    with pytest.raises(ValueError):
        session.ask("   ")


def _save_blip2(folder, tokenizer, num_query_tokens=4, processor_knows_queries=True):
    from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor

    from chapter09.toyworld.train_blip import blip_image_processor

    processor = Blip2Processor(image_processor=blip_image_processor(), tokenizer=tokenizer,
                               num_query_tokens=num_query_tokens if processor_knows_queries else None)
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    config = Blip2Config(
        vision_config=dict(image_size=96, patch_size=16, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=1, num_attention_heads=2),
        qformer_config=dict(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=64, encoder_hidden_size=32),
        text_config=dict(model_type="opt", vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                         ffn_dim=64, num_attention_heads=2, word_embed_proj_dim=32, max_position_embeddings=128,
                         bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        num_query_tokens=num_query_tokens, image_token_index=image_token_id if processor_knows_queries else None,
    )
    torch.manual_seed(0)
    Blip2ForConditionalGeneration(config).eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("processor_knows_queries", [True, False])
def test_blip2_code_path_on_a_random_model(tmp_path, tokenizer, image, processor_knows_queries):
    """Both checkpoint styles: image tokens expanded by the processor, or filled in from the model config."""
    from chapter09.vqa import Blip2Answerer, ChatSession

    folder = _save_blip2(tmp_path, tokenizer, processor_knows_queries=processor_knows_queries)
    resolved = ResolvedModel("blip2", model_spec("blip2"), str(folder), "local-dir")
    answerer = Blip2Answerer(resolved, Settings(device="cpu", dtype="bfloat16"))
    assert answerer.processor.num_query_tokens == answerer.model.config.num_query_tokens == 4
    inputs = answerer.processor(images=[image], text=["Question: what? Answer:"], return_tensors="pt")
    image_id = answerer.model.config.image_token_index
    assert int((inputs["input_ids"] == image_id).sum()) == 4  # one slot per query token
    assert len(answerer.caption([image], max_new_tokens=3)) == 1
    session = ChatSession(answerer, image)
    session.ask("what colour is it?")
    assert session.prompt_for("and its shape?").startswith("Question: what colour is it? Answer:")


def test_route_falls_back_to_blip_when_blip2_does_not_fit(monkeypatch, tmp_path, tokenizer):
    from chapter09 import vqa

    folder = _save_blip2(tmp_path, tokenizer)
    monkeypatch.setenv("CH09_MODEL_DIR_BLIP2", str(folder))
    monkeypatch.setattr(vqa, "available_memory_bytes", lambda device: 1000)
    route = vqa.choose_route(Settings("auto", device="cpu", dtype="bfloat16"))
    assert route.name == "blip" and "free" in route.reason
    monkeypatch.setattr(vqa, "available_memory_bytes", lambda device: 2**40)
    assert vqa.choose_route(Settings("auto", device="cpu", dtype="bfloat16")).name == "blip2"


def test_build_prompt_keeps_the_last_turns():
    from chapter09.vqa import build_prompt

    history = [("q1", "a1"), ("q2", "a2"), ("q3", "a3")]
    assert build_prompt(history, "q4", max_turns=2) == "Question: q2 Answer: a2. Question: q3 Answer: a3. Question: q4 Answer:"
    assert build_prompt([], "q") == "Question: q Answer:"


def _save_smolvlm(folder, tokenizer):
    """A tiny random SmolVLM saved like the hub checkpoint (processor_class SmolVLMProcessor)."""
    import json

    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil
    from transformers.models.smolvlm.processing_smolvlm import DEFAULT_CHAT_TEMPLATE

    from chapter09.vlm.smolvlm import image_only_smolvlm_processor

    tokenizer.add_special_tokens({"additional_special_tokens": [
        "<fake_token_around_image>", "<image>", "<global-img>", "<end_of_utterance>", "<row_1_col_1>", "<row_1_col_2>",
        "<row_2_col_1>", "<row_2_col_2>"]})
    image_processor = SmolVLMImageProcessorPil(size={"longest_edge": 128}, max_image_size={"longest_edge": 64})
    processor = image_only_smolvlm_processor()(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4,
                                               chat_template=DEFAULT_CHAT_TEMPLATE)
    config = SmolVLMConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=64, patch_size=16),
        text_config=dict(model_type="llama", vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        scale_factor=2, image_token_id=tokenizer.convert_tokens_to_ids("<image>"))
    torch.manual_seed(0)
    SmolVLMForConditionalGeneration(config).eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    saved = folder / "processor_config.json"
    saved.write_text(json.dumps({**json.loads(saved.read_text()), "processor_class": "SmolVLMProcessor"}))
    (folder / "video_preprocessor_config.json").write_text(json.dumps(
        {"video_processor_type": "SmolVLMVideoProcessor", "processor_class": "SmolVLMProcessor"}))
    return folder


def test_small_vlm_code_path_on_a_random_smolvlm(tmp_path, image):
    """SmolVLM through SmallVLM: chat template, image tokens, generate; without torchvision, via the image-only processor."""
    from chapter09.vlm.smolvlm import SmallVLM

    folder = _save_smolvlm(tmp_path, _tokenizer())
    vlm = SmallVLM(Settings(device="cpu", dtype="float32"),
                   resolved=ResolvedModel("small_vlm", model_spec("small_vlm"), str(folder), "local-dir"))
    prompt = vlm.prompt("describe the image.")
    assert "<image>" in prompt and prompt.rstrip().endswith("Assistant:")
    inputs = vlm.processor(text=[prompt], images=[[image]], return_tensors="pt")
    image_slots = int((inputs["input_ids"] == vlm.model.config.image_token_id).sum())
    assert image_slots == 4 * inputs["pixel_values"].shape[1]  # image_seq_len tokens per tile (tiles + global view)
    answers = vlm.ask([image, image], "describe the image.", max_new_tokens=3)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
