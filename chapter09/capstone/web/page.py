"""The web UI's page: the header (which models answer, the toy banner), the layout of its tabs, and the wiring of
each control to its handler (``handlers.Handlers``) under its API name. No logic of its own: what a control does
is its handler's."""
import html
from pathlib import Path

import gradio as gr

from ...clip import clip_encoder
from ...models import ModelUnavailableError, Settings, resolve
from ..filters import FORMATS
from ..queries import STRATEGIES
from .checks import SIGNS, TERM_KINDS, TERM_ROWS
from .components import image_input, k_input, tolerant, weight_input
from .handlers import Handlers
from .library import WebLibrary

TOY_BANNER = ("TOY WORLD: tiny models trained on synthetic shapes; results on real photos are meaningless; "
              "run with --models real")
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
"""


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



def build_app(index_dir, settings: Settings | None = None, max_upload_mb: float = 20):
    """The Gradio app and its ``WebLibrary``."""
    library = WebLibrary(index_dir, settings or Settings(), max_upload_mb)
    clip_encoder("clip", library.settings)  # loaded (and announced) before the first request
    handlers = Handlers(library)
    search_mode = next(iter(library.searcher.searchers.values())).mode  # the first role's (clip's) search
    with gr.Blocks(title="Chapter 9 capstone: image library", analytics_enabled=False) as app:
        gr.HTML(header_html(model_rows(library.settings), library.root, len(library.searcher.store), search_mode),
                elem_id="header")
        with gr.Tab("Search 检索"):
            search_tab(handlers, library)
        with gr.Tab("Caption 描述"):
            caption_tab(handlers)
        with gr.Tab("Match 匹配"):
            match_tab(handlers)
    return app, library


def search_tab(handlers: Handlers, library: WebLibrary) -> None:
    """The search tab: the query box, example image, combined builder, caption text and filters above the
    results and the selected hit's detail; each search wired to its handler under its API name."""
    query, strategy, k, go, example, go_image = _query_row()
    base_text, base_image, term_inputs, uses, go_combined = _combined_builder()
    caption_query, hybrid, go_caption = _caption_text_row()
    ocr_query, ocr_hybrid, go_ocr = _ocr_text_row()
    filter_inputs = _filters_panel(library.top_folders())
    note = gr.Markdown(elem_id="search-note")
    with gr.Row():
        with gr.Column(scale=3):
            # fit_columns off: Gradio would otherwise stretch one or two hits to the gallery's width
            results = gr.Gallery(label="Results (click one)", columns=4, height="auto", fit_columns=False,
                                 allow_preview=False, object_fit="contain", elem_id="results")
        with gr.Column(scale=2):
            detail = gr.HTML(elem_id="hit-detail")
            selected = gr.Textbox(label="selected", elem_id="selected-path", interactive=False, visible=False)
            with gr.Row():
                similar = gr.Button("Find similar", elem_id="similar-button")
                caption_this = gr.Button("Caption this", elem_id="caption-hit-button")
            hit_en = gr.Textbox(label="caption (English)", elem_id="hit-caption-en")
            hit_zh = gr.Textbox(label="描述 (中文)", elem_id="hit-caption-zh")
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


def _query_row() -> tuple:
    with gr.Row():
        query = gr.Textbox(label="Query (English or Chinese 中文)", elem_id="query", scale=4,
                           placeholder="a red circle at the top left / 左上方的红色圆形")
        strategy = gr.Dropdown(list(STRATEGIES), value="auto", label="Chinese query strategy", scale=1)
        k = k_input(scale=1)
    with gr.Row():
        go = gr.Button("Search", variant="primary", elem_id="search-button")
    with gr.Accordion("…or search by an example image", open=False):
        with gr.Row():
            example = image_input(label="Example image", elem_id="example-image", height=200)
            go_image = gr.Button("Find images like this", elem_id="image-search-button")
    return query, strategy, k, go, example, go_image


def _combined_builder() -> tuple:
    """A base text and/or image, then ``TERM_ROWS`` rows of (kind, add/subtract, value, image, weight); each row's
    "use the selected hit" button is wired by the caller, once the selected hit's field exists."""
    with gr.Accordion("…or combine: a text and/or an image, plus terms to add or subtract 组合检索",
                      open=False, elem_id="combined"):
        with gr.Row():
            base_text = gr.Textbox(label="text (2:text weighs it twice)", elem_id="combined-text", scale=3,
                                   placeholder="a dog on a beach / 海滩上的狗")
            base_image = image_input(label="and/or an image", elem_id="combined-image", height=120, scale=1)
        term_inputs, uses = [], []
        for number in range(1, TERM_ROWS + 1):
            with gr.Row(elem_id=f"term{number}", equal_height=True):
                kind = gr.Radio(list(TERM_KINDS), value="text", label=f"term {number}",
                                elem_id=f"term{number}-kind", scale=2)
                sign = gr.Radio(list(SIGNS), value="add" if number == 1 else "subtract",
                                label="add or subtract", elem_id=f"term{number}-sign", scale=1)
                value = gr.Textbox(label="text, or the hit's path", elem_id=f"term{number}-value", scale=3)
                upload = image_input(label="image", elem_id=f"term{number}-image", height=120, scale=1)
                weight = weight_input(f"term {number}", elem_id=f"term{number}-weight", scale=1, min_width=70)
                use = gr.Button("use the selected hit", elem_id=f"term{number}-use-hit", scale=1, size="sm")
            term_inputs += [kind, sign, value, upload, weight]
            uses.append((use, kind, value))
        go_combined = gr.Button("Search the combination", variant="primary", elem_id="combined-button")
    return base_text, base_image, term_inputs, uses, go_combined


def _caption_text_row() -> tuple:
    with gr.Accordion("…or search the captions' words 按描述文字检索 (English or 中文)", open=False,
                      elem_id="caption-search"):
        with gr.Row():
            caption_query = gr.Textbox(label="words the stored captions contain (caption --index)",
                                       elem_id="caption-text", scale=4, placeholder="zebra / 斑马")
            hybrid = gr.Checkbox(label="hybrid: fuse with the Query box's search by reciprocal rank",
                                 value=False, elem_id="caption-hybrid", scale=2)
            go_caption = gr.Button("Search the captions", elem_id="caption-text-button", scale=1)
    return caption_query, hybrid, go_caption


def _ocr_text_row() -> tuple:
    with gr.Accordion("…or search the text in the photos 按图中文字检索 (signs, receipts, screenshots)", open=False,
                      elem_id="ocr-search"):
        with gr.Row():
            ocr_query = gr.Textbox(label="words written in the photos (index --ocr)", elem_id="ocr-text", scale=4,
                                   placeholder="exit / 出口")
            hybrid = gr.Checkbox(label="hybrid: fuse with the Query box's search by reciprocal rank",
                                 value=False, elem_id="ocr-hybrid", scale=2)
            go_ocr = gr.Button("Search the photos' text", elem_id="ocr-text-button", scale=1)
    return ocr_query, hybrid, go_ocr


def _filters_panel(top_folders: list[str]) -> list:
    """The six filter fields every search takes last (folder, dates, camera, file types, shorter side)."""
    with gr.Accordion("Filters 筛选 (every search above)", open=False, elem_id="filters"):
        with gr.Row():
            folder = gr.Dropdown([("(whole library)", ""), *[(f, f) for f in top_folders]],
                                 value="", allow_custom_value=True, label="folder (or type a sub-folder)",
                                 elem_id="filter-folder")
            taken_after = gr.Textbox(label="taken on or after (ISO date)", placeholder="2024-05-01",
                                     elem_id="filter-after")
            taken_before = gr.Textbox(label="taken before (ISO date)", placeholder="2024-06-01",
                                      elem_id="filter-before")
            camera = gr.Textbox(label="camera (part of make or model)", placeholder="canon / iphone 12",
                                elem_id="filter-camera")
        with gr.Row():
            types = tolerant(gr.CheckboxGroup(list(FORMATS), value=[], label="file types (none ticked: all)",
                                              elem_id="filter-types", scale=3), "file types", empty=[])
            min_size = tolerant(gr.Number(value=0, precision=0, minimum=0, label="shorter side at least (px)",
                                          elem_id="filter-min-size", scale=1), "shorter side at least (px)")
    return [folder, taken_after, taken_before, camera, types, min_size]


def caption_tab(handlers: Handlers) -> None:
    with gr.Row():
        image = image_input(label="Image", elem_id="caption-image")
        with gr.Column():
            go = gr.Button("Caption", variant="primary", elem_id="caption-button")
            english, chinese = gr.Textbox(label="English"), gr.Textbox(label="中文")
    go.click(handlers.caption, [image], [english, chinese], api_name="caption", **CAPTION)


def match_tab(handlers: Handlers) -> None:
    with gr.Row():
        image = image_input(label="Image", elem_id="match-image")
        with gr.Column():
            texts = gr.Textbox(lines=4, label="Captions, one per line (English or 中文)")
            go = gr.Button("Score", variant="primary")
            scores = gr.Label(label="cosine similarity")
    go.click(handlers.match, [image, texts], [scores], api_name="match", **SEARCH)
