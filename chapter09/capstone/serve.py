"""The web UI: search by text or example image, caption, image-text match, in Gradio.

What it shows, and why:

* **Which models answer.** The header carries the model table (role, real or toy twin, class,
  location), and a banner whenever any role runs on a toy twin: the toy world's tiny models
  were trained on synthetic shapes, and what they say about real photos means nothing.
* **Hits as thumbnails** (256 px JPEGs made once per image content and cached in
  ``INDEX/thumbnails/``, see ``thumbnails.py``), each labelled with rank, score and path.
  Clicking one opens its detail: the full image (a link opens it alone; formats browsers
  cannot show, such as HEIC, get a large JPEG rendition), score, path and the captions the
  index stores (``caption --index``), with **Find similar** (the hit's own file, no upload)
  and **Caption this**.
* **Combined queries, filters, caption text** (issue 19): a builder of a base text and/or image plus
  rows of terms added or subtracted with a weight (a text, an upload, or "this hit": the selected
  hit's stored vector), composed as ``search --text/--add/--subtract`` is (``search.Term``s handed
  to ``LibrarySearch.search``); one Filters panel (folder, capture dates, camera, file types,
  shorter side) applied to every search; a caption-text box, alone or fused with the query box's
  search by reciprocal rank (hybrid). The searcher reopens what ``index`` changed before each
  search (``LibrarySearch.refresh``, a few ms), so ``serve`` needs no restart for new photos.
* **A stable API.** Every action has one explicit name -- ``/text_search``, ``/image_search``,
  ``/find_similar``, ``/combined_search``, ``/caption_text_search``, ``/caption``, ``/caption_hit``,
  ``/match`` -- callable with ``gradio_client`` (``Client(url).predict(..., api_name="/text_search")``);
  every search takes the six filters last, each optional, so calls written before them still work.
  The search endpoints return the gallery, a note and the hits as JSON (rank, score, ``file``: the
  path in the library, captions; not ``path``, which gradio_client takes for a file to download).
* **Concurrency.** ``SEARCH_CONCURRENCY`` search requests are served at once; inside the
  searcher one runs at a time (a lock): torch forward passes are thread-safe, but the text
  tokenizers are not (a fast tokenizer can raise "Already borrowed" when two threads use it)
  and the index's reads are not promised to be. The searcher's part is a few milliseconds
  (the note under the results says how many); HTTP, thumbnails and the gallery's files run
  concurrently. Captioning runs one at a time (generation is the heavy, memory-hungry part).

Safe by default: binds to 127.0.0.1; another ``--host`` (a network) is refused without a login
(``--auth USER:PASSWORD``, ``--auth-file``, ``$CH09_SERVE_AUTH``: Gradio's own login page and
cookie) unless ``--no-auth`` says so explicitly. No usage analytics and no monitoring endpoint.
It serves files only from the library folder and the thumbnail folders (every hit path is
checked to resolve inside the library; every path handed to Gradio is absolute, so the API
answers wherever ``serve`` was started), bounds ``k`` and the query length, lets one client run
at most ``PER_CLIENT`` searches at once and ``RATE_PER_S`` requests a second (``RATE_BURST`` at once;
the rest of its requests are told to slow down, so one client cannot hold every search slot nor keep
the searcher busy with quick requests), and refuses uploads over ``--max-upload-mb`` (Gradio
answers 413 before the file is stored; this module checks again for data sent inline) and
uploads that are not images, with a message saying which limit or why. A read-only index is
served as it is: thumbnails it lacks are made in a per-user cache folder instead (said once).
"""
# no `from __future__ import annotations`: Gradio reads the gr.SelectData annotation of select_hit at run time
import contextlib
import hashlib
import html
import os
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from urllib.parse import quote

from ..errors import UsageError
from ..models import Settings

TOY_BANNER = ("TOY WORLD: tiny models trained on synthetic shapes; results on real photos are meaningless; "
              "run with --models real")
ROLES = ("clip", "chinese_clip", "multilingual_text", "translator_zh_en", "translator_en_zh", "captioner")
SEARCH_CONCURRENCY = 8  # searches answered at once (the rest queue)
QUEUE_SIZE = 64  # requests waiting at most; beyond it Gradio answers that the queue is full
PER_CLIENT = 2  # searches one client (login, else address; loopback without login: no limit) may run at once
RATE_PER_S = 5.0  # requests one such client may send a second, on average (a token bucket) ...
RATE_BURST = 10  # ... and at once after a pause
MAX_K = 50  # results per search (the slider's maximum)
MAX_QUERY_CHARS = 500
TERM_ROWS = 3  # add/subtract rows in the combined-query builder (and its API's term1_... term3_... arguments)
TERM_KINDS = ("text", "image", "this hit")
SIGNS = ("add", "subtract")
MAX_WEIGHT = 100.0
LOOPBACK = ("127.0.0.1", "localhost", "::1")
AUTH_ENV = "CH09_SERVE_AUTH"
BROWSER_FORMATS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".avif", ".svg"}
FULL_SIDE = 2048  # long edge of the JPEG rendition of formats a browser cannot show (HEIC, TIFF)

CSS = """
#toy-banner { background: #fff3cd; border: 2px solid #d39e00; color: #5c4400; border-radius: 8px;
  padding: 10px 14px; font-weight: 700; font-size: 1.05em; margin-bottom: 6px; }
#header h2 { margin: 0 0 4px 0; }
#model-table table { font-size: 0.85em; border-collapse: collapse; width: 100%; }
#model-table th, #model-table td { padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: left; }
#model-table td.toy { color: #8a5a00; font-weight: 700; }
#model-table td.real { color: #1a7f37; font-weight: 700; }
#model-table td.loc { font-family: monospace; font-size: 0.9em; word-break: break-all; }
#hit-detail img { max-width: 100%; max-height: 420px; border-radius: 6px; }
#hit-detail .captions { margin-top: 6px; }
"""


def _inside(root: Path, relative: str) -> Path | None:
    """The library file ``relative`` names, or None if it names nothing inside the library (``..``, links out,
    a NUL byte, a name too long)."""
    try:
        path = (root / relative).resolve()
        return path if path.is_relative_to(root) and path.is_file() else None
    except (OSError, ValueError, TypeError):
        return None


def parse_logins(pairs=(), auth_file=None, env: str | None = None) -> list[tuple[str, str]]:
    """USER:PASSWORD logins from ``--auth`` values, an ``--auth-file`` (one per line, # comments) and
    ``$CH09_SERVE_AUTH`` (comma-separated), in that order; a malformed one is refused by name."""
    given = [(value, "--auth") for value in pairs or ()]
    if auth_file:
        path = Path(auth_file)
        if not path.is_file():
            raise UsageError(f"--auth-file {path}: no such file; write one USER:PASSWORD per line")
        given += [(line.strip(), f"{path}:{number}") for number, line in enumerate(path.read_text().splitlines(), 1)
                  if line.strip() and not line.lstrip().startswith("#")]
    env = os.environ.get(AUTH_ENV) if env is None else env
    given += [(value.strip(), f"${AUTH_ENV}") for value in (env or "").split(",") if value.strip()]
    logins = []
    for value, where in given:
        user, colon, password = value.partition(":")
        if not colon or not user.strip() or not password:
            raise UsageError(f"{where}: a login is USER:PASSWORD with neither part empty")
        logins.append((user.strip(), password))
    return logins


def check_exposure(host: str, logins: list, no_auth: bool, root) -> None:
    """Refuse to put the library on a network without a login, unless ``--no-auth`` says so explicitly."""
    if host in LOOPBACK:
        return
    if not logins and not no_auth:
        raise UsageError(f"serve --host {host} would show every photo in {root} to anyone who can reach this machine; "
                         f"add a login (--auth-file FILE with USER:PASSWORD lines, or {AUTH_ENV}=USER:PASSWORD, or "
                         "--auth USER:PASSWORD), or pass --no-auth to expose it without one")
    if not logins:
        bar = "!" * 78
        print(f"{bar}\n!! serve --no-auth --host {host}: NO LOGIN. Anyone who can reach this machine can search\n"
              f"!! and download every photo in {root}.\n{bar}", file=sys.stderr)


def thumbnail_cache(index: str | Path) -> Path:
    """The per-user cache folder for the thumbnails of ``index`` (a read-only or object-store index)."""
    digest = hashlib.sha1(str(index).encode()).hexdigest()[:16]
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "chapter09" / "serve" / digest


def thumbnail_home(index_dir: Path) -> Path:
    """Where thumbnails are made: the index folder when its ``thumbnails/`` can be written, else a per-user
    cache folder for this index (a read-only index), else a fresh temporary folder."""
    from .thumbnails import FOLDER

    for base in (index_dir, thumbnail_cache(index_dir)):
        if _writable(base / FOLDER):
            return base
    return Path(tempfile.mkdtemp(prefix="ch09-serve-"))


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            return True
    except OSError:
        return False


class ClientLimiter:
    """At most ``limit`` requests running at once per client, and ``rate`` a second (a token bucket of
    ``burst`` tokens, refilled at ``rate`` a second); a request beyond either is told to slow down.

    Gradio's ``concurrency_limit`` bounds an event for all clients together, so one client sending a
    burst would otherwise take every search slot; with this, its extra requests end at once and the
    slots go to the others. A client is its login, else its address; this machine's own user (loopback,
    no login) is not limited (``bench.web`` plays 20 users from here)."""

    def __init__(self, limit: int, rate: float = RATE_PER_S, burst: int = RATE_BURST, clock=None):
        import time

        self.limit, self.running, self._lock = limit, Counter(), threading.Lock()
        self.rate, self.burst, self.clock = rate, burst, clock or time.monotonic
        self.buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when counted)

    def _take_token(self, who: str) -> float:
        """0 if ``who`` may send this request now, else the seconds until it may (caller holds the lock)."""
        now = self.clock()
        tokens, then = self.buckets.get(who, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        if tokens < 1:
            self.buckets[who] = (tokens, now)
            return (1 - tokens) / self.rate
        self.buckets[who] = (tokens - 1, now)
        if len(self.buckets) > 4096:  # forget clients whose bucket has refilled: the table stays small
            full = self.burst / self.rate
            self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < full}
        return 0.0

    @staticmethod
    def client(request) -> str | None:
        """Who ``request`` comes from, or None for this machine's own user (not limited)."""
        user = getattr(request, "username", None)
        host = getattr(getattr(request, "client", None), "host", None)
        if user:
            return f"user {user}"
        if request is None or host in LOOPBACK:
            return None
        return f"address {host or 'unknown'}"

    @contextlib.contextmanager
    def slot(self, request):
        import gradio as gr

        who = self.client(request)
        if who is None:
            yield
            return
        with self._lock:
            wait = self._take_token(who)
            if wait:
                raise gr.Error(f"slow down: this client ({who}) is sending more than {self.rate:g} requests a "
                               f"second (at most {self.burst} at once); try again in {max(wait, 0.1):.1f} s")
            if self.running[who] >= self.limit:
                raise gr.Error(f"slow down: this client ({who}) already has {self.limit} searches running; "
                               "wait for them to finish")
            self.running[who] += 1
        try:
            yield
        finally:
            with self._lock:
                self.running[who] -= 1
                if not self.running[who]:
                    del self.running[who]


def checked_k(k) -> int:
    import gradio as gr

    try:
        value = float(k)
    except (TypeError, ValueError):
        value = float("nan")
    if not (1 <= value <= MAX_K) or value != int(value):
        raise gr.Error(f"the number of results must be a whole number from 1 to {MAX_K}, not {str(k)[:40]!r}")
    return int(value)


def checked_query(query) -> str:
    import gradio as gr

    if not isinstance(query, str) or not query.strip():
        raise gr.Error("type a query (English or Chinese)")
    if len(query) > MAX_QUERY_CHARS:
        raise gr.Error(f"the query is {len(query):,} characters long; this server reads at most {MAX_QUERY_CHARS}")
    return query


def file_url(path: Path) -> str:
    """The URL Gradio serves an allowed file at."""
    return f"/gradio_api/file={quote(str(path))}"


def model_rows(settings: Settings) -> list[dict]:
    """One row per role the UI may use: real or toy, class, location (or why it is unavailable)."""
    from ..models import ModelUnavailableError, resolve

    rows = []
    for role in ROLES:
        try:
            resolved = resolve(role, settings)
            rows.append({"role": role, "weights": "toy twin" if resolved.is_toy else "real",
                         "class": resolved.spec.model_class, "location": str(resolved.location)})
        except ModelUnavailableError as error:  # a missing twin is information, not a crash
            rows.append({"role": role, "weights": "unavailable", "class": "", "location": str(error)[:160]})
    return rows


def header_html(rows: list[dict], root: Path, images: int, search_mode: str) -> str:
    toy = any(row["weights"] == "toy twin" for row in rows)
    banner = f'<div id="toy-banner">⚠ {html.escape(TOY_BANNER)}</div>' if toy else ""
    cells = "".join(
        f"<tr><td>{row['role']}</td><td class=\"{'toy' if row['weights'] == 'toy twin' else 'real'}\">"
        f"{html.escape(row['weights'])}</td><td>{html.escape(row['class'])}</td>"
        f"<td class=\"loc\">{html.escape(row['location'])}</td></tr>" for row in rows)
    return (f"{banner}<h2>Image library search and captioning · 图片库检索与描述</h2>"
            f"<div><code>{html.escape(str(root))}</code> · {images} images · {search_mode} search</div>"
            f"<div id=\"model-table\"><table><thead><tr><th>role</th><th>weights</th><th>class</th>"
            f"<th>location</th></tr></thead><tbody>{cells}</tbody></table></div>")


class WebLibrary:
    """The UI's view of an index: searches, thumbnails, stored captions; safe to call from many threads."""

    def __init__(self, index_dir, settings: Settings, max_upload_mb: float = 20):
        from .search import LibrarySearch
        from .store import is_uri

        # absolute: Gradio serves files by absolute path only; an object-store index keeps them in the cache
        self.index_dir = thumbnail_cache(index_dir) if is_uri(index_dir) else Path(index_dir).resolve()
        self.searcher = LibrarySearch(index_dir, settings)
        self.settings = self.searcher.query_settings  # captions and match read texts as search does
        self.root = Path(self.searcher.store.library).resolve()
        self.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
        self.max_upload_mb = max_upload_mb
        # One search at a time inside the searcher: the text tokenizers are not thread-safe, and the
        # index's reads (vectors, captions) are not promised to be. A search there takes a few ms;
        # the rest of a request (HTTP, thumbnails, the gallery's files) runs concurrently.
        self._search_lock = threading.Lock()
        self._caption_lock = threading.Lock()  # one generation at a time
        self.thumb_home = thumbnail_home(self.index_dir)  # the index folder, unless it is read-only
        if self.thumb_home != self.index_dir:
            print(f"[serve] index {self.index_dir} is read-only: new thumbnails are made in {self.thumb_home} "
                  "instead (the ones the index holds are still used)", file=sys.stderr)

    def thumbnail_folders(self) -> list[Path]:
        """Folders the thumbnails come from (Gradio's allowed paths)."""
        from .thumbnails import FOLDER

        return sorted({self.index_dir / FOLDER, self.thumb_home / FOLDER})

    def _thumb(self, path: Path, indexed: dict | None = None, size: int | None = None) -> Path:
        from .thumbnails import SIZE, content_key, ensure_thumbnail, thumbnail_path

        size = size or SIZE
        if self.thumb_home != self.index_dir:  # a read-only index: use the thumbnails it already holds
            held = thumbnail_path(self.index_dir, path, content_key(path, indexed), size)
            if held.is_file():
                return held
        return ensure_thumbnail(self.thumb_home, path, indexed, size=size)

    def stored_captions(self, hits: list[dict]) -> dict[str, dict]:
        """path -> {"en": ..., "zh": ...}: the captions the index stores (``caption --index``), which the
        searcher puts on every hit."""
        return {hit["path"]: hit["captions"] for hit in hits}

    def thumbnail(self, path: Path, indexed: dict | None = None) -> Path | None:
        """The hit's cached thumbnail, keyed by the sha1 the index stored (``indexed``) while the file is unchanged."""
        from ..images import BadImageError

        try:
            return self._thumb(path, indexed)
        except (BadImageError, OSError):
            return None

    def viewable(self, path: Path) -> Path:
        """The file itself if a browser shows its format, else a cached large JPEG rendition."""
        from ..images import BadImageError

        if path.suffix.lower() in BROWSER_FORMATS:
            return path
        try:
            return self._thumb(path, size=FULL_SIDE)
        except (BadImageError, OSError):
            return path

    # ---- searches
    def filters(self, folder=None, taken_after=None, taken_before=None, camera=None, types=None, min_size=None):
        """The Filters panel's fields (or the API's filter arguments) as ``Filters``; raises UsageError with a
        message naming the field for a bad value."""
        from .filters import Filters

        return Filters.parse(folder, taken_after, taken_before, camera, types, min_size, library=str(self.root))

    def top_folders(self, limit: int = 200) -> list[str]:
        """The library's top folders (for the folder filter's choices), from the paths the index holds."""
        import pyarrow as pa
        import pyarrow.compute as pc

        role = "clip" if "clip" in self.searcher.searchers else self.searcher.store.roles[0]
        paths = self.searcher.searchers[role].paths
        paths = paths if hasattr(paths, "type") else pa.array(list(paths), pa.string())
        nested = paths.filter(pc.match_substring(paths, "/"))  # in arrow: a 1M-row index stays quick to open
        heads = pc.unique(pc.list_element(pc.split_pattern(nested, "/", max_splits=1), 0))
        return sorted(heads.to_pylist())[:limit]

    def search(self, terms, k: int, strategy: str = "auto", filters=None, caption_text=None,
               hybrid: bool = False) -> tuple[dict, list[str]]:
        """``LibrarySearch.search`` on the index as it is now: the searcher first reopens what changed since
        the last search (``index`` or ``index --watch`` adding rows), so ``serve`` needs no restart. Both
        under the search lock: a refresh swaps the searchers a concurrent search would be reading."""
        import time

        warnings: list[str] = []
        with self._search_lock:
            started = time.perf_counter()
            refreshed = self.searcher.refresh()
            refresh_ms = 1000 * (time.perf_counter() - started)
            result = self.searcher.search(terms, k, strategy, filters, caption_text=caption_text, hybrid=hybrid,
                                          warn=warnings.append)
        result.update(refresh_ms=round(refresh_ms, 2), refreshed=refreshed)
        return result, warnings

    def by_text(self, query: str, strategy: str, k: int, filters=None) -> tuple[dict, list[str]]:
        from .search import Term

        return self.search([Term("text", query)], k, strategy, filters)

    def by_image(self, image, k: int, filters=None) -> dict:
        from .search import Term

        return self.search([Term("image", image)], k, filters=filters)[0]

    def hits(self, result: dict) -> tuple[list, list[dict]]:
        """Gallery items (thumbnail, label) and the hits as JSON rows, captions included."""
        rows = []
        for hit in result["hits"]:
            path = _inside(self.root, hit["path"])
            if path is not None:
                rows.append((path, hit))
        captions = self.stored_captions([hit for _, hit in rows])
        items, out = [], []
        for path, hit in rows:
            thumb = self.thumbnail(path, hit.get("indexed"))
            if thumb is None:
                continue
            caps = captions.get(hit["path"], {})
            row = {"rank": hit["rank"], "score": round(float(hit["score"]), 4), "file": hit["path"],
                   "caption_en": caps.get("en"), "caption_zh": caps.get("zh")}
            label = f"{hit['rank']}. {hit['score']:.3f}  {Path(hit['path']).name}"  # the full path: in the detail
            if caps.get("en") or caps.get("zh"):
                label += "\n" + " / ".join(c for c in (caps.get("en"), caps.get("zh")) if c)
            items.append((str(thumb), label))
            out.append(row)
        return items, out

    def note(self, result: dict, warnings=()) -> str:
        """One line under the gallery: how it was searched, what the terms were, what the filter kept."""
        note = (f"{result['strategy']} · {result['search']} search over {result['library_size']} images · "
                f"{result['ms']} ms")
        if result.get("refreshed"):
            note += " · the index changed since the last search: reopened"
        if result.get("encoded_text") and result["encoded_text"] != result.get("query"):
            note += f" · query encoded as: {result['encoded_text']}"
        if len(result.get("terms", ())) > 1:
            note += " · terms: " + " ".join(f"{t['weight']:+g}×{t['kind']}:{t['value']}" for t in result["terms"])
        if result.get("caption_text"):
            note += f" · caption text: {result['caption_text']}" + (
                " (fused with the query by reciprocal rank)" if result.get("query_kind") == "hybrid" else " (BM25)")
        if "filters" in result:
            how = result["filter_search"] + (f", nprobe {result['filter_nprobe']}" if result.get("filter_nprobe")
                                             else "")
            said = "; ".join(f"{k} {','.join(v) if isinstance(v, list) else v}" for k, v in result["filters"].items())
            note += (f" · filter: {said} -> "
                     f"{result['matching']} of {result['library_size']} images match ({how})")
        return " · ".join([note] + [f"note: {n}" for n in result.get("notes", ())] +
                          [f"warning: {w}" for w in warnings])

    def detail_html(self, hit: dict) -> str:
        path = _inside(self.root, hit["file"])
        if path is None:
            return "<p>this file is no longer in the library</p>"
        url = file_url(self.viewable(path))
        original = file_url(path)
        caps = []
        for lang, label in (("en", "English"), ("zh", "中文")):
            if hit.get(f"caption_{lang}"):
                caps.append(f"<div><b>{label}:</b> {html.escape(hit[f'caption_{lang}'])}</div>")
        captions = "".join(caps) or "<div><i>no stored captions (add them with <code>caption --index</code>, " \
                                    "or press Caption this)</i></div>"
        return (f'<a id="full-image-link" href="{url}" target="_blank" rel="noopener">'
                f'<img id="full-image" src="{url}" alt="{html.escape(hit["file"])}"></a>'
                f"<div><b>#{hit['rank']}</b> · score {hit['score']:.3f} · <code>{html.escape(hit['file'])}</code></div>"
                f'<div class="captions">{captions}</div>'
                f'<div><a href="{url}" target="_blank" rel="noopener">open the full image ↗</a>'
                + (f' · <a href="{original}" download>original file</a>' if url != original else "") + "</div>")

    # ---- uploads
    def upload(self, path) -> "Image.Image":  # noqa: F821
        """An uploaded file as an RGB image, or a message saying why it is refused."""
        import gradio as gr

        from ..images import BadImageError, load_image

        if path is None:
            raise gr.Error("upload an image first")
        path = Path(path)
        size = path.stat().st_size
        if size > self.max_upload_bytes:
            raise gr.Error(f"{path.name} is {size / 1024 / 1024:.1f} MB, over this server's upload limit of "
                           f"{self.max_upload_mb:g} MB (serve --max-upload-mb)")
        try:
            return load_image(path)
        except BadImageError as error:
            raise gr.Error(f"not an image this server can read: {str(error).replace(str(path) + ': ', '')}") from None

    def caption(self, image) -> dict:
        from .describe import caption_images

        with self._caption_lock:
            return caption_images([image], ("en", "zh"), self.settings)[0]


def _tolerant(gr, component, what: str, empty=None, coerce=None):
    """``component`` (a Gradio component) whose preprocessing answers an API call's odd value (null, a string
    for a number) with a one-line message naming the field. Gradio's own raises a TypeError there before any
    code of ours runs, which an API user sees only as a bare "the app raised an exception". (The instance's
    method is wrapped: a subclass would make Gradio write a .pyi stub beside this file.)"""
    preprocess = component.preprocess

    def tolerant(payload):
        if payload is None and empty is not None:
            payload = empty
        if coerce is not None:  # a field's own reading of what an API call sent, with its own message
            payload = coerce(payload)
        try:
            return preprocess(payload)
        except gr.Error:  # Gradio's own message (a value not among the choices, over the maximum)
            raise
        except (TypeError, ValueError):
            raise gr.Error(f"{what}: {str(payload)[:40]!r} is not a value this field takes") from None

    component.preprocess = tolerant
    return component


def _image_input(gr, **kwargs):
    """gr.Image that hands over the file path and refuses a non-image with a clear message.

    (gr.Image opens every upload with PIL before the event function runs; a text file would
    end in a bare "Error". The check wraps this one instance's preprocess: a subclass of a
    Gradio component would make Gradio write a .pyi stub beside this module.)
    """
    from PIL import UnidentifiedImageError

    component = gr.Image(type="filepath", sources=["upload", "clipboard"], **kwargs)
    preprocess = component.preprocess

    def checked(payload):
        try:
            return preprocess(payload)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
            name = getattr(payload, "orig_name", None) or "the upload"
            raise gr.Error(f"{name} is not an image this server can read "
                           f"(JPEG, PNG, WebP, HEIC, AVIF, ...): {type(error).__name__}") from None

    component.preprocess = checked
    return component


def _k_input(gr, **kwargs):
    """The results slider, whose API value a non-number ("lots") gets a message instead of a bare error."""
    component = gr.Slider(1, MAX_K, value=8, step=1, label="results", **kwargs)
    preprocess = component.preprocess

    def checked(payload):
        if not isinstance(payload, (int, float)) or isinstance(payload, bool):
            payload = checked_k(payload)  # "8" becomes 8; anything else gets its message
        return preprocess(payload)

    component.preprocess = checked
    return component


@contextlib.contextmanager
def _messages():
    """The project's errors (a bad filter, a query that cannot be searched, an index being rewritten) as the
    one-line message the page shows, never a bare "Error"."""
    import gradio as gr

    from ..errors import ChapterError

    try:
        yield
    except ChapterError as error:
        raise gr.Error(str(error)) from None


def _weight(value, where: str) -> float:
    import math

    import gradio as gr

    try:
        weight = 1.0 if value in (None, "") else float(value)
    except (TypeError, ValueError):
        weight = float("nan")
    if not math.isfinite(weight) or abs(weight) > MAX_WEIGHT:
        raise gr.Error(f"{where}: the weight must be a number from -{MAX_WEIGHT:g} to {MAX_WEIGHT:g}, "
                       f"not {str(value)[:40]!r}")
    return weight


def combined_terms(library: "WebLibrary", text, image, rows) -> list:
    """The combined-query builder's fields as ``search.Term``s, composed as the command line's are:
    the base text (rclip's ``2:text`` weight syntax, like ``--text``) and image, then each row
    (kind, add/subtract, value, uploaded image, weight) added or subtracted. A "this hit" row names a
    library path the index holds (its stored vector, as ``--add PATH``); the server never reads a path
    typed as a text or image term (that would encode any file it can read)."""
    import gradio as gr

    from .queries import parse_weighted
    from .search import Term

    terms = []
    if isinstance(text, str) and text.strip():
        weight, value = parse_weighted(checked_query(text))
        terms.append(Term("text", value, weight))
    if image is not None:
        terms.append(Term("image", library.upload(image)))
    for number, (kind, sign, value, upload, weight) in enumerate(rows, 1):
        where = f"term {number}"
        kind = kind or "text"
        if kind not in TERM_KINDS:
            raise gr.Error(f"{where}: the kind must be one of {', '.join(TERM_KINDS)}, not {str(kind)[:40]!r}")
        if sign not in (None, "", *SIGNS):
            raise gr.Error(f"{where}: choose add or subtract, not {str(sign)[:40]!r}")
        factor = -1.0 if sign == "subtract" else 1.0
        if kind == "text" and isinstance(value, str) and value.strip():
            terms.append(Term("text", checked_query(value), factor * _weight(weight, where)))
        elif kind == "image" and upload is not None:
            terms.append(Term("image", library.upload(upload), factor * _weight(weight, where)))
        elif kind == "this hit" and isinstance(value, str) and value.strip():
            relative = value.strip()
            if _inside(library.root, relative) is None:
                raise gr.Error(f"{where}: {relative[:80]!r} is not a photo in the library; click a result, "
                               "then press \"use the selected hit\"")
            terms.append(Term("indexed", relative, factor * _weight(weight, where)))
    if not terms:
        raise gr.Error("build a query first: a text or an image, and terms to add or subtract")
    return terms


def _weight_input(gr, where: str, **kwargs):
    """A term's weight, whose API value a non-number ("lots") gets a message instead of a bare error."""
    def checked(payload):
        if payload is not None and (not isinstance(payload, (int, float)) or isinstance(payload, bool)):
            payload = _weight(payload, where)  # "2" becomes 2.0; anything else gets its message
        return payload

    return _tolerant(gr, gr.Number(value=1, label="weight", minimum=-MAX_WEIGHT, maximum=MAX_WEIGHT, **kwargs),
                     f"{where} weight", coerce=checked)


def build_app(index_dir, settings: Settings | None = None, max_upload_mb: float = 20):
    """The Gradio app and its ``WebLibrary``."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # private photos: no usage reports, no version checks
    import gradio as gr

    from ..clip import clip_encoder
    from .filters import FORMATS
    from .queries import STRATEGIES, QueryError

    library = WebLibrary(index_dir, settings or Settings(), max_upload_mb)
    settings = library.settings
    root = library.root
    clip_encoder("clip", settings)  # loaded (and announced) before the first request
    rows = model_rows(settings)
    search_mode = next(iter(library.searcher.searchers.values())).mode  # the first role's (clip's) search
    per_client = ClientLimiter(PER_CLIENT)

    def checked_strategy(strategy):
        if strategy not in (None, "", *STRATEGIES):
            raise gr.Error(f"strategy must be one of {', '.join(STRATEGIES)}")
        return strategy or "auto"

    def answer(result, warnings=(), suffix=""):
        items, hits = library.hits(result)
        return items, library.note(result, warnings) + suffix, hits

    # Every search takes the Filters panel's six fields last, with defaults (no filter), so the API's older
    # calls (three or two arguments) still work. Every event takes the request (Gradio passes it; the API
    # does not see it): one client, a few slots.
    def text_search(query, strategy, k, folder=None, taken_after=None, taken_before=None, camera=None, types=None,
                    min_size=None, request: gr.Request = None):
        query, k, strategy = checked_query(query), checked_k(k), checked_strategy(strategy)
        with per_client.slot(request), _messages():
            filters = library.filters(folder, taken_after, taken_before, camera, types, min_size)
            try:
                result, warnings = library.by_text(query, strategy, k, filters)
            except QueryError as error:
                raise gr.Error(str(error)) from None
            return answer(result, warnings)

    def image_search(image_path, k, folder=None, taken_after=None, taken_before=None, camera=None, types=None,
                     min_size=None, request: gr.Request = None):
        k = checked_k(k)
        with per_client.slot(request), _messages():
            filters = library.filters(folder, taken_after, taken_before, camera, types, min_size)
            image = library.upload(image_path)
            return answer(library.by_image(image, k, filters))

    def find_similar(relative, k, folder=None, taken_after=None, taken_before=None, camera=None, types=None,
                     min_size=None, request: gr.Request = None):
        k = checked_k(k)
        path = _inside(root, relative) if isinstance(relative, str) and relative else None
        if path is None:
            raise gr.Error("pick a result first (click a thumbnail)")
        with per_client.slot(request), _messages():
            filters = library.filters(folder, taken_after, taken_before, camera, types, min_size)
            return answer(library.by_image(path, k, filters), suffix=f" · similar to {relative}")

    def combined_search(text, image,
                        term1_kind, term1_sign, term1_value, term1_image, term1_weight,
                        term2_kind, term2_sign, term2_value, term2_image, term2_weight,
                        term3_kind, term3_sign, term3_value, term3_image, term3_weight,
                        strategy, k, folder=None, taken_after=None, taken_before=None, camera=None, types=None,
                        min_size=None, request: gr.Request = None):
        k, strategy = checked_k(k), checked_strategy(strategy)
        term_rows = [(term1_kind, term1_sign, term1_value, term1_image, term1_weight),
                     (term2_kind, term2_sign, term2_value, term2_image, term2_weight),
                     (term3_kind, term3_sign, term3_value, term3_image, term3_weight)]
        with per_client.slot(request), _messages():
            filters = library.filters(folder, taken_after, taken_before, camera, types, min_size)
            terms = combined_terms(library, text, image, term_rows)
            return answer(*library.search(terms, k, strategy, filters))

    def caption_text_search(caption_text, hybrid, query, strategy, k, folder=None, taken_after=None, taken_before=None,
                            camera=None, types=None, min_size=None, request: gr.Request = None):
        from .search import Term

        caption_text, k, strategy = checked_query(caption_text), checked_k(k), checked_strategy(strategy)
        terms = []
        if hybrid:
            if not isinstance(query, str) or not query.strip():
                raise gr.Error("hybrid fuses the captions' words with the Query box's search: type a query too, "
                               "or untick hybrid")
            terms = [Term("text", checked_query(query))]
        with per_client.slot(request), _messages():
            filters = library.filters(folder, taken_after, taken_before, camera, types, min_size)
            return answer(*library.search(terms, k, strategy, filters, caption_text=caption_text,
                                          hybrid=bool(hybrid)))

    def select_hit(hits, event: gr.SelectData):
        if not hits or event.index is None or event.index >= len(hits):
            return "", ""
        hit = hits[event.index]
        return library.detail_html(hit), hit["file"]

    def use_hit(relative):
        if not isinstance(relative, str) or not relative:
            raise gr.Error("pick a result first (click a thumbnail), then use it as a term")
        return "this hit", relative

    def caption(image_path, request: gr.Request):
        with per_client.slot(request):
            captions = library.caption(library.upload(image_path))
        return captions["en"], captions["zh"]

    def caption_hit(relative, request: gr.Request):
        from ..images import BadImageError, load_image

        path = _inside(root, relative) if isinstance(relative, str) and relative else None
        if path is None:
            raise gr.Error("pick a result first (click a thumbnail)")
        with per_client.slot(request):
            try:
                captions = library.caption(load_image(path))
            except BadImageError as error:
                raise gr.Error(str(error)) from None
        return captions["en"], captions["zh"]

    def match(image_path, texts, request: gr.Request):
        from .describe import match_scores

        if not isinstance(texts, str) or len(texts) > 20 * MAX_QUERY_CHARS:
            raise gr.Error(f"give at most {20 * MAX_QUERY_CHARS} characters of captions, one per line")
        lines = [t.strip() for t in texts.splitlines() if t.strip()]
        if not lines:
            raise gr.Error("type one caption per line")
        if len(lines) > 20 or any(len(line) > MAX_QUERY_CHARS for line in lines):
            raise gr.Error(f"at most 20 captions of at most {MAX_QUERY_CHARS} characters each")
        with per_client.slot(request):
            image = library.upload(image_path)
            try:
                with library._search_lock:
                    scored = match_scores(image, lines, "auto", settings)
            except QueryError as error:
                raise gr.Error(str(error)) from None
        return {row["text"]: row["score"] for row in scored}

    with gr.Blocks(title="Chapter 9 capstone: image library", analytics_enabled=False) as app:
        gr.HTML(header_html(rows, root, len(library.searcher.store), search_mode), elem_id="header")
        with gr.Tab("Search 检索"):
            with gr.Row():
                query = gr.Textbox(label="Query (English or Chinese 中文)", elem_id="query", scale=4,
                                   placeholder="a red circle at the top left / 左上方的红色圆形")
                strategy = gr.Dropdown(list(STRATEGIES), value="auto", label="Chinese query strategy", scale=1)
                k = _k_input(gr, scale=1)
            with gr.Row():
                go = gr.Button("Search", variant="primary", elem_id="search-button")
            with gr.Accordion("…or search by an example image", open=False):
                with gr.Row():
                    example = _image_input(gr, label="Example image", elem_id="example-image", height=200)
                    go_image = gr.Button("Find images like this", elem_id="image-search-button")
            with gr.Accordion("…or combine: a text and/or an image, plus terms to add or subtract 组合检索",
                              open=False, elem_id="combined"):
                with gr.Row():
                    base_text = gr.Textbox(label="text (2:text weighs it twice)", elem_id="combined-text", scale=3,
                                           placeholder="a dog on a beach / 海滩上的狗")
                    base_image = _image_input(gr, label="and/or an image", elem_id="combined-image", height=120,
                                              scale=1)
                term_inputs, uses = [], []
                for number in range(1, TERM_ROWS + 1):
                    with gr.Row(elem_id=f"term{number}", equal_height=True):
                        kind = gr.Radio(list(TERM_KINDS), value="text", label=f"term {number}",
                                        elem_id=f"term{number}-kind", scale=2)
                        sign = gr.Radio(list(SIGNS), value="add" if number == 1 else "subtract",
                                        label="add or subtract", elem_id=f"term{number}-sign", scale=1)
                        value = gr.Textbox(label="text, or the hit's path", elem_id=f"term{number}-value", scale=3)
                        upload = _image_input(gr, label="image", elem_id=f"term{number}-image", height=120,
                                              scale=1)
                        weight = _weight_input(gr, f"term {number}", elem_id=f"term{number}-weight", scale=1,
                                               min_width=70)
                        use = gr.Button("use the selected hit", elem_id=f"term{number}-use-hit", scale=1,
                                        size="sm")
                    term_inputs += [kind, sign, value, upload, weight]
                    uses.append((use, kind, value))  # wired below, once the selected hit's field exists
                go_combined = gr.Button("Search the combination", variant="primary", elem_id="combined-button")
            with gr.Accordion("…or search the captions' words 按描述文字检索 (English or 中文)", open=False,
                              elem_id="caption-search"):
                with gr.Row():
                    caption_query = gr.Textbox(label="words the stored captions contain (caption --index)",
                                               elem_id="caption-text", scale=4, placeholder="zebra / 斑马")
                    hybrid = gr.Checkbox(label="hybrid: fuse with the Query box's search by reciprocal rank",
                                         value=False, elem_id="caption-hybrid", scale=2)
                    go_caption = gr.Button("Search the captions", elem_id="caption-text-button", scale=1)
            with gr.Accordion("Filters 筛选 (every search above)", open=False, elem_id="filters"):
                with gr.Row():
                    folder = gr.Dropdown([("(whole library)", ""), *[(f, f) for f in library.top_folders()]],
                                         value="", allow_custom_value=True, label="folder (or type a sub-folder)",
                                         elem_id="filter-folder")
                    taken_after = gr.Textbox(label="taken on or after (ISO date)", placeholder="2024-05-01",
                                             elem_id="filter-after")
                    taken_before = gr.Textbox(label="taken before (ISO date)", placeholder="2024-06-01",
                                              elem_id="filter-before")
                    camera = gr.Textbox(label="camera (part of make or model)", placeholder="canon / iphone 12",
                                        elem_id="filter-camera")
                with gr.Row():
                    types = _tolerant(gr, gr.CheckboxGroup(list(FORMATS), value=[], label="file types (none ticked: all)",
                                                        elem_id="filter-types", scale=3), "file types", empty=[])
                    min_size = _tolerant(gr, gr.Number(value=0, precision=0, minimum=0, label="shorter side at least (px)",
                                                  elem_id="filter-min-size", scale=1), "shorter side at least (px)")
            filter_inputs = [folder, taken_after, taken_before, camera, types, min_size]
            note = gr.Markdown(elem_id="search-note")
            with gr.Row():
                with gr.Column(scale=3):
                    # fit_columns off: Gradio would otherwise stretch one or two hits to the gallery's width
                    results = gr.Gallery(label="Results (click one)", columns=4, height="auto", fit_columns=False,
                                         allow_preview=False, object_fit="contain", elem_id="results")
                with gr.Column(scale=2):
                    detail = gr.HTML(elem_id="hit-detail")
                    selected = gr.Textbox(label="selected", elem_id="selected-path", interactive=False,
                                          visible=False)
                    with gr.Row():
                        similar = gr.Button("Find similar", elem_id="similar-button")
                        caption_this = gr.Button("Caption this", elem_id="caption-hit-button")
                    hit_en = gr.Textbox(label="caption (English)", elem_id="hit-caption-en")
                    hit_zh = gr.Textbox(label="描述 (中文)", elem_id="hit-caption-zh")
            hits = gr.JSON(visible=False)
            outputs = [results, note, hits]
            search = {"concurrency_limit": SEARCH_CONCURRENCY, "concurrency_id": "search"}
            gr.on([go.click, query.submit], text_search, [query, strategy, k, *filter_inputs], outputs,
                  api_name="text_search", **search)
            go_image.click(image_search, [example, k, *filter_inputs], outputs, api_name="image_search", **search)
            similar.click(find_similar, [selected, k, *filter_inputs], outputs, api_name="find_similar", **search)
            gr.on([go_combined.click, base_text.submit], combined_search,
                  [base_text, base_image, *term_inputs, strategy, k, *filter_inputs], outputs,
                  api_name="combined_search", **search)
            gr.on([go_caption.click, caption_query.submit], caption_text_search,
                  [caption_query, hybrid, query, strategy, k, *filter_inputs], outputs,
                  api_name="caption_text_search", **search)
            results.select(select_hit, [hits], [detail, selected], api_visibility="private", queue=False)
            # new results: the panel must not keep describing a hit of the previous search
            # (in the browser, at once: no round trip that a quick click on a new hit could overtake)
            hits.change(None, None, [detail, selected, hit_en, hit_zh], js="() => ['', '', '', '']",
                        api_visibility="private", queue=False)
            for use, kind, value in uses:
                use.click(use_hit, [selected], [kind, value], api_visibility="private", queue=False)
            caption_this.click(caption_hit, [selected], [hit_en, hit_zh], api_name="caption_hit",
                               concurrency_limit=1, concurrency_id="caption")
        with gr.Tab("Caption 描述"):
            with gr.Row():
                cap_image = _image_input(gr, label="Image", elem_id="caption-image")
                with gr.Column():
                    cap_go = gr.Button("Caption", variant="primary", elem_id="caption-button")
                    cap_en, cap_zh = gr.Textbox(label="English"), gr.Textbox(label="中文")
            cap_go.click(caption, [cap_image], [cap_en, cap_zh], api_name="caption", concurrency_limit=1,
                         concurrency_id="caption")
        with gr.Tab("Match 匹配"):
            with gr.Row():
                match_image = _image_input(gr, label="Image", elem_id="match-image")
                with gr.Column():
                    match_texts = gr.Textbox(lines=4, label="Captions, one per line (English or 中文)")
                    match_go = gr.Button("Score", variant="primary")
                    match_out = gr.Label(label="cosine similarity")
            match_go.click(match, [match_image, match_texts], [match_out], api_name="match",
                           concurrency_limit=SEARCH_CONCURRENCY, concurrency_id="search")
    return app, library


def serve(index_dir, host: str = "127.0.0.1", port: int = 7860, settings: Settings | None = None,
          max_upload_mb: float = 20, block: bool = True, auth: list[tuple[str, str]] | None = None,
          no_auth: bool = False):
    """Serve the UI; ``auth``: (user, password) logins, required for a host other than loopback unless
    ``no_auth``. Raises UsageError before loading anything when the exposure is refused."""
    from .store import Store

    if host not in LOOPBACK:
        check_exposure(host, auth or [], no_auth, Store.open(index_dir).library)
    app, library = build_app(index_dir, settings, max_upload_mb)
    app.queue(default_concurrency_limit=SEARCH_CONCURRENCY, max_size=QUEUE_SIZE)
    allowed = [str(library.root), *map(str, library.thumbnail_folders())]  # absolute, as Gradio requires
    # max_file_size in bytes: Gradio parses "5.0mb" as an error, so never format a float into a unit string
    app.launch(server_name=host, server_port=port, allowed_paths=allowed, auth=auth or None,
               auth_message="Chapter 9 image library: log in (serve --auth / --auth-file)" if auth else None,
               max_file_size=int(max_upload_mb * 1024 * 1024), prevent_thread_lock=not block, quiet=False,
               footer_links=["api"], css=CSS, show_error=False, enable_monitoring=False)
    return app
