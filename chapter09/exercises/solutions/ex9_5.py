"""Solutions to the 9.5 exercises."""
import torch


def build_vlm_inputs(visual_tokens, word_embeddings, attention_mask, labels) -> dict:
    batch, n = visual_tokens.shape[:2]
    image_mask = attention_mask.new_ones(batch, n)
    image_labels = labels.new_full((batch, n), -100)  # the image is context, never a target
    return {"inputs_embeds": torch.cat([visual_tokens.to(word_embeddings.dtype), word_embeddings], dim=1),
            "attention_mask": torch.cat([image_mask, attention_mask], dim=1),
            "labels": torch.cat([image_labels, labels], dim=1)}


def caption_labels(input_ids, attention_mask):
    return input_ids.masked_fill(attention_mask == 0, -100)


def quantize_int8(weight):
    scale = weight.abs().amax(dim=1) / 127
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)  # a zero row: any scale gives q = 0
    q = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale
