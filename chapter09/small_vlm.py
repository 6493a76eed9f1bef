"""A small instruction-following VLM (SmolVLM-256M-Instruct) asked in chat form, on CPU.

    vlm = SmallVLM()                         # needs the real weights (hub or a local folder)
    vlm.ask([image], "Describe the image briefly.")
"""
from __future__ import annotations

from collections.abc import Sequence

from .captioning import images_to_rgb
from .models import ResolvedModel, announce, pick_device, pick_dtype, resolve


class SmallVLM:
    """``AutoModelForImageTextToText`` + its processor's chat template: one image, one instruction."""

    def __init__(self, models: str | None = None, device: str | None = None, dtype: str | None = None,
                 resolved: ResolvedModel | None = None):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from .clip_utils import quiet_transformers

        quiet_transformers()
        self.resolved = resolved or resolve("small_vlm", models)
        announce(self.resolved)
        self.device = pick_device(device)
        self.dtype = pick_dtype(self.device, dtype)
        self.processor = AutoProcessor.from_pretrained(self.resolved.location)
        self.model = AutoModelForImageTextToText.from_pretrained(
            self.resolved.location, dtype=self.dtype).to(self.device).eval()

    def prompt(self, instruction: str) -> str:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True)

    def ask(self, images: Sequence, instruction: str, max_new_tokens: int = 40) -> list[str]:
        import torch

        answers = []
        for image in images_to_rgb(images):
            inputs = self.processor(text=[self.prompt(instruction)], images=[[image]], return_tensors="pt")
            inputs = inputs.to(self.device)
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
            with torch.inference_mode():
                out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
            new_tokens = out[:, inputs["input_ids"].shape[1]:]  # keep only the reply
            answers.append(self.processor.batch_decode(new_tokens, skip_special_tokens=True)[0].strip())
        return answers
