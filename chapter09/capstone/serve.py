"""The web UI: caption, text search, image search, image-text match and model info, in Gradio tabs.

Safe by default: binds to 127.0.0.1 (pass --host 0.0.0.0 to share on a network),
serves only image files inside the indexed library (every result path is checked
to resolve inside it; Gradio's allowed_paths is that folder alone), and refuses
uploads over ``max_upload_mb``.
"""
from __future__ import annotations

from pathlib import Path

from ..models import Settings


def _inside(root: Path, relative: str) -> Path | None:
    path = (root / relative).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


def build_app(index_dir, settings: Settings | None = None):
    import gradio as gr

    from ..clip import clip_encoder
    from ..models import resolve
    from .queries import STRATEGIES, QueryError
    from .search import LibrarySearch

    settings = settings or Settings()
    searcher = LibrarySearch(index_dir, settings)
    root = Path(searcher.store.library).resolve()
    clip_encoder("clip", settings)  # loaded (and announced) before the first request

    def gallery(result):
        items = []
        for hit in result["hits"]:
            path = _inside(root, hit["path"])
            if path is not None:
                items.append((str(path), f"{hit['rank']}. {hit['score']:.3f}  {hit['path']}"))
        note = f"{result['strategy']} · {result['search']} search over {result['library_size']} images · {result['ms']} ms"
        if result.get("encoded_text") and result["encoded_text"] != result.get("query"):
            note += f" · query encoded as: {result['encoded_text']}"
        return items, note

    def text_search(query, strategy, k):
        warnings = []
        try:
            result = searcher.by_text(query, int(k), strategy, warn=warnings.append)
        except QueryError as error:
            raise gr.Error(str(error))
        items, note = gallery(result)
        return items, " · ".join([note] + [f"warning: {w}" for w in warnings])

    def image_search(image, k):
        if image is None:
            raise gr.Error("upload an image first")
        return gallery(searcher.by_image(image.convert("RGB"), int(k)))

    def caption(image):
        if image is None:
            raise gr.Error("upload an image first")
        from .describe import caption_images

        captions = caption_images([image.convert("RGB")], ("en", "zh"), settings)[0]
        return captions["en"], captions["zh"]

    def match(image, texts):
        if image is None:
            raise gr.Error("upload an image first")
        from .describe import match_scores

        lines = [t.strip() for t in (texts or "").splitlines() if t.strip()]
        if not lines:
            raise gr.Error("type one caption per line")
        try:
            rows = match_scores(image.convert("RGB"), lines, "auto", settings)
        except QueryError as error:
            raise gr.Error(str(error))
        return {row["text"]: row["score"] for row in rows}

    def model_info():
        rows = ["| role | weights | class | location |", "|---|---|---|---|"]
        for role in ("clip", "chinese_clip", "multilingual_text", "translator_zh_en", "translator_en_zh", "captioner"):
            try:
                r = resolve(role, settings)
                rows.append(f"| {role} | {'TOY twin' if r.is_toy else 'real'} | {r.spec.model_class} | `{r.location}` |")
            except Exception as error:  # a missing twin is information, not a crash
                rows.append(f"| {role} | unavailable | | {error} |")
        store = searcher.store
        rows.append(f"\nLibrary `{root}`: {len(store)} images; image vectors: {', '.join(store.encoders)}; "
                    f"search: {searcher.searchers['clip'].mode}.")
        return "\n".join(rows)

    with gr.Blocks(title="Chapter 9 capstone: image library") as app:
        gr.Markdown(f"## Image library search and captioning\n`{root}` · {len(searcher.store)} images")
        with gr.Tab("Text search"):
            query = gr.Textbox(label="Query (English or Chinese)", elem_id="query")
            with gr.Row():
                strategy = gr.Dropdown(list(STRATEGIES), value="auto", label="Chinese query strategy")
                k = gr.Slider(1, 50, value=8, step=1, label="results")
            go = gr.Button("Search", elem_id="search-button")
            note = gr.Markdown(elem_id="search-note")
            results = gr.Gallery(label="Results", columns=4, elem_id="results")
            go.click(text_search, [query, strategy, k], [results, note])
            query.submit(text_search, [query, strategy, k], [results, note])
        with gr.Tab("Image search"):
            example = gr.Image(type="pil", label="Example image")
            k2 = gr.Slider(1, 50, value=8, step=1, label="results")
            go2 = gr.Button("Find similar")
            note2 = gr.Markdown()
            results2 = gr.Gallery(label="Results", columns=4)
            go2.click(image_search, [example, k2], [results2, note2])
        with gr.Tab("Caption"):
            cap_image = gr.Image(type="pil", label="Image")
            cap_go = gr.Button("Caption")
            cap_en, cap_zh = gr.Textbox(label="English"), gr.Textbox(label="中文")
            cap_go.click(caption, [cap_image], [cap_en, cap_zh])
        with gr.Tab("Match"):
            match_image = gr.Image(type="pil", label="Image")
            match_texts = gr.Textbox(lines=4, label="Captions, one per line")
            match_go = gr.Button("Score")
            match_out = gr.Label(label="cosine similarity")
            match_go.click(match, [match_image, match_texts], [match_out])
        with gr.Tab("Model info"):
            gr.Markdown(model_info())
    return app, root


def serve(index_dir, host: str = "127.0.0.1", port: int = 7860, settings: Settings | None = None,
          max_upload_mb: float = 20, block: bool = True):
    app, root = build_app(index_dir, settings)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"[serve] WARNING: listening on {host}: anyone who can reach this machine can search {root}")
    app.launch(server_name=host, server_port=port, allowed_paths=[str(root)], max_file_size=f"{max_upload_mb}mb",
               prevent_thread_lock=not block, quiet=False, footer_links=[])
    return app
