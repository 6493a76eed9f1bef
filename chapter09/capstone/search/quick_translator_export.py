"""Writes the quick search's Chinese reader (``quick_translator``) from a loaded torch ``Translator``.

Once per translator (its weights' digest), in the user's ONNX cache (``onnx-translator/``): the encoder and a
decoder step exported to ONNX and saved already optimised, their weights beside them to be memory-mapped, the
tokenizer's files and the greedy settings. Published in one rename, then checked: on ``PROBES`` and the query at
hand, the reader's input ids must equal MarianTokenizer's and its translation the torch translator's, exactly;
else it is not used (the full search keeps translating Chinese queries).
"""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

from ...models import announcement_lines
from ...onnx_runtime import OPSET, cache_root, published, weights_digest
from .quick import checkpoint_stamp, files_stamp
from .quick_translator import SETTINGS_FILE, Greedy, QuickTranslator

# Chinese the checks translate: short, a sentence with its full stop, Traditional (read as Simplified first by the
# search), mixed with English and digits, full-width punctuation
PROBES = ("红色圆形", "左上方有一个小的红色圆形。", "两个蓝色的正方形和一个绿色三角形", "一只猫 and a dog",
          "3个蓝色的正方形，2个绿色三角形！")
# generation settings greedy decoding honours (anything else in the translator's generation config: not exported)
HONOURED = {"decoder_start_token_id", "eos_token_id", "pad_token_id", "bos_token_id", "forced_eos_token_id",
            "bad_words_ids", "max_length", "num_beams", "renormalize_logits", "use_cache", "do_sample",
            "output_attentions", "output_hidden_states", "transformers_version", "_from_model_config"}


def unsupported(model) -> str | None:
    """Why greedy decoding here would not be ``generate``'s for this translator (None: it would)."""
    generation = model.generation_config
    extra = sorted(set(generation.to_diff_dict()) - HONOURED)
    if extra:
        return f"its generation config sets {', '.join(extra)}"
    if generation.do_sample:
        return "it samples"
    if not isinstance(generation.eos_token_id, int):
        return "it has several end tokens"
    if generation.forced_eos_token_id not in (None, generation.eos_token_id):
        return "it forces another end token"
    if any(len(ids) != 1 for ids in generation.bad_words_ids or []):
        return "it bans sequences of several tokens"
    return None


def greedy_of(translator) -> Greedy:
    """The ``Greedy`` settings of a torch ``Translator`` (checked on probes once exported)."""
    tokenizer, generation = translator.tokenizer, translator.model.generation_config
    return Greedy(decoder_start=int(generation.decoder_start_token_id), eos=int(generation.eos_token_id),
                  unk=int(tokenizer.unk_token_id), banned=tuple(ids[0] for ids in generation.bad_words_ids or []),
                  forced_eos=generation.forced_eos_token_id is not None,
                  max_new_tokens=int(translator.max_new_tokens), max_input_tokens=int(translator.max_input_tokens),
                  special=tuple(sorted(set(tokenizer.all_special_tokens))),
                  skipped=tuple(sorted(set(tokenizer.all_special_ids))),
                  decode_spm="target.spm" if getattr(tokenizer, "separate_vocabs", False) else "source.spm",
                  clean_up=bool(getattr(tokenizer, "clean_up_tokenization_spaces", False)))


def _parts(model):
    """The encoder, and one decoder step giving the last position's logits (as MarianMTModel's head)."""
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.marian = model  # a submodule: the exporter traces its weights as initialisers

        def forward(self, input_ids, attention_mask):
            return self.marian.model.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    class DecoderStep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.marian = model

        def forward(self, decoder_input_ids, encoder_hidden_states, attention_mask):
            hidden = self.marian.model.decoder(
                input_ids=decoder_input_ids, encoder_hidden_states=encoder_hidden_states,
                encoder_attention_mask=attention_mask, use_cache=False).last_hidden_state
            return self.marian.lm_head(hidden[:, -1]) + self.marian.final_logits_bias

    return Encoder(), DecoderStep()


def _export(location: str, work: Path) -> None:
    """encoder.onnx and decoder.onnx in ``work``, optimised once and saved with their weights beside them."""
    import onnxruntime  # heavy: onnxruntime, torch, transformers (the full search has them loaded already)
    import torch
    from transformers import MarianMTModel

    model = MarianMTModel.from_pretrained(location, attn_implementation="eager", dtype=torch.float32).eval()
    encoder, step = _parts(model)
    ids = torch.tensor([[5, 6, 7, model.config.eos_token_id]])
    mask, start = torch.ones_like(ids), torch.tensor([[model.config.decoder_start_token_id, 5]])
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks
        hidden = encoder(ids, mask)
        torch.onnx.export(encoder, (ids, mask), work / "encoder.raw.onnx", opset_version=OPSET,
                          input_names=["input_ids", "attention_mask"], output_names=["hidden"],
                          dynamic_axes={**axes, "hidden": {0: "batch", 1: "tokens"}}, dynamo=False)
        torch.onnx.export(step, (start, hidden, mask), work / "decoder.raw.onnx", opset_version=OPSET,
                          input_names=["decoder_input_ids", "encoder_hidden_states", "attention_mask"],
                          output_names=["logits"], dynamo=False,
                          dynamic_axes={"decoder_input_ids": {0: "batch", 1: "steps"}, "logits": {0: "batch"},
                                        "encoder_hidden_states": {0: "batch", 1: "tokens"},
                                        "attention_mask": {0: "batch", 1: "tokens"}})
    for name in ("encoder", "decoder"):
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(work / f"{name}.onnx")
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", f"{name}.data")
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        options.log_severity_level = 3
        onnxruntime.InferenceSession(str(work / f"{name}.raw.onnx"), options, providers=["CPUExecutionProvider"])
        (work / f"{name}.raw.onnx").unlink()


def _check(reader: QuickTranslator, translator, probes) -> None:
    """Raises unless the reader gives MarianTokenizer's ids and the torch translator's English on ``probes``."""
    for probe in filter(reader.reads, probes):  # a text it declines is the full search's: nothing to compare
        if reader.token_ids(probe) != list(translator.tokenizer(probe)["input_ids"]):
            raise RuntimeError(f"the quick translator reads {probe[:30]!r} otherwise than MarianTokenizer")
        english = reader.translate(probe)
        if english is not None and english != translator.translate([probe])[0]:
            raise RuntimeError(f"the quick translator translates {probe[:30]!r} otherwise than the torch translator "
                               f"({english!r})")


def save_translator(translator, clip_resolved, query: str | None = None) -> dict | None:
    """The snapshot's ``translator`` entry for a loaded torch ``Translator`` (zh->en), exporting its files on first
    use; None when greedy decoding here cannot be the translator's (``unsupported``). Raises when the check fails.
    ``clip_resolved``: CLIP's model, whose banner the full search prints after the translator's."""
    if unsupported(translator.model) is not None:
        return None
    location, greedy = str(translator.resolved.location), greedy_of(translator)
    folder = cache_root("onnx-translator") / f"{type(translator.model).__name__}-{weights_digest(translator.model)}"
    if not (folder / SETTINGS_FILE).exists():
        with published(folder) as work:
            _export(location, work)
            for name in ("source.spm", "target.spm", "vocab.json"):
                shutil.copy(Path(location) / name, work / name)
            (work / SETTINGS_FILE).write_text(json.dumps(greedy.to_json()), encoding="utf-8")
    reader = QuickTranslator(folder).load()
    if reader.greedy != greedy:  # another max length or tokenizer setting than the one saved
        return None
    _check(reader, translator, PROBES + ((query,) if query else ()))
    lines = announcement_lines([translator.resolved, clip_resolved])  # the full search loads the translator first
    return {"folder": str(folder), "files": files_stamp(folder), "location": location,
            "checkpoint": checkpoint_stamp(location), "announcement": "\n".join(lines) or None}
