"""The web UI's page: the header (which models answer, the toy banner), the layout of its tabs, and the wiring of
each control to its handler (``handlers.Handlers``) under its API name. No logic of its own: what a control does
is its handler's."""
import html
from pathlib import Path

import gradio as gr

from ...clip import clip_encoder
from ...models import ModelUnavailableError, Settings, resolve
from ..search.filters import FORMATS
from ..search.queries import STRATEGIES
from .checks import SIGNS, TERM_KINDS, TERM_ROWS
from .components import image_input, k_input, tolerant, weight_input
from .duplicates import CSS as DUPLICATES_CSS
from .duplicates import duplicates_tab
from .handlers import Handlers
from .i18n import WORDS, PageWords, request_lang, word
from .library import WebLibrary

TOY_BANNER = WORDS["toy_banner"][0]
ROLES = ("clip", "chinese_clip", "multilingual_text", "translator_zh_en", "translator_en_zh", "captioner")
SEARCH_CONCURRENCY = 8  # searches answered at once (the rest queue)
QUEUE_SIZE = 64  # requests waiting at most; beyond it Gradio answers that the queue is full
SEARCH = {"concurrency_limit": SEARCH_CONCURRENCY, "concurrency_id": "search"}
CAPTION = {"concurrency_limit": 1, "concurrency_id": "caption"}  # one generation at a time
PAGE_ONLY = {"api_visibility": "private", "queue": False}  # the page's own events: no API, no queue

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
""" + DUPLICATES_CSS


def model_rows(settings: Settings) -> list[dict]:
    """One row per role the UI may use: real or toy, class, location (or why it is unavailable)."""
    rows = []
    for role in ROLES:
        try:
            resolved = resolve(role, settings)
            rows.append({"role": role, "weights": "toy twin" if resolved.is_toy else "real",
                         "class": resolved.spec.model_class, "location": str(resolved.location)})
        except ModelUnavailableError as error:  # a missing twin is information, not a crash
            rows.append({"role": role, "weights": "unavailable", "class": "", "location": str(error)[:160]})
    return rows


def header_html(rows: list[dict], root: Path, images: int, search_mode: str, lang: str = "en") -> str:
    """The banner (toy twins), the title, the library and the model table, in ``lang`` (model names as they are)."""
    toy = any(row["weights"] == "toy twin" for row in rows)
    banner = f'<div id="toy-banner">⚠ {html.escape(word("toy_banner", lang))}</div>' if toy else ""
    cells = "".join(
        f"<tr><td>{row['role']}</td><td class=\"{'toy' if row['weights'] == 'toy twin' else 'real'}\">"
        f"{html.escape(word(row['weights'], lang))}</td><td>{html.escape(row['class'])}</td>"
        f"<td class=\"loc\">{html.escape(row['location'])}</td></tr>" for row in rows)
    heads = "".join(f"<th>{word(key, lang)}</th>" for key in ("role", "weights", "class", "location"))
    mode = word(search_mode, lang) if search_mode in WORDS else search_mode  # exact or ann
    return (f"{banner}<h2>{html.escape(word('heading', lang))}</h2>"
            f"<div><code>{html.escape(str(root))}</code> · "
            f"{word('images_searched', lang, images=images, mode=mode)}</div>"
            f"<div id=\"model-table\"><table><thead><tr>{heads}</tr></thead><tbody>{cells}</tbody></table></div>")



def build_app(index_dir, settings: Settings | None = None, max_upload_mb: float = 20,
              lang: str | PageWords = "auto", limiter=None):
    """The Gradio app and its ``WebLibrary``, its words in ``lang`` (``en``, ``zh``, or ``auto``: the browser's,
    whose ``PageWords.translations()`` must go to ``launch(i18n=...)``); ``limiter``: the per-client limits
    (``access.ClientLimiter``) when shared with the JSON API."""
    words = lang if isinstance(lang, PageWords) else PageWords(lang)
    library = WebLibrary(index_dir, settings or Settings(), max_upload_mb)
    clip_encoder("clip", library.settings)  # loaded (and announced) before the first request
    handlers = Handlers(library, limiter, lang=words.lang)
    search_mode = next(iter(library.searcher.searchers.values())).mode  # the first role's (clip's) search
    rows = model_rows(library.settings)

    def header(lang: str) -> str:
        return header_html(rows, library.root, len(library.searcher.store), search_mode, lang)

    title = words.plain("title")
    with gr.Blocks(title=title, analytics_enabled=False) as app, words.speaking():
        shown = gr.HTML(header("en" if words.lang == "auto" else words.lang), elem_id="header")
        with gr.Tab(words("tab_search")):
            search_tab(handlers, library, words)
        with gr.Tab(words("tab_caption")):
            caption_tab(handlers, words)
        with gr.Tab(words("tab_match")):
            match_tab(handlers, words)
        with gr.Tab(words("tab_duplicates")):
            duplicates_tab(library, handlers, words)
        if words.lang == "auto":  # the header is the server's HTML: written again in the browser's language
            def localised_header(request: gr.Request):
                return header(request_lang("auto", request))

            app.load(localised_header, None, shown, **PAGE_ONLY)
    return app, library


def search_tab(handlers: Handlers, library: WebLibrary, words: PageWords) -> None:
    """The search tab: the query box, example image, combined builder, caption text and filters above the
    results and the selected hit's detail; each search wired to its handler under its API name."""
    query, strategy, k, go, example, go_image = _query_row(words)
    base_text, base_image, term_inputs, uses, go_combined = _combined_builder(words)
    caption_query, hybrid, go_caption = _caption_text_row(words)
    ocr_query, ocr_hybrid, go_ocr = _ocr_text_row(words)
    filter_inputs = _filters_panel(library.top_folders(), words)
    note = gr.Markdown(elem_id="search-note")
    with gr.Row():
        with gr.Column(scale=3):
            # fit_columns off: Gradio would otherwise stretch one or two hits to the gallery's width
            results = gr.Gallery(label=words("results"), columns=4, height="auto", fit_columns=False,
                                 allow_preview=False, object_fit="contain", elem_id="results")
        with gr.Column(scale=2):
            detail = gr.HTML(elem_id="hit-detail")
            selected = gr.Textbox(label=words("selected"), elem_id="selected-path", interactive=False, visible=False)
            with gr.Row():
                similar = gr.Button(words("find_similar"), elem_id="similar-button")
                caption_this = gr.Button(words("caption_this"), elem_id="caption-hit-button")
            hit_en = gr.Textbox(label=words("caption_en"), elem_id="hit-caption-en")
            hit_zh = gr.Textbox(label=words("caption_zh"), elem_id="hit-caption-zh")
    hits = gr.JSON(visible=False)
    outputs = [results, note, hits]
    gr.on([go.click, query.submit], handlers.text_search, [query, strategy, k, *filter_inputs], outputs,
          api_name="text_search", **SEARCH)
    go_image.click(handlers.image_search, [example, k, *filter_inputs], outputs, api_name="image_search", **SEARCH)
    similar.click(handlers.find_similar, [selected, k, *filter_inputs], outputs, api_name="find_similar", **SEARCH)
    gr.on([go_combined.click, base_text.submit], handlers.combined_search,
          [base_text, base_image, *term_inputs, strategy, k, *filter_inputs], outputs,
          api_name="combined_search", **SEARCH)
    gr.on([go_caption.click, caption_query.submit], handlers.caption_text_search,
          [caption_query, hybrid, query, strategy, k, *filter_inputs], outputs,
          api_name="caption_text_search", **SEARCH)
    gr.on([go_ocr.click, ocr_query.submit], handlers.ocr_text_search,
          [ocr_query, ocr_hybrid, query, strategy, k, *filter_inputs], outputs, api_name="ocr_text_search", **SEARCH)
    results.select(handlers.select_hit, [hits], [detail, selected], **PAGE_ONLY)
    # new results: the panel must not keep describing a hit of the previous search
    # (in the browser, at once: no round trip that a quick click on a new hit could overtake)
    hits.change(None, None, [detail, selected, hit_en, hit_zh], js="() => ['', '', '', '']", **PAGE_ONLY)
    for use, kind, value in uses:
        use.click(handlers.use_hit, [selected], [kind, value], **PAGE_ONLY)
    caption_this.click(handlers.caption_hit, [selected], [hit_en, hit_zh], api_name="caption_hit", **CAPTION)


def _query_row(words: PageWords) -> tuple:
    with gr.Row():
        query = gr.Textbox(label=words("query"), elem_id="query", scale=4,
                           placeholder=words("query_placeholder"))
        strategy = gr.Dropdown(list(STRATEGIES), value="auto", label=words("strategy"), scale=1)
        k = k_input(label=words("k"), scale=1)
    with gr.Row():
        go = gr.Button(words("search"), variant="primary", elem_id="search-button")
    with gr.Accordion(words("by_example"), open=False):
        with gr.Row():
            example = image_input(label=words("example_image"), elem_id="example-image", height=200)
            go_image = gr.Button(words("find_like"), elem_id="image-search-button")
    return query, strategy, k, go, example, go_image


def _combined_builder(words: PageWords) -> tuple:
    """A base text and/or image, then ``TERM_ROWS`` rows of (kind, add/subtract, value, image, weight); each row's
    "use the selected hit" button is wired by the caller, once the selected hit's field exists."""
    with gr.Accordion(words("combine"), open=False, elem_id="combined"):
        with gr.Row():
            base_text = gr.Textbox(label=words("base_text"), elem_id="combined-text", scale=3,
                                   placeholder=words("base_text_placeholder"))
            base_image = image_input(label=words("base_image"), elem_id="combined-image", height=120, scale=1)
        term_inputs, uses = [], []
        for number in range(1, TERM_ROWS + 1):
            with gr.Row(elem_id=f"term{number}", equal_height=True):
                kind = gr.Radio(words.choices(TERM_KINDS), value="text", label=words(f"term {number}"),
                                elem_id=f"term{number}-kind", scale=2)
                sign = gr.Radio(words.choices(SIGNS), value="add" if number == 1 else "subtract",
                                label=words("sign"), elem_id=f"term{number}-sign", scale=1)
                value = gr.Textbox(label=words("term_value"), elem_id=f"term{number}-value", scale=3)
                upload = image_input(label=words("image"), elem_id=f"term{number}-image", height=120, scale=1)
                weight = weight_input(f"term {number}", label=words("weight"),
                                      elem_id=f"term{number}-weight", scale=1, min_width=70)
                use = gr.Button(words("use_hit"), elem_id=f"term{number}-use-hit", scale=1, size="sm")
            term_inputs += [kind, sign, value, upload, weight]
            uses.append((use, kind, value))
        go_combined = gr.Button(words("search_combination"), variant="primary", elem_id="combined-button")
    return base_text, base_image, term_inputs, uses, go_combined


def _caption_text_row(words: PageWords) -> tuple:
    with gr.Accordion(words("caption_words"), open=False,
                      elem_id="caption-search"):
        with gr.Row():
            caption_query = gr.Textbox(label=words("caption_text"), elem_id="caption-text", scale=4,
                                       placeholder=words("caption_text_placeholder"))
            hybrid = gr.Checkbox(label=words("hybrid"),
                                 value=False, elem_id="caption-hybrid", scale=2)
            go_caption = gr.Button(words("search_captions"), elem_id="caption-text-button", scale=1)
    return caption_query, hybrid, go_caption


def _ocr_text_row(words: PageWords) -> tuple:
    with gr.Accordion(words("ocr_row"), open=False, elem_id="ocr-search"):
        with gr.Row():
            ocr_query = gr.Textbox(label=words("ocr_text"), elem_id="ocr-text", scale=4, placeholder=words("ocr_placeholder"))
            hybrid = gr.Checkbox(label=words("ocr_hybrid"), value=False, elem_id="ocr-hybrid", scale=2)
            go_ocr = gr.Button(words("ocr_go"), elem_id="ocr-text-button", scale=1)
    return ocr_query, hybrid, go_ocr


def _filters_panel(top_folders: list[str], words: PageWords) -> list:
    """The eight filter fields every search takes last (folder, dates, camera, file types, shorter
    side, place, near)."""
    with gr.Accordion(words("filters"), open=False, elem_id="filters"):
        with gr.Row():
            folder = gr.Dropdown([(words("whole_library"), ""), *[(f, f) for f in top_folders]],
                                 value="", allow_custom_value=True, label=words("folder"),
                                 elem_id="filter-folder")
            taken_after = gr.Textbox(label=words("taken_after"), placeholder="2024-05-01",
                                     elem_id="filter-after")
            taken_before = gr.Textbox(label=words("taken_before"), placeholder="2024-06-01",
                                      elem_id="filter-before")
            camera = gr.Textbox(label=words("camera"), placeholder="canon / iphone 12",
                                elem_id="filter-camera")
        with gr.Row():
            types = tolerant(gr.CheckboxGroup(list(FORMATS), value=[], label=words("types"),
                                              elem_id="filter-types", scale=3), "types", empty=[])
            min_size = tolerant(gr.Number(value=0, precision=0, minimum=0, label=words("min_size"),
                                          elem_id="filter-min-size", scale=1), "min_size")
        with gr.Row():
            place = gr.Textbox(label=words("place"), placeholder=words("place_placeholder"), elem_id="filter-place")
            near = gr.Textbox(label=words("near"), placeholder=words("near_placeholder"), elem_id="filter-near")
    return [folder, taken_after, taken_before, camera, types, min_size, place, near]


def caption_tab(handlers: Handlers, words: PageWords) -> None:
    with gr.Row():
        image = image_input(label=words("image_upload"), elem_id="caption-image")
        with gr.Column():
            go = gr.Button(words("caption"), variant="primary", elem_id="caption-button")
            english, chinese = gr.Textbox(label=words("english")), gr.Textbox(label=words("chinese"))
    go.click(handlers.caption, [image], [english, chinese], api_name="caption", **CAPTION)


def match_tab(handlers: Handlers, words: PageWords) -> None:
    with gr.Row():
        image = image_input(label=words("image_upload"), elem_id="match-image")
        with gr.Column():
            texts = gr.Textbox(lines=4, label=words("match_texts"))
            go = gr.Button(words("score"), variant="primary")
            scores = gr.Label(label=words("cosine"))
    go.click(handlers.match, [image, texts], [scores], api_name="match", **SEARCH)
