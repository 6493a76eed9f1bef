"""Writes an index's quick snapshot (``quick_search``) after a full search, from what that search has open.

The snapshot is checked before it is published: the saved tokenizer must give the full encoder's ids and mask,
and the saved text tower its vectors (cosine >= ``AGREEMENT_MIN``), on a few probe texts (short, long enough to
be cut, with HTML entities and curly quotes); else nothing is written and the full search keeps answering. It is
written into a scratch folder and published by replacing ``quick/current.json`` in one rename, and only if the
index did not change meanwhile (its stamp before and after).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from ...chinese import to_simplified
from ...clip import clip_encoder
from ...language import has_chinese
from ...models import announcement
from ...onnx_runtime import export_fp32, fp32_folder
from ...text_clean import cleaner_name
from ...translation import translator
from ..store.vectors import ANN_THRESHOLD
from .queries import TRUNCATION_WARNING, route_reason
from .quick import (
    CHINESE_STRATEGIES,
    FOLDER,
    FORMAT,
    POINTER,
    STRATEGIES,
    TEXT_WEIGHTS,
    Snapshot,
    checkpoint_stamp,
    enabled,
    environment_stamp,
    index_stamp,
    open_snapshot,
    read_snapshot,
)
from .quick_translator_export import save_translator

LANGS = ("en", "zh")
AGREEMENT_MIN = 0.9999  # cosine the snapshot's query vectors keep with the full encoder's on the probes
PROBES = ("a dog on the beach", "x", "Two “red” circles &amp; a blue square, café", " ".join(["a photo"] * 60))


def _text_tower(encoder) -> Path | None:
    """The ONNX file of the text tower ``encoder`` runs (None: a precision ONNX Runtime cannot give, e.g. bf16)."""
    text_file = getattr(encoder.model, "text_file", None)  # fp32 or int8 on ONNX Runtime
    if text_file is not None:
        return Path(text_file)
    if encoder.precision == "fp32" and encoder.runtime == "torch" and encoder.device == "cpu":
        return export_fp32(encoder.torch_model, fp32_folder(encoder.torch_model))[1]  # checked against torch
    return None


def _tokenizer_meta(encoder, work: Path) -> dict | None:
    """Saves the fast tokenizer without padding or truncation (the quick search sets them per query, as
    ``ClipEncoder.tokenize`` asks for them); None when the encoder's tokenizer or cleaner is not one it can copy."""
    tokenizer = encoder.processor.tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    clean = cleaner_name(encoder._clean_text)
    if backend is None or clean is None or encoder.family.padding not in (True, "longest", "max_length"):
        return None
    copy = Tokenizer.from_str(backend.to_str())
    copy.no_padding()
    copy.no_truncation()
    copy.save(str(work / "tokenizer.json"))
    padded = encoder.family.padding == "max_length"
    return {"max_tokens": encoder.max_text_tokens, "clean": clean,
            "pad_to": encoder.max_text_tokens if padded else None,
            "pad_id": tokenizer.pad_token_id if padded else None, "pad_token": tokenizer.pad_token if padded else None}


def _save_text_tower(source: Path, target: Path) -> None:
    """``source`` optimised once (extended graph optimisations) into ``target``, which then opens without them.
    Its weights go to ``TEXT_WEIGHTS`` beside it: ONNX Runtime maps an external-data file instead of parsing and
    copying 250 MB of protobuf, which halved a cold fp32 search's session start here (see ``quick.Snapshot``)."""
    import onnxruntime  # heavy: onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    options.add_session_config_entry("session.optimized_model_external_initializers_file_name", TEXT_WEIGHTS)
    options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    options.log_severity_level = 3
    onnxruntime.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])


def _save_rows(searcher, work: Path) -> int:
    """vectors.npy (float16, as stored), rows.jsonl (each row's hit JSON, rank and score aside) and offsets.npy."""
    table = searcher.store.images("clip")
    paths, chunks = [], []
    for batch_paths, vectors in table.vector_batches():
        paths += batch_paths.to_pylist()
        chunks.append(vectors)
    index = searcher.searchers["clip"]
    if len(paths) != len(index) or any(index.path(i) != path for i, path in enumerate(paths)):
        raise RuntimeError("the index changed while its snapshot was written")
    np.save(work / "vectors.npy", np.concatenate(chunks) if chunks else np.zeros((0, table.dim), np.float16))
    offsets = [0]
    with open(work / "rows.jsonl", "wb") as out:
        for hit in searcher._hits("clip", [(i, 0.0) for i in range(len(paths))]):
            fields = {key: value for key, value in hit.to_json().items() if key not in ("rank", "score")}
            line = (json.dumps(fields, ensure_ascii=False) + "\n").encode("utf-8")
            out.write(line)
            offsets.append(offsets[-1] + len(line))
    np.save(work / "offsets.npy", np.asarray(offsets, np.int64))
    return len(paths)


def _verify(snapshot: Snapshot, encoder) -> None:
    """Refuses a snapshot whose tokens or vectors differ from the full encoder's on ``PROBES``."""
    for probe in PROBES:
        want = encoder.tokenize([probe])
        ids, mask, _ = snapshot._tokens(probe)
        if not (np.array_equal(ids, want["input_ids"].numpy()) and np.array_equal(mask, want["attention_mask"].numpy())):
            raise RuntimeError(f"the saved tokenizer reads {probe[:30]!r} otherwise than the encoder")
        cosine = float(snapshot.encode(probe)[0] @ encoder.encode_texts([probe])[0])
        if not cosine >= AGREEMENT_MIN:
            raise RuntimeError(f"the saved text tower's vector for {probe[:30]!r} has cosine {cosine:.6f} "
                               f"< {AGREEMENT_MIN} with the encoder's")


def _publish(quick: Path, work: Path) -> Path:
    """``work`` becomes the live snapshot (``current.json`` replaced in one rename); older ones are removed."""
    folder = quick / f"v-{uuid.uuid4().hex[:12]}"
    os.replace(work, folder)
    pointer = quick / f".{POINTER}.{uuid.uuid4().hex[:8]}"
    pointer.write_text(json.dumps({"folder": folder.name}), encoding="utf-8")
    os.replace(pointer, quick / POINTER)
    for old in quick.glob("v-*"):
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)  # a reader still in it falls back to the full search
    return folder


def _translator_entry(searcher, encoder, index_dir, chinese_query: str | None, log) -> dict | None:
    """The snapshot's Chinese reader: saved from the translator this search just ran (``chinese_query``, as
    Simplified, when it was a Chinese query under auto or translate), else the live snapshot's if still fresh,
    else None (Chinese queries take the full search). A reader that fails its check is left out with a note; the
    English snapshot is written anyway."""
    if chinese_query:
        try:
            return save_translator(translator("zh_en", searcher.query_settings), encoder.resolved, chinese_query)
        except Exception as error:  # the English snapshot stays useful
            log(f"[search] note: Chinese queries stay on the full search ({type(error).__name__}: "
                f"{str(error).splitlines()[0][:200] if str(error) else ''})")
            return None
    old = read_snapshot(index_dir)
    return old.meta.get("translator") if old is not None and old.translator() is not None else None


def write_snapshot(searcher, model_flags: dict, query: str | None = None, strategy: str = "auto",
                   log=None) -> Path | None:
    """Writes ``searcher``'s index's quick snapshot unless a fresh one is there (with a Chinese reader, after a
    Chinese ``query``); returns the new folder, or None (already fresh, disabled, not a local folder, no clip
    vectors, or a text tower ONNX Runtime cannot run)."""
    log = log or (lambda message: print(message, file=sys.stderr))
    index_dir = searcher.location
    if not enabled() or not isinstance(index_dir, (str, Path)) or not Path(index_dir).is_dir() \
            or "clip" not in searcher.searchers:
        return None
    live = open_snapshot(index_dir, model_flags)
    translated = bool(query) and has_chinese(query) and strategy in CHINESE_STRATEGIES
    if live is not None and (not translated or live.translator() is not None):
        return None
    stamp = index_stamp(index_dir)
    encoder = clip_encoder("clip", searcher.query_settings)
    source = _text_tower(encoder)
    if source is None:
        return None
    quick = Path(index_dir) / FOLDER
    quick.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".work-", dir=quick))
    try:
        tokens = _tokenizer_meta(encoder, work)
        if tokens is None:
            return None
        _save_text_tower(source, work / "text.onnx")
        rows = _save_rows(searcher, work)
        location = str(encoder.resolved.location)
        meta = {"format": FORMAT, "model_flags": model_flags, "environment": environment_stamp(), "index": stamp,
                "location": location, "checkpoint": checkpoint_stamp(location), "identity": encoder.identity,
                "rows": rows, "auto_search": "exact" if rows < ANN_THRESHOLD else "ann",
                "library": str(searcher.store.library), **tokens, "truncation_warning": TRUNCATION_WARNING,
                "routes": {**{f"{way}|{lang}": route_reason(way, "a", lang) for way in STRATEGIES for lang in LANGS},
                           **{f"zh:{way}|{lang}": route_reason(way, "中", lang)
                              for way in CHINESE_STRATEGIES for lang in LANGS}},
                "announcement": announcement(encoder.resolved),
                "translator": _translator_entry(searcher, encoder, index_dir,
                                                to_simplified(query.strip()) if translated else None, log)}
        meta = json.loads(json.dumps(meta))  # as it will be read back
        _verify(Snapshot(work, meta).load(), encoder)
        (work / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        if index_stamp(index_dir) != stamp:  # written while `index` changed it: leave it unpublished
            return None
        return _publish(quick, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
