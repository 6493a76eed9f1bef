"""Chinese queries on the quick search: opus-mt zh->en read through ONNX Runtime, greedily, without torch.

The full search turns a Chinese query into English with ``translation.Translator`` (MarianMT on torch: importing
torch and transformers and loading the model cost a cold process about 5 s here) before CLIP's text tower reads
it. The quick snapshot can carry what that needs instead (``quick_translator_export.save_translator``), in the
user's ONNX cache, once per translator:

* ``encoder.onnx`` and ``decoder.onnx``: the encoder, and one decoder step that returns the next token's logits
  (the whole prefix again each step: a query's translation is a few tokens, so no key/value cache is needed);
* ``source.spm`` / ``target.spm`` and ``vocab.json``: the sentencepiece models and the vocabulary MarianTokenizer
  reads (pieces to ids through ``vocab.json``, an unknown piece as ``<unk>``, ``</s>`` appended);
* ``reader.json``: the greedy decoder's settings (``Greedy``).

Greedy decoding as ``generate(num_beams=1, do_sample=False, max_new_tokens=...)`` does it with the translator's
generation config: start from ``decoder_start_token_id``, never pick a banned token (``bad_words_ids`` of one
token), force ``</s>`` at the last step (``forced_eos_token_id``), stop at ``</s>``. The export checks its output
against the torch translator's before it is used, and refuses a generation config with anything else in it.
A query this reader could read otherwise than MarianTokenizer (one with a special token's text in it, or a
language code) or that the full translator would cut (too many tokens) is left to the full search.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

SETTINGS_FILE = "reader.json"
FORMAT = 1
SPIECE_UNDERLINE = "\u2581"


@dataclass(frozen=True)
class Greedy:
    """How ``QuickTranslator`` reads and writes tokens, as the torch translator does (see the module doc)."""

    decoder_start: int
    eos: int
    unk: int
    banned: tuple[int, ...]  # one-token bad_words_ids (opus-mt bans <pad>)
    forced_eos: bool
    max_new_tokens: int
    max_input_tokens: int
    special: tuple[str, ...]  # texts of the special tokens: skipped when decoding, declined in a query
    skipped: tuple[int, ...]  # ids batch_decode(skip_special_tokens=True) drops
    decode_spm: str  # "source.spm" for a shared vocabulary (MarianTokenizer decodes with the source model)
    clean_up: bool  # clean_up_tokenization_spaces

    def to_json(self) -> dict:
        return {"format": FORMAT, **asdict(self)}

    @staticmethod
    def from_json(data: dict) -> "Greedy":
        if data.get("format") != FORMAT:
            raise ValueError(f"quick translator format {data.get('format')!r}, not {FORMAT}")
        fields = {key: value for key, value in data.items() if key != "format"}
        return Greedy(**{key: tuple(value) if isinstance(value, list) else value for key, value in fields.items()})


def _clean_up(text: str) -> str:
    """transformers' ``clean_up_tokenization``: no space before punctuation and English contractions."""
    for spaced, tight in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                          (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(spaced, tight)
    return text


class QuickTranslator:
    """One translator's ONNX files and tokenizer data, in ``folder``; ``load`` before ``translate``."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.greedy = Greedy.from_json(json.loads((self.folder / SETTINGS_FILE).read_text(encoding="utf-8")))
        self._loaded = None

    def reads(self, text: str) -> bool:
        """False for a text MarianTokenizer would split otherwise (a special token's text, a >>lang<< code)."""
        return not text.startswith(">>") and not any(token in text for token in self.greedy.special)

    def load(self) -> "QuickTranslator":
        import onnxruntime  # heavy: onnxruntime (both only once a Chinese query is answered here)
        import sentencepiece

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL  # saved optimised
        options.log_severity_level = 3
        options.add_session_config_entry("session.disable_prepacking", "1")  # as the text tower: one query
        sessions = [onnxruntime.InferenceSession(str(self.folder / name), options, providers=["CPUExecutionProvider"])
                    for name in ("encoder.onnx", "decoder.onnx")]
        vocab = json.loads((self.folder / "vocab.json").read_text(encoding="utf-8"))
        self._loaded = (sentencepiece.SentencePieceProcessor(model_file=str(self.folder / "source.spm")),
                        sentencepiece.SentencePieceProcessor(model_file=str(self.folder / self.greedy.decode_spm)),
                        vocab, {index: piece for piece, index in vocab.items()}, *sessions)
        return self

    def token_ids(self, text: str) -> list[int]:
        """MarianTokenizer's input ids for ``text``: sentencepiece pieces through the vocabulary, then ``</s>``."""
        source, _, vocab, _, _, _ = self._loaded
        return [vocab.get(piece, self.greedy.unk) for piece in source.encode(text, out_type=str)] + [self.greedy.eos]

    def _next_token(self, logits: np.ndarray, step: int) -> int:
        if self.greedy.forced_eos and step == self.greedy.max_new_tokens - 1:
            return self.greedy.eos
        logits = logits.copy()
        logits[list(self.greedy.banned)] = -np.inf
        return int(np.argmax(logits))

    def _text(self, ids: list[int]) -> str:
        _, decode_spm, _, pieces, _, _ = self._loaded
        kept = [pieces.get(i, "") for i in ids if i not in self.greedy.skipped]
        text = decode_spm.decode_pieces([piece for piece in kept if piece]).replace(SPIECE_UNDERLINE, " ").strip()
        return (_clean_up(text) if self.greedy.clean_up else text).strip()

    def translate(self, text: str) -> str | None:
        """``text`` in English, as ``Translator.translate([text])[0]`` gives it; None when the full translator
        would cut it (it warns): the full search answers that."""
        ids = self.token_ids(text)
        if len(ids) >= self.greedy.max_input_tokens:
            return None
        _, _, _, _, encoder, decoder = self._loaded
        input_ids = np.asarray([ids], np.int64)
        mask = np.ones_like(input_ids)
        hidden = encoder.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
        out = [self.greedy.decoder_start]
        for step in range(self.greedy.max_new_tokens):
            logits = decoder.run(None, {"decoder_input_ids": np.asarray([out], np.int64),
                                        "encoder_hidden_states": hidden, "attention_mask": mask})[0][0]
            out.append(self._next_token(logits, step))
            if out[-1] == self.greedy.eos:
                break
        return self._text(out[1:])

