"""The web UI's view of an index: searches (the searcher reopened when ``index`` changed it), hits as thumbnails
and JSON rows, the note under the results, a hit's detail, uploads, captions and match scores; safe to call from
many threads. Gradio is imported only by ``upload``, whose refusals are the page's messages; the rest raises the
project's errors, which ``checks.error_messages`` turns into them."""
from __future__ import annotations

import contextlib
import hashlib
import html
import os
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc

from ...images import BadImageError, load_image
from ...models import Settings
from ..caption.describe import caption_images, match_scores
from ..index.video import clock, is_video, read_frame, split_key
from ..search.filters import Filters
from ..search.library_search import LibrarySearch, SearchRequest, Term
from ..search.queries import ENCODE_LOCK
from ..search.records import Hit, SearchResult
from ..store.database import is_uri
from .i18n import WORDS, say
from .thumbnails import FOLDER, SIZE, ensure_thumbnail, frame_content_key, thumbnail_path

# torch intra-op threads for a search's forward pass (the query's encoding): a query is one short text, whose
# pass a second thread barely shortens, and when the server's other requests (HTTP, JSON, thumbnails) and other
# programs keep the cores busy, that second thread waits for a core at every layer: measured on the 2-core
# machine with its cores busy, a toy text query took 2-3 ms with one thread and 180 ms with two.
SEARCH_TORCH_THREADS = 1
BROWSER_FORMATS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".avif", ".svg"}
FULL_SIDE = 2048  # long edge of the JPEG rendition of formats a browser cannot show (HEIC, TIFF)


def inside(root: Path, relative: str) -> Path | None:
    """The library file ``relative`` names, or None if it names nothing inside the library (``..``, links out,
    a NUL byte, a name too long)."""
    try:
        path = (root / relative).resolve()
        return path if path.is_relative_to(root) and path.is_file() else None
    except (OSError, ValueError, TypeError):
        return None


def located(root: Path, key: str) -> tuple[Path, float | None] | None:
    """(the library file, the moment of a video's frame or None) a row key names, or None as ``inside``."""
    file, time_s = split_key(key)
    path = inside(root, file)
    return None if path is None else (path, time_s)


@contextlib.contextmanager
def torch_threads(count: int):
    """The calling thread's torch intra-op threads set to ``count`` while the block runs, then put back (torch
    keeps the count per thread, so the page's captioning in another thread keeps its own)."""
    import torch

    before = torch.get_num_threads()
    if before == count:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def search_threads(count: int):
    """``torch_threads(count)``, and the calling thread's OpenMP threads for FAISS set to ``count`` too (OpenMP
    keeps the count per thread): a one-query scan of 10,000 vectors took 0.6 ms on one thread and 4.6-16 ms on
    two while other programs kept the 2-core machine's cores busy (measured), and concurrent searches overlap."""
    import faiss  # heavy: the search's own module imports it where it searches

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        with torch_threads(count):
            yield
    finally:
        faiss.omp_set_num_threads(before)


class SharedLock:
    """Many holders of ``shared`` at once, or one of ``exclusive`` alone; a waiting ``exclusive`` goes before new
    ``shared`` holders, so a stream of searches cannot keep a refresh waiting."""

    def __init__(self):
        self._changed = threading.Condition()
        self._sharing = 0
        self._exclusive = False
        self._waiting = 0  # exclusive holders waiting

    @contextlib.contextmanager
    def shared(self):
        with self._changed:
            self._changed.wait_for(lambda: not self._exclusive and not self._waiting)
            self._sharing += 1
        try:
            yield
        finally:
            with self._changed:
                self._sharing -= 1
                self._changed.notify_all()

    @contextlib.contextmanager
    def exclusive(self):
        with self._changed:
            self._waiting += 1
            self._changed.wait_for(lambda: not self._exclusive and not self._sharing)
            self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._changed:
                self._exclusive = False
                self._changed.notify_all()


def file_url(path: Path) -> str:
    """The URL Gradio serves an allowed file at."""
    return f"/gradio_api/file={quote(str(path))}"


def thumbnail_cache(index: str | Path) -> Path:
    """The per-user cache folder for the thumbnails of ``index`` (a read-only or object-store index)."""
    digest = hashlib.sha1(str(index).encode()).hexdigest()[:16]
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "chapter09" / "serve" / digest


def thumbnail_home(index_dir: Path) -> Path:
    """Where thumbnails are made: the index folder when its ``thumbnails/`` can be written, else a per-user
    cache folder for this index (a read-only index), else a fresh temporary folder."""
    for base in (index_dir, thumbnail_cache(index_dir)):
        if writable(base / FOLDER):
            return base
    return Path(tempfile.mkdtemp(prefix="ch09-serve-"))


def writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            return True
    except OSError:
        return False



def place_html(hit: dict) -> str:
    """Where the hit was taken (its EXIF GPS position and the place named for it), or nothing."""
    place = hit.get("place") or {}
    names = ", ".join(v for v in (" ".join(v for v in (place.get("name"), place.get("name_zh")) if v),
                                  place.get("admin"), place.get("country")) if v)
    if hit.get("lat") is None and not names:
        return ""
    position = f" ({hit['lat']:.5f}, {hit['lon']:.5f})" if hit.get("lat") is not None else ""
    return f'<div class="place"><b>taken at 拍摄地:</b> {html.escape(names or "(unnamed)")}{position}</div>'


class WebLibrary:
    """The UI's view of an index: searches, thumbnails, stored captions; safe to call from many threads."""

    def __init__(self, index_dir, settings: Settings, max_upload_mb: float = 20):
        # absolute: Gradio serves files by absolute path only; an object-store index keeps them in the cache
        self.index_dir = thumbnail_cache(index_dir) if is_uri(index_dir) else Path(index_dir).resolve()
        self.searcher = LibrarySearch(index_dir, settings, live=True)  # refreshed before every search
        self.settings = self.searcher.query_settings  # captions and match read texts as search does
        self.root = Path(self.searcher.store.library).resolve()
        self.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
        self.max_upload_mb = max_upload_mb
        # Searches run at once, each holding the searcher's state shared (LanceDB's table handles and FAISS's
        # searches are safe to share between threads; the models take one forward pass at a time,
        # ``queries.ENCODE_LOCK``); a refresh swaps that state, so it waits for the searches under way alone.
        self._searcher_state = SharedLock()
        self._caption_lock = threading.Lock()  # one generation at a time
        self.thumb_home = thumbnail_home(self.index_dir)  # the index folder, unless it is read-only
        if self.thumb_home != self.index_dir:
            print(f"[serve] index {self.index_dir} is read-only: new thumbnails are made in {self.thumb_home} "
                  "instead (the ones the index holds are still used)", file=sys.stderr)

    def thumbnail_folders(self) -> list[Path]:
        """Folders the thumbnails come from (Gradio's allowed paths)."""
        return sorted({self.index_dir / FOLDER, self.thumb_home / FOLDER})

    def _thumb(self, path: Path, indexed: dict | None = None, size: int | None = None,
               time_s: float | None = None) -> Path:
        size = size or SIZE
        if self.thumb_home != self.index_dir:  # a read-only index: use the thumbnails it already holds
            held = thumbnail_path(self.index_dir, path, frame_content_key(path, indexed, time_s), size)
            if held.is_file():
                return held
        return ensure_thumbnail(self.thumb_home, path, indexed, size=size, time_s=time_s)

    def stored_captions(self, hits: list[Hit]) -> dict[str, dict]:
        """path -> {"en": ..., "zh": ...}: the captions the index stores (``caption --index``), which the
        searcher puts on every hit."""
        return {hit.path: hit.captions for hit in hits}

    def thumbnail(self, path: Path, indexed: dict | None = None, time_s: float | None = None) -> Path | None:
        """The hit's cached thumbnail, keyed by the sha1 the index stored (``indexed``) while the file is unchanged
        (a video's: its frame at ``time_s``)."""
        try:
            return self._thumb(path, indexed, time_s=time_s)
        except (BadImageError, OSError):
            return None

    def viewable(self, path: Path) -> Path:
        """The file itself if a browser shows its format (or plays it: a video), else a cached large JPEG rendition."""
        if path.suffix.lower() in BROWSER_FORMATS or is_video(path):
            return path
        try:
            return self._thumb(path, size=FULL_SIDE)
        except (BadImageError, OSError):
            return path

    # ---- searches
    def filters(self, folder=None, taken_after=None, taken_before=None, camera=None, types=None, min_size=None,
                place=None, near=None):
        """The Filters panel's fields (or the API's filter arguments) as ``Filters``; raises UsageError with a
        message naming the field for a bad value."""
        return Filters.parse(folder, taken_after, taken_before, camera, types, min_size, place=place, near=near,
                             library=str(self.root))

    def top_folders(self, limit: int = 200) -> list[str]:
        """The library's top folders (for the folder filter's choices), from the paths the index holds."""
        role = "clip" if "clip" in self.searcher.searchers else self.searcher.store.roles[0]
        paths = self.searcher.searchers[role].paths
        paths = paths if hasattr(paths, "type") else pa.array(list(paths), pa.string())
        nested = paths.filter(pc.match_substring(paths, "/"))  # in arrow: a 1M-row index stays quick to open
        heads = pc.unique(pc.list_element(pc.split_pattern(nested, "/", max_splits=1), 0))
        return sorted(heads.to_pylist())[:limit]

    def search(self, request: SearchRequest) -> tuple[SearchResult, list[str]]:
        """(result, warnings) of ``request`` (``LibrarySearch.run``, as the command line's ``search``) on the index
        as it is now: the searcher first reopens what changed since the last search (``index`` or ``index
        --watch`` adding rows), so ``serve`` needs no restart. Both under the search lock: a refresh swaps the
        searchers a concurrent search would be reading, so it runs alone, and only when the index's versions on disk
        changed (``LibrarySearch.stale``); searches overlap."""
        warnings: list[str] = []
        with search_threads(SEARCH_TORCH_THREADS):
            started = time.perf_counter()
            refreshed = False
            if self.searcher.stale():
                with self._searcher_state.exclusive():
                    refreshed = self.searcher.refresh()
            refresh_ms = 1000 * (time.perf_counter() - started)
            with self._searcher_state.shared():
                result = self.searcher.run(request, warn=warnings.append)
        return replace(result, refresh_ms=round(refresh_ms, 2), refreshed=refreshed), warnings

    def by_text(self, query: str, strategy: str, k: int, filters=None) -> tuple[SearchResult, list[str]]:
        return self.search(SearchRequest((Term("text", query),), k, strategy, filters))

    def by_image(self, image, k: int, filters=None) -> tuple[SearchResult, list[str]]:
        return self.search(SearchRequest((Term("image", image),), k, filters=filters))

    def hits(self, result: SearchResult) -> tuple[list, list[dict]]:
        """Gallery items (thumbnail, label) and the hits as JSON rows, captions included."""
        rows = []
        for hit in result.hits:
            found = located(self.root, hit.path)
            if found is not None:
                rows.append((found[0], hit))
        captions = self.stored_captions([hit for _, hit in rows])
        items, out = [], []
        for path, hit in rows:
            thumb = self.thumbnail(path, hit.indexed, hit.time_s)
            if thumb is None:
                continue
            caps = captions.get(hit.path, {})
            row = {"rank": hit.rank, "score": round(float(hit.score), 4), "file": hit.path,
                   "caption_en": caps.get("en"), "caption_zh": caps.get("zh"),
                   "place": hit.place or {}, "lat": hit.lat, "lon": hit.lon}
            if hit.ocr_text:  # after index --ocr: the text read in the photo, and the query's words in it
                row.update(ocr_text=hit.ocr_text, ocr_match=list(hit.ocr_match or ()))
            if hit.time_s is not None:  # a video's frame: the moment, and the player starts there
                row["time_s"] = hit.time_s
            label = f"{hit.rank}. {hit.score:.3f}  {path.name}"  # the full path: in the detail
            label += f" @ {clock(hit.time_s)}" if hit.time_s is not None else ""
            if caps.get("en") or caps.get("zh"):
                label += "\n" + " / ".join(c for c in (caps.get("en"), caps.get("zh")) if c)
            items.append((str(thumb), label))
            out.append(row)
        return items, out

    def note(self, result: SearchResult, warnings=()) -> str:
        """One line under the gallery: how it was searched, what the terms were, what the filter kept (in the
        request's language; values as the search gave them)."""
        parts = [say(f"{result['strategy']} · {result['search']} search over {result['library_size']} images · "
                     f"{result['ms']} ms",
                     f"{result['strategy']} · 在 {result['library_size']} 张图片中做"
                     f"{WORDS.get(result['search'], ('', ' ' + result['search'] + ' '))[1]}搜索 · "
                     f"{result['ms']} ms")]
        if result.get("refreshed"):
            parts.append(say("the index changed since the last search: reopened", "索引在上次搜索后有变化：已重新打开"))
        if result.get("encoded_text") and result["encoded_text"] != result.get("query"):
            parts.append(say(f"query encoded as: {result['encoded_text']}", f"实际编码的查询：{result['encoded_text']}"))
        if len(result.get("terms", ())) > 1:
            terms = " ".join(f"{t['weight']:+g}×{t['kind']}:{t['value']}" for t in result["terms"])
            parts.append(say(f"terms: {terms}", f"搜索项：{terms}"))
        if result.get("caption_text"):
            fused = result.get("query_kind") == "hybrid"
            text = result["caption_text"]
            parts.append(say(f"caption text: {text}" + (" (fused with the query by reciprocal rank)" if fused else " (BM25)"),
                             f"描述文字：{text}" + ("（与查询按倒数排名融合）" if fused else "（BM25）")))
        if result.get("ocr_text"):
            fused = result.get("query_kind") == "hybrid" or bool(result.get("caption_text"))
            text = result["ocr_text"]
            parts.append(say(f"text in photos: {text}" + (" (fused by reciprocal rank)" if fused else " (BM25)"),
                             f"图中文字：{text}" + ("（按倒数排名融合）" if fused else "（BM25）")))
        if "filters" in result:
            nprobe = f", nprobe {result['filter_nprobe']}" if result.get("filter_nprobe") else ""
            how = result["filter_search"]
            how_zh = WORDS.get(how, (how, how))[1] + nprobe
            said = "; ".join(f"{k} {','.join(v) if isinstance(v, list) else v}" for k, v in result["filters"].items())
            said_zh = "；".join(f"{WORDS.get('filter ' + k, (k, k))[1]} {','.join(v) if isinstance(v, list) else v}"
                               for k, v in result["filters"].items())
            parts.append(say(f"filter: {said} -> {result['matching']} of {result['library_size']} images match "
                             f"({how + nprobe})",
                             f"筛选：{said_zh} -> {result['library_size']} 张图片中有 {result['matching']} 张符合"
                             f"（{how_zh}）"))
        return " · ".join(parts + [say(f"note: {n}", f"说明：{n}") for n in result.get("notes", ())] +
                          [say(f"warning: {w}", f"警告：{w}") for w in warnings])

    def detail_html(self, hit: dict) -> str:
        found = located(self.root, hit["file"])
        if found is None:
            return f"<p>{say('this file is no longer in the library', '这个文件已不在图库中')}</p>"
        path, time_s = found
        url = file_url(self.viewable(path))
        original = file_url(path)
        caps = []
        for lang, label in (("en", say("English", "英文")), ("zh", "中文")):
            if hit.get(f"caption_{lang}"):
                caps.append(f"<div><b>{label}:</b> {html.escape(hit[f'caption_{lang}'])}</div>")
        captions = "".join(caps) or "<div><i>" + say(
            "no stored captions (add them with <code>caption --index</code>, or press Caption this)",
            "没有已存储的描述（可用 <code>caption --index</code> 生成，或按“为它生成描述”）") + "</i></div>"
        original_link = say(f' · <a href="{original}" download>original file</a>',
                            f' · <a href="{original}" download>原始文件</a>') if url != original else ""
        if hit.get("ocr_text"):
            words = html.escape(", ".join(hit["ocr_match"])) if hit.get("ocr_match") else ""
            matched = say(f" (matched: {words})", f"（匹配：{words}）") if words else ""
            captions += (f'<div class="ocr-text"><b>{say("text in the photo:", "图中文字：")}</b> '
                         f"{html.escape(' | '.join(hit['ocr_text'].splitlines()))}{matched}</div>")
        shown = (f'<a id="full-image-link" href="{url}" target="_blank" rel="noopener">'
                 f'<img id="full-image" src="{url}" alt="{html.escape(hit["file"])}"></a>')
        if time_s is not None:  # a video plays from the frame's moment (a media fragment: the browser seeks)
            url = f"{url}#t={time_s:.2f}"
            shown = (f'<video id="full-video" src="{url}" controls preload="metadata"></video>'
                     f'<div class="video-time">{say("at", "时间")} {clock(time_s)} ({time_s:.2f} s)</div>')
        return (shown +
                f"<div><b>#{hit['rank']}</b> · {say('score', '分数')} {hit['score']:.3f} · "
                f"<code>{html.escape(hit['file'])}</code></div>"
                f'<div class="captions">{captions}</div>{place_html(hit)}'
                f'<div><a href="{url}" target="_blank" rel="noopener">{say("open the full image", "打开原图")} ↗</a>'
                + original_link + "</div>")

    # ---- uploads
    def upload(self, path):
        """An uploaded file as an RGB image, or the page's message (``gradio.Error``) saying why it is refused:
        the one method here that answers the page directly, as it is called with the API's raw upload."""
        import gradio as gr

        if path is None:
            raise gr.Error(say("upload an image first", "请先上传一张图片"))
        path = Path(path)
        size = path.stat().st_size
        if size > self.max_upload_bytes:
            megabytes = f"{size / 1024 / 1024:.1f}"
            raise gr.Error(say(f"{path.name} is {megabytes} MB, over this server's upload limit of "
                               f"{self.max_upload_mb:g} MB (serve --max-upload-mb)",
                               f"{path.name} 有 {megabytes} MB，超过了本服务器 {self.max_upload_mb:g} MB 的上传上限"
                               "（serve --max-upload-mb）"))
        try:
            return load_image(path)
        except BadImageError as error:
            why = str(error).replace(str(path) + ": ", "")
            raise gr.Error(say(f"not an image this server can read: {why}", f"不是本服务器能读取的图片：{why}")) from None

    def caption(self, image) -> dict:
        """English and Chinese captions of ``image``, one generation at a time."""
        with self._caption_lock:
            return caption_images([image], ("en", "zh"), self.settings)[0]

    def match(self, image, texts: list[str]) -> dict[str, float]:
        """text -> cosine with ``image``, the texts read as search reads them (under ``ENCODE_LOCK``: the text
        tokenizers are not thread-safe)."""
        with ENCODE_LOCK, torch_threads(SEARCH_TORCH_THREADS):
            scored = match_scores(image, texts, "auto", self.settings)
        return {row["text"]: row["score"] for row in scored}

    def caption_file(self, path: Path, time_s: float | None = None) -> dict:
        """``caption`` of a library file (a hit; a video's frame at ``time_s``); BadImageError says why it cannot
        be read."""
        return self.caption(read_frame(path, time_s or 0.0) if is_video(path) else load_image(path))

