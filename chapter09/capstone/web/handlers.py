"""One method per API endpoint of the web UI (``/text_search``, ``/image_search``, ``/find_similar``,
``/combined_search``, ``/caption_text_search``, ``/ocr_text_search``, ``/caption``, ``/caption_hit``, ``/match``; ``/duplicates`` is
``duplicates.DuplicatesView``'s) and the page's own events. Each checks its inputs (``checks``), then runs through ``guarded``, the one wrapper that gives it the
client's rate-limit slot and turns the project's errors into the page's one-line message; searches also get their
filters parsed there and their answer formatted by ``answer``. Every search is ``WebLibrary.search``.

Every search takes the Filters panel's eight fields last (place and near after the first six), with defaults (no
filter), so the API's older calls (three or two arguments) still work. Every event takes the request (Gradio
passes it; the API does not see it): one client, a few slots. The parameter names are the API's: Gradio reads
them (and the annotations) at run time, so this module has no ``from __future__ import annotations``.
"""
import contextlib

import gradio as gr

from ...exercises.i18n import SPEAKING
from ..index.video import split_key
from ..search.library_search import SearchRequest, Term
from .access import PER_CLIENT, ClientLimiter
from .checks import (
    checked_hit,
    checked_k,
    checked_match_lines,
    checked_query,
    checked_strategy,
    combined_terms,
    error_messages,
)
from .i18n import request_lang, say
from .library import WebLibrary


class Handlers:
    """The web UI's event functions over one ``WebLibrary``, each one client's slot at a time."""

    def __init__(self, library: WebLibrary, per_client: ClientLimiter | None = None, lang: str = "auto"):
        self.library, self.per_client = library, per_client or ClientLimiter(PER_CLIENT)
        self.lang = lang  # the page's: en, zh, or auto (each request in its browser's language)

    def speak(self, request) -> None:
        """Every message of this event (checks, the library's, the project's errors) in the request's language:
        the event runs in a context of its own, so this holds for it alone."""
        SPEAKING.set(request_lang(self.lang, request))

    # ---- the one wrapper
    @contextlib.contextmanager
    def guarded(self, request):
        """The client's slot (or its "slow down"), and the project's errors as the page's message."""
        with self.per_client.slot(request), error_messages():
            yield

    def searched(self, request, filter_fields, search, suffix=""):
        """A search through ``guarded``: the filter fields parsed first, then ``search(filters)`` (which
        returns ``WebLibrary.search``'s result and warnings), answered as gallery, note and hits."""
        with self.guarded(request):
            filters = self.library.filters(*filter_fields)
            result, warnings = search(filters)
            return self.answer(result, warnings, suffix)

    def answer(self, result, warnings=(), suffix=""):
        items, hits = self.library.hits(result)
        return items, self.library.note(result, warnings) + suffix, hits

    # ---- searches
    def text_search(self, query, strategy, k, folder=None, taken_after=None, taken_before=None, camera=None,
                    types=None, min_size=None, place=None, near=None, request: gr.Request = None):
        self.speak(request)
        query, k, strategy = checked_query(query), checked_k(k), checked_strategy(strategy)
        return self.searched(request, (folder, taken_after, taken_before, camera, types, min_size, place, near),
                             lambda filters: self.library.by_text(query, strategy, k, filters))

    def image_search(self, image_path, k, folder=None, taken_after=None, taken_before=None, camera=None, types=None,
                     min_size=None, place=None, near=None, request: gr.Request = None):
        self.speak(request)
        k = checked_k(k)
        return self.searched(request, (folder, taken_after, taken_before, camera, types, min_size, place, near),
                             lambda filters: self.library.by_image(self.library.upload(image_path), k, filters))

    def find_similar(self, relative, k, folder=None, taken_after=None, taken_before=None, camera=None, types=None,
                     min_size=None, place=None, near=None, request: gr.Request = None):
        self.speak(request)
        k = checked_k(k)
        path = checked_hit(self.library.root, relative)
        return self.searched(request, (folder, taken_after, taken_before, camera, types, min_size, place, near),
                             lambda filters: self.library.by_image(path, k, filters),
                             say(f" · similar to {relative}", f" · 与 {relative} 相似"))

    def combined_search(self, text, image,
                        term1_kind, term1_sign, term1_value, term1_image, term1_weight,
                        term2_kind, term2_sign, term2_value, term2_image, term2_weight,
                        term3_kind, term3_sign, term3_value, term3_image, term3_weight,
                        strategy, k, folder=None, taken_after=None, taken_before=None, camera=None, types=None,
                        min_size=None, place=None, near=None, request: gr.Request = None):
        """The combined-query builder: its API takes each of the three term rows' five fields by name
        (``term1_kind`` ... ``term3_weight``), as the page's inputs are wired; they are read as rows here."""
        self.speak(request)
        k, strategy = checked_k(k), checked_strategy(strategy)
        term_rows = [(term1_kind, term1_sign, term1_value, term1_image, term1_weight),
                     (term2_kind, term2_sign, term2_value, term2_image, term2_weight),
                     (term3_kind, term3_sign, term3_value, term3_image, term3_weight)]
        return self.searched(request, (folder, taken_after, taken_before, camera, types, min_size, place, near),
                             lambda filters: self.library.search(SearchRequest(
                                 combined_terms(self.library, text, image, term_rows), k, strategy, filters)))

    def caption_text_search(self, caption_text, hybrid, query, strategy, k, folder=None, taken_after=None,
                            taken_before=None, camera=None, types=None, min_size=None, place=None, near=None,
                            request: gr.Request = None):
        self.speak(request)
        caption_text, k, strategy = checked_query(caption_text), checked_k(k), checked_strategy(strategy)
        terms = []
        if hybrid:
            if not isinstance(query, str) or not query.strip():
                raise gr.Error(say("hybrid fuses the captions' words with the Query box's search: type a query too, "
                                   "or untick hybrid", "混合检索会把描述文字与查询框的检索融合：请同时输入查询，或取消勾选“混合”"))
            terms = [Term("text", checked_query(query))]
        return self.searched(request, (folder, taken_after, taken_before, camera, types, min_size, place, near),
                             lambda filters: self.library.search(SearchRequest(terms, k, strategy, filters,
                                                                               caption_text, bool(hybrid))))

    def ocr_text_search(self, ocr_text, hybrid, query, strategy, k, folder=None, taken_after=None,
                        taken_before=None, camera=None, types=None, min_size=None, request: gr.Request = None):
        """The words read in the photos (``index --ocr``), alone or fused with the Query box's search."""
        ocr_text, k, strategy = checked_query(ocr_text), checked_k(k), checked_strategy(strategy)
        terms = []
        if hybrid:
            if not isinstance(query, str) or not query.strip():
                raise gr.Error("hybrid fuses the photos' text with the Query box's search: type a query too, "
                               "or untick hybrid")
            terms = [Term("text", checked_query(query))]
        return self.searched(request, (folder, taken_after, taken_before, camera, types, min_size),
                             lambda filters: self.library.search(SearchRequest(terms, k, strategy, filters,
                                                                               hybrid=bool(hybrid), ocr_text=ocr_text)))

    # ---- the selected hit
    def select_hit(self, hits, event: gr.SelectData, request: gr.Request = None):
        self.speak(request)
        if not hits or event.index is None or event.index >= len(hits):
            return "", ""
        hit = hits[event.index]
        return self.library.detail_html(hit), hit["file"]

    def use_hit(self, relative, request: gr.Request = None):
        self.speak(request)
        if not isinstance(relative, str) or not relative:
            raise gr.Error(say("pick a result first (click a thumbnail), then use it as a term",
                               "请先选一个结果（点击一张缩略图），再把它用作一项"))
        return "this hit", relative

    # ---- captions and match
    def caption(self, image_path, request: gr.Request):
        self.speak(request)
        with self.guarded(request):
            captions = self.library.caption(self.library.upload(image_path))
        return captions["en"], captions["zh"]

    def caption_hit(self, relative, request: gr.Request):
        self.speak(request)
        file, time_s = split_key(relative) if isinstance(relative, str) else (relative, None)
        path = checked_hit(self.library.root, file)
        with self.guarded(request):
            captions = self.library.caption_file(path, time_s)
        return captions["en"], captions["zh"]

    def match(self, image_path, texts, request: gr.Request):
        self.speak(request)
        lines = checked_match_lines(texts)
        with self.guarded(request):
            return self.library.match(self.library.upload(image_path), lines)
