"""A small instruction-following VLM (SmolVLM-256M-Instruct) asked in chat form, on CPU.

    vlm = SmallVLM()                         # needs the real weights (hub or a local folder)
    vlm.ask([image], "Describe the image briefly.")
"""
from __future__ import annotations

from collections.abc import Sequence

from ..captioning import images_to_rgb
from ..models import ResolvedModel, Settings, announce, pick_device, pick_dtype, quiet_loading, resolve


def load_processor(location: str):
    """The checkpoint's processor; for SmolVLM without torchvision, its image-only half.

    transformers builds SmolVLM's processor with a *video* processor that needs torchvision,
    and torchvision from PyPI does not work beside this chapter's CPU torch. Images need
    only the image processor and the tokenizer, so we load those and leave video out.
    """
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(location)
    except (ImportError, OSError, AttributeError, TypeError, ValueError) as error:
        from transformers import AutoConfig

        if AutoConfig.from_pretrained(location).model_type not in ("smolvlm", "idefics3"):
            raise
        print(f"[small_vlm] the full processor cannot be built here ({type(error).__name__}: "
              f"{str(error).strip().splitlines()[0][:100]}); using its image-only part")
        return image_only_smolvlm_processor().from_pretrained(location)


def image_only_smolvlm_processor():
    """A SmolVLMProcessor class without the video processor (and without num2words, used only for videos)."""
    from transformers import SmolVLMProcessor
    from transformers.processing_utils import ProcessorMixin

    class ImageOnlySmolVLMProcessor(SmolVLMProcessor):
        def __init__(self, image_processor, tokenizer, image_seq_len: int = 169, chat_template=None, **kwargs):
            self.fake_image_token = getattr(tokenizer, "fake_image_token", "<fake_token_around_image>")
            self.image_token = getattr(tokenizer, "image_token", "<image>")
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.end_of_utterance_token = getattr(tokenizer, "end_of_utterance_token", "<end_of_utterance>")
            self.global_image_token = getattr(tokenizer, "global_image_token", "<global-img>")
            self.image_seq_len = image_seq_len
            self.video_token = getattr(tokenizer, "video_token", "<video>")
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)

        def apply_chat_template(self, conversation, chat_template=None, **kwargs):
            # SmolVLMProcessor's version reads video settings first; images need none of them
            return ProcessorMixin.apply_chat_template(self, conversation, chat_template, **kwargs)

    return ImageOnlySmolVLMProcessor


class SmallVLM:
    """``AutoModelForImageTextToText`` + its processor's chat template: one image, one instruction."""

    def __init__(self, settings: Settings | None = None, resolved: ResolvedModel | None = None):
        from transformers import AutoModelForImageTextToText

        settings = settings or Settings()
        self.resolved = resolved or resolve("small_vlm", settings)
        announce(self.resolved)
        self.device = pick_device(settings.device)
        self.dtype = pick_dtype(self.device, settings.dtype)
        with quiet_loading():
            self.processor = load_processor(self.resolved.location)
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
