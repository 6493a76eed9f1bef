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
from ..dedup import NEAR_DUPLICATE_COSINE, find_duplicates
from .library import WebLibrary, file_url, inside

SHOWN_GROUPS = 60  # groups drawn per panel (all of them are in the JSON)
THRESHOLD_RANGE = (0.80, 1.0)  # below 0.8 the toy and real CLIPs call different scenes of one kind "near"
DUPLICATES = {"concurrency_limit": 1, "concurrency_id": "duplicates"}  # a pass over every vector: one at a time

EXPLAINED = f"""**Exact copies** have the same bytes (the SHA-1 the index stores). **Near copies** are images whose
CLIP vectors have a cosine similarity of at least the threshold: {NEAR_DUPLICATE_COSINE} (the default) catches
resized and re-compressed copies of one photo; lower it to also group burst shots and edits (and, lower still,
different photos of one scene); 1.0 keeps only identical vectors. Nothing is deleted here: remove the copies you do
not want yourself, then run `index` again. 完全相同的副本按 SHA-1 分组；近似副本按 CLIP 向量的余弦相似度（不低于阈值）分组。
此页只显示，不删除任何文件。"""


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
        """The exact panel's HTML, the near panel's HTML, and the groups as JSON."""
        with self.handlers.guarded(request):  # the client's slot; the project's errors as the page's message
            found = self.groups(checked_threshold(threshold))
        exact = self.panel(found["exact_groups"], "exact copies 完全相同",
                           lambda g: f"{len(g['paths'])} files, identical bytes")
        near = self.panel(found["near_groups"], f"near copies 近似 (cosine ≥ {found['threshold']:g})",
                          lambda g: f"{len(g['paths'])} files, cosine {g['loosest']:.3f} to {g['closest']:.3f}")
        return exact, near, found

    def panel(self, groups: list[dict], title: str, describe) -> str:
        if not groups:
            return f"<h4>{html.escape(title)}</h4><p>none found</p>"
        parts = [f"<h4>{html.escape(title)}: {len(groups)} group{'' if len(groups) == 1 else 's'}</h4>"]
        for number, group in enumerate(groups[:SHOWN_GROUPS], 1):
            cells = "".join(self.cell(path) for path in group["paths"])
            parts.append(f'<div class="dup-group"><div><b>{number}.</b> {html.escape(describe(group))}</div>'
                         f'<div class="dup-row">{cells}</div></div>')
        if len(groups) > SHOWN_GROUPS:
            parts.append(f"<p>… and {len(groups) - SHOWN_GROUPS} more groups (all of them in the API's JSON)</p>")
        return "".join(parts)

    def cell(self, relative: str) -> str:
        path = inside(self.library.root, relative)
        thumb = self.library.thumbnail(path) if path is not None else None
        image = f'<img src="{file_url(thumb)}" alt="{html.escape(relative)}">' if thumb else "<i>(gone)</i>"
        if path is not None:  # the thumbnail opens the file itself
            image = f'<a href="{file_url(path)}" target="_blank" rel="noopener">{image}</a>'
        return f'<figure class="dup-cell">{image}<figcaption>{html.escape(relative)}</figcaption></figure>'


CSS = """
.dup-group { margin: 6px 0 12px 0; }
.dup-row { display: flex; flex-wrap: wrap; gap: 6px; }
.dup-cell { margin: 0; width: 140px; font-size: 0.8em; word-break: break-all; }
.dup-cell img { max-width: 140px; max-height: 140px; border-radius: 4px; }
"""


def duplicates_tab(library: WebLibrary, handlers) -> None:
    """The tab's layout and wiring: the explanation, the threshold, the two panels side by side."""
    view = DuplicatesView(library, handlers)
    gr.Markdown(EXPLAINED, elem_id="duplicates-explained")
    with gr.Row():
        threshold = gr.Slider(*THRESHOLD_RANGE, value=NEAR_DUPLICATE_COSINE, step=0.005,
                              label="near-copy threshold (cosine) 近似阈值", elem_id="duplicates-threshold", scale=3)
        go = gr.Button("Find duplicates 查找重复", variant="primary", elem_id="duplicates-button", scale=1)
    with gr.Row():
        exact = gr.HTML(elem_id="duplicates-exact")
        near = gr.HTML(elem_id="duplicates-near")
    groups = gr.JSON(visible=False)
    go.click(view.duplicates, [threshold], [exact, near, groups], api_name="duplicates", **DUPLICATES)
