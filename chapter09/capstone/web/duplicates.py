"""The web UI's Duplicates tab: exact copies (the same bytes, by SHA-1) beside near copies (resized, re-compressed:
image vectors whose cosine is at least a threshold the page sets), found by ``dedup.find_duplicates`` on the
index as it is now. It shows; it deletes nothing (a person decides which copy goes, then re-runs ``index``).

``/duplicates`` (the API name) answers the two panels' HTML and the groups as JSON. Near pairs are joined into
groups: photos linked by a chain of near pairs are one group (each group lists its closest and its loosest pair).
The parameter names are the API's: Gradio reads them at run time, so no ``from __future__ import annotations``.
"""
import html

import gradio as gr

from ...errors import UsageError
from ..search.dedup import NEAR_DUPLICATE_COSINE, find_duplicates
from .i18n import PageWords, say
from .library import WebLibrary, file_url, inside

SHOWN_GROUPS = 60  # groups drawn per panel (all of them are in the JSON)
THRESHOLD_RANGE = (0.80, 1.0)  # below 0.8 the toy and real CLIPs call different scenes of one kind "near"
DUPLICATES = {"concurrency_limit": 1, "concurrency_id": "duplicates"}  # a pass over every vector: one at a time



def near_groups(pairs: list[dict]) -> list[dict]:
    """Near pairs ({"a", "b", "cosine"}) joined into groups (connected components): {"paths", "closest",
    "loosest"} with the highest and lowest cosine of the pairs inside, the largest groups first."""
    parent: dict[str, str] = {}

    def root(path: str) -> str:
        parent.setdefault(path, path)
        while parent[path] != path:
            parent[path] = parent[parent[path]]  # path halving keeps the chains short
            path = parent[path]
        return path

    for pair in pairs:
        parent[root(pair["a"])] = root(pair["b"])
    members: dict[str, list[str]] = {}
    for path in parent:
        members.setdefault(root(path), []).append(path)
    cosines: dict[str, list[float]] = {}
    for pair in pairs:
        cosines.setdefault(root(pair["a"]), []).append(pair["cosine"])
    groups = [{"paths": sorted(paths), "closest": max(cosines[key]), "loosest": min(cosines[key])}
              for key, paths in members.items()]
    return sorted(groups, key=lambda g: (-len(g["paths"]), -g["closest"], g["paths"]))


def checked_threshold(value) -> float:
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        threshold = float("nan")
    low, high = THRESHOLD_RANGE
    if not low <= threshold <= high:
        raise UsageError(f"threshold {value!r}: give a cosine from {low} to {high} (default {NEAR_DUPLICATE_COSINE})")
    return threshold


class DuplicatesView:
    """The tab's one action over a ``WebLibrary``, through the search handlers' client slots (``Handlers``)."""

    def __init__(self, library: WebLibrary, handlers):
        self.library, self.handlers = library, handlers

    def groups(self, threshold: float) -> dict:
        """``find_duplicates`` on the index (opened afresh: a long pass must not hold the search lock), near
        pairs joined into groups."""
        searchers = self.library.searcher.searchers
        role = "clip" if "clip" in searchers else next(iter(searchers))
        found = find_duplicates(self.library.searcher.location, threshold, role=role)
        return {"threshold": threshold, "role": role, "search": found["search"],
                "exact_groups": [{"paths": paths} for paths in found["exact_groups"]],
                "near_groups": near_groups(found["near_pairs"])}

    def duplicates(self, threshold=NEAR_DUPLICATE_COSINE, request: gr.Request = None):
        """The exact panel's HTML, the near panel's HTML, and the groups as JSON, in the request's language."""
        self.handlers.speak(request)
        with self.handlers.guarded(request):  # the client's slot; the project's errors as the page's message
            found = self.groups(checked_threshold(threshold))
        cosine = f"{found['threshold']:g}"
        exact = self.panel(found["exact_groups"], say("exact copies", "完全相同的副本"),
                           lambda g: say(f"{len(g['paths'])} files, identical bytes",
                                         f"{len(g['paths'])} 个文件，字节完全相同"))
        near = self.panel(found["near_groups"], say(f"near copies (cosine ≥ {cosine})", f"近似副本（余弦 ≥ {cosine}）"),
                          lambda g: say(f"{len(g['paths'])} files, cosine {g['loosest']:.3f} to {g['closest']:.3f}",
                                        f"{len(g['paths'])} 个文件，余弦 {g['loosest']:.3f} 到 {g['closest']:.3f}"))
        return exact, near, found

    def panel(self, groups: list[dict], title: str, describe) -> str:
        if not groups:
            return f"<h4>{html.escape(title)}</h4><p>{html.escape(say('none found', '未找到'))}</p>"
        counted = say(f"{title}: {len(groups)} group{'' if len(groups) == 1 else 's'}", f"{title}：{len(groups)} 组")
        parts = [f"<h4>{html.escape(counted)}</h4>"]
        for number, group in enumerate(groups[:SHOWN_GROUPS], 1):
            cells = "".join(self.cell(path) for path in group["paths"])
            parts.append(f'<div class="dup-group"><div><b>{number}.</b> {html.escape(describe(group))}</div>'
                         f'<div class="dup-row">{cells}</div></div>')
        if len(groups) > SHOWN_GROUPS:
            more = len(groups) - SHOWN_GROUPS
            said = say(f"… and {more} more groups (all of them in the API's JSON)", f"……另有 {more} 组（全部在 API 的 JSON 里）")
            parts.append(f"<p>{html.escape(said)}</p>")
        return "".join(parts)

    def cell(self, relative: str) -> str:
        path = inside(self.library.root, relative)
        thumb = self.library.thumbnail(path) if path is not None else None
        gone = f"<i>{html.escape(say('(gone)', '（已不存在）'))}</i>"
        image = f'<img src="{file_url(thumb)}" alt="{html.escape(relative)}">' if thumb else gone
        if path is not None:  # the thumbnail opens the file itself
            image = f'<a href="{file_url(path)}" target="_blank" rel="noopener">{image}</a>'
        return f'<figure class="dup-cell">{image}<figcaption>{html.escape(relative)}</figcaption></figure>'


CSS = """
.dup-group { margin: 6px 0 12px 0; }
.dup-row { display: flex; flex-wrap: wrap; gap: 6px; }
.dup-cell { margin: 0; width: 140px; font-size: 0.8em; word-break: break-all; }
.dup-cell img { max-width: 140px; max-height: 140px; border-radius: 4px; }
"""


def duplicates_tab(library: WebLibrary, handlers, words: PageWords) -> None:
    """The tab's layout and wiring, in the page's ``words``: the explanation, the threshold, the two panels side by
    side."""
    view = DuplicatesView(library, handlers)
    gr.Markdown(words("duplicates_explained"), elem_id="duplicates-explained")
    with gr.Row():
        threshold = gr.Slider(*THRESHOLD_RANGE, value=NEAR_DUPLICATE_COSINE, step=0.005,
                              label=words("duplicates_threshold"), elem_id="duplicates-threshold", scale=3)
        go = gr.Button(words("find_duplicates"), variant="primary", elem_id="duplicates-button", scale=1)
    with gr.Row():
        exact = gr.HTML(elem_id="duplicates-exact")
        near = gr.HTML(elem_id="duplicates-near")
    groups = gr.JSON(visible=False)
    go.click(view.duplicates, [threshold], [exact, near, groups], api_name="duplicates", **DUPLICATES)
