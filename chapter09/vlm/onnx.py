"""The tiny VLM on ONNX Runtime: two exported graphs and a greedy decoding loop in NumPy.

    onnx_model = export(model, "runs/tiny_vlm_onnx")   # model: a chapter09.vlm.tiny.TinyVLM
    onnx_model.generate([image])                        # same captions as model.generate, no torch at run time

``generate`` in transformers is a Python loop around the model, so it cannot be
exported whole. What can be exported are the two graphs it calls: the image encoder
(vision tower + projector: pixels -> visual tokens) and one step of the language
model (embeddings -> next-token logits). The loop that joins them is a few lines of
NumPy below. The LM graph has no key/value cache: each step re-reads the whole
sequence, which is cheap at the toy world's 17 visual tokens + ~15 words, and would
not be for long prompts.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

ENCODER_FILE = "image_encoder.onnx"
LM_FILE = "lm_step.onnx"


class _ImageEncoder(torch.nn.Module):
    def __init__(self, vlm):
        super().__init__()
        self.vlm = vlm

    def forward(self, pixel_values):
        return self.vlm.visual_tokens(self.vlm.image_features(pixel_values))


class _LanguageModelStep(torch.nn.Module):
    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, inputs_embeds, attention_mask):
        return self.lm(inputs_embeds=inputs_embeds, attention_mask=attention_mask, use_cache=False).logits[:, -1]


def export(model, folder, opset: int = 17) -> "OnnxTinyVLM":
    """Export ``model`` (fp32 TinyVLM) to ``folder`` and open it with ONNX Runtime."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = model.float().eval()
    size = model.image_processor.crop_size
    pixels = torch.zeros(2, 3, size["height"], size["width"])
    width = model.lm.config.hidden_size
    embeds, mask = torch.zeros(2, 20, width), torch.ones(2, 20, dtype=torch.long)
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the exporter warns about every Python branch it traces through
        # The TorchScript-based exporter (dynamo=False) handles these transformers models without onnxscript.
        torch.onnx.export(_ImageEncoder(model), (pixels,), folder / ENCODER_FILE, opset_version=opset,
                          input_names=["pixel_values"], output_names=["visual_tokens"],
                          dynamic_axes={"pixel_values": {0: "batch"}, "visual_tokens": {0: "batch"}}, dynamo=False)
        torch.onnx.export(_LanguageModelStep(model.lm), (embeds, mask), folder / LM_FILE, opset_version=opset,
                          input_names=["inputs_embeds", "attention_mask"], output_names=["logits"],
                          dynamic_axes={"inputs_embeds": {0: "batch", 1: "length"},
                                        "attention_mask": {0: "batch", 1: "length"}, "logits": {0: "batch"}},
                          dynamo=False)
    return OnnxTinyVLM(folder, model)


class OnnxTinyVLM:
    """Captions with ONNX Runtime; the tokenizer, image processor and embedding table come from the torch model."""

    def __init__(self, folder, model, threads: int | None = None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.folder = Path(folder)
        self.encoder = onnxruntime.InferenceSession(str(self.folder / ENCODER_FILE), options,
                                                    providers=["CPUExecutionProvider"])
        self.lm = onnxruntime.InferenceSession(str(self.folder / LM_FILE), options, providers=["CPUExecutionProvider"])
        self.tokenizer, self.image_processor = model.tokenizer, model.image_processor
        self.embedding = model.lm.get_input_embeddings().weight.detach().float().numpy()
        self.eos = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else self.tokenizer.sep_token_id
        self.pad = self.tokenizer.pad_token_id

    def file_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.folder.glob("*.onnx*"))

    def generate(self, images, max_new_tokens: int = 40) -> list[str]:
        from ..captioning import images_to_rgb
        from ..language import tidy_text

        pixels = self.image_processor(images=images_to_rgb(images), return_tensors="np")["pixel_values"]
        sequence = self.encoder.run(None, {"pixel_values": pixels.astype(np.float32)})[0]
        batch = sequence.shape[0]
        tokens = np.full((batch, 0), self.pad, dtype=np.int64)
        finished = np.zeros(batch, dtype=bool)
        for _ in range(max_new_tokens):
            mask = np.ones(sequence.shape[:2], dtype=np.int64)
            logits = self.lm.run(None, {"inputs_embeds": sequence, "attention_mask": mask})[0]
            next_token = np.where(finished, self.pad, logits.argmax(-1))  # greedy, like do_sample=False
            tokens = np.concatenate([tokens, next_token[:, None]], axis=1)
            finished |= next_token == self.eos
            if finished.all():
                break
            sequence = np.concatenate([sequence, self.embedding[next_token][:, None, :]], axis=1)
        return [tidy_text(t) for t in self.tokenizer.batch_decode(tokens.tolist(), skip_special_tokens=True)]
