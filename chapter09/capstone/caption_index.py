"""``caption --index``: caption every indexed image that lacks a caption, resumably.

Moved out of ``indexer.py`` so captioning (its own models, precisions and engines) can grow apart from
the image index's encoding; a caption row is tied to the indexed file's sha1.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from ..images import BadImageError, load_image
from .store import Store


@dataclass
class CaptionSummary:
    index: str
    langs: list[str]
    route: str = ""
    total: int = 0
    captioned: int = 0
    already: int = 0
    failed: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict:
        return dict(self.__dict__)

    def text(self) -> str:
        lines = [f"captions ({', '.join(self.langs)}; route {self.route}) in {self.index}: {self.captioned} images "
                 f"captioned now, {self.already} already had them, {len(self.failed)} failed, of {self.total} "
                 f"({self.seconds:.1f} s)"]
        lines += [f"  FAILED {f['path']}: {f['reason']}" for f in self.failed]
        return "\n".join(lines)


def caption_index(index_dir, langs=("en", "zh"), settings=None, batch_size: int = 16, commit_s: float = 20.0,
                  progress: bool = True, wait_s: float = 0.0, stop_after: int | None = None) -> CaptionSummary:
    """Caption every indexed image that lacks a caption in one of ``langs`` (resumable: done ones are skipped).

    Captions are committed every ``commit_s`` seconds; ``stop_after`` stops after that many images
    (tests of resumption). A caption is tied to the bytes it describes (sha1): re-indexing a changed
    file drops its old captions, and the next ``caption --index`` writes new ones.
    """
    from tqdm import tqdm

    from .describe import caption_images, caption_route, parse_langs

    started = time.time()
    langs = parse_langs(langs)
    summary = CaptionSummary(str(index_dir), langs)
    with Store.open(index_dir, write=True, wait_s=wait_s) as store:
        if not store.roles:
            raise FileNotFoundError(f"index {index_dir} holds no images yet; run `index` first")
        records = store.images(store.roles[0]).records(("path", "sha1"))
        have = store.captions(with_sha1=True)
        todo = [r for r in records if have.get(r["path"], {}).get("sha1") != r["sha1"]
                or any(lang not in have.get(r["path"], {}) for lang in langs)]
        summary.total, summary.already = len(records), len(records) - len(todo)
        summary.route = caption_route(settings) if todo else "none needed"
        bar = tqdm(total=len(todo), unit="img", disable=not progress or not todo, file=sys.stderr, desc="captioning")
        pending, last = [], time.time()
        try:
            for start in range(0, len(todo), batch_size):
                batch, images = [], []
                for record in todo[start:start + batch_size]:
                    try:
                        images.append(load_image(store.absolute(record["path"])))
                        batch.append(record)
                    except (BadImageError, OSError) as error:
                        summary.failed.append({"path": record["path"], "reason": str(error)})
                if images:
                    for record, caps in zip(batch, caption_images(images, langs, settings)):
                        pending.append({"path": record["path"], "sha1": record["sha1"], **caps})
                summary.captioned += len(batch)
                bar.update(len(todo[start:start + batch_size]))
                if time.time() - last > commit_s or (stop_after is not None and summary.captioned >= stop_after):
                    store.put_captions(pending)
                    pending, last = [], time.time()
                    if stop_after is not None and summary.captioned >= stop_after:
                        raise KeyboardInterrupt(f"stopped after {summary.captioned} images (stop_after)")
        finally:
            bar.close()
            if pending:
                store.put_captions(pending)
        if todo:
            store.finish()
    summary.seconds = round(time.time() - started, 2)
    return summary
