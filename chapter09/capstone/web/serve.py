"""The web UI: search by text or example image, caption, image-text match, in Gradio. This module starts it;
its parts are in ``web/`` (``access``, ``checks``, ``library``, ``handlers``, ``components``, ``i18n``, ``page``).
``--lang en|zh|auto`` picks the page's language (``auto``: each browser's; ``web/i18n.py``).

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
* **Duplicates** (``web/duplicates.py``): exact copies (SHA-1) beside near copies (cosine at least a
  threshold the page sets, explained there), found by ``dedup.find_duplicates``; nothing is deleted.
* **A stable API.** Every action has one explicit name -- ``/text_search``, ``/image_search``,
  ``/find_similar``, ``/combined_search``, ``/caption_text_search``, ``/ocr_text_search``,
  ``/caption``, ``/caption_hit``,
  ``/match``, ``/duplicates`` -- callable with ``gradio_client`` (``Client(url).predict(..., api_name="/text_search")``);
  every search takes the eight filters last, each optional, so calls written before them still work.
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
from ...models import Settings
from ..store.database import Store
from .access import LOOPBACK, PER_CLIENT, ClientLimiter, check_exposure, parse_logins
from .i18n import PageWords, checked_lang

__all__ = ["parse_logins", "serve"]


def serve(index_dir, host: str = "127.0.0.1", port: int = 7860, settings: Settings | None = None,
          max_upload_mb: float = 20, block: bool = True, auth: list[tuple[str, str]] | None = None,
          no_auth: bool = False, lang: str = "auto"):
    """Serve the UI; ``auth``: (user, password) logins, required for a host other than loopback unless
    ``no_auth``; ``lang``: the page's language (en, zh, or auto: each browser's). Raises UsageError before
    loading anything when the exposure is refused or ``lang`` is not one of those."""
    checked_lang(lang)
    if host not in LOOPBACK:
        check_exposure(host, auth or [], no_auth, Store.open(index_dir).library)
    # heavy: FastAPI and Gradio (web.api, web.page), imported only to serve
    from .api import build_api, gradio_session_user, mounted
    from .page import CSS, QUEUE_SIZE, SEARCH_CONCURRENCY, build_app

    words = PageWords(lang)
    limiter = ClientLimiter(PER_CLIENT)  # one for the page and the JSON API: a client cannot double its share
    app, library = build_app(index_dir, settings, max_upload_mb, words, limiter)
    app.queue(default_concurrency_limit=SEARCH_CONCURRENCY, max_size=QUEUE_SIZE)
    allowed = [str(library.root), *map(str, library.thumbnail_folders())]  # absolute, as Gradio requires
    # the JSON API at /api is one of the server's routes from its start (no window where /api answers 404)
    api = build_api(library, limiter, auth or (), gradio_session_user(lambda: app.server_app))
    # max_file_size in bytes: Gradio parses "5.0mb" as an error, so never format a float into a unit string
    app.launch(server_name=host, server_port=port, allowed_paths=allowed, auth=auth or None,
               auth_message=words.plain("login") if auth else None,
               max_file_size=int(max_upload_mb * 1024 * 1024), prevent_thread_lock=True, quiet=False,
               footer_links=["api"], css=CSS, show_error=False, enable_monitoring=False,
               i18n=words.translations(), app_kwargs={"routes": [mounted(api)]})
    print(f"[serve] JSON API: {app.local_url.rstrip('/')}/api/search?text=...  (docs: /api/docs)")
    if block:
        app.block_thread()
    return app
