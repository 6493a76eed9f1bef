"""The pictures in README.md and the measured figures in chapter09/README.md, from one source: the
committed notebooks.

    python -m chapter09.readme_pictures            # everything below
    python -m chapter09.readme_pictures figures    # the three lesson figures, into assets/readme/
    python -m chapter09.readme_pictures text       # the measured blocks of chapter09/README*.md
    python -m chapter09.readme_pictures web-ui     # the web UI screenshot (about 1 min)

The lesson figures are what a learner sees: the inline figures of the committed 9.2, 9.4 and
9.5 notebooks (run ``python -m chapter09.notebooks`` first), copied. The measured blocks of
``chapter09/README.md`` and ``chapter09/README.zh-CN.md`` (between ``<!-- notebook 9.N: name -->``
and ``<!-- /notebook -->``) are lines copied verbatim from the same notebooks' outputs, so the
README and the notebooks cannot disagree; ``tests/test_vl_notebooks.py`` checks that they match. The screenshot is of the capstone's web UI: a small toy
library of held-out scenes is indexed and captioned (``python -m chapter09.capstone index``,
``caption --index``), served (``serve``), and headless Chromium, through Playwright, types a
text search and opens the first hit. The browser is the system's (Debian's ``chromium``, or
``$CH09_CHROMIUM``); none is downloaded. Its fontconfig is given the CJK font the figures
use, so the UI's Chinese renders without a system CJK font. Every picture is stored as a 256-colour PNG when that changes no pixel by more
than a few levels (``figures.compact_png``), so the README stays light.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from . import config

PICTURES_DIR = config.ASSETS_DIR / "readme"
LESSON_FIGURES = {  # README picture: (section, the figure that section saves)
    "similarity_matrix.png": ("9.2", "similarity_matrix.png"),
    "captions.png": ("9.4", "captions.png"),
    "precision_tradeoff.png": ("9.5", "precision_latency.png"),
}
WEB_UI = "web_ui.png"
CHROMIUM = os.environ.get("CH09_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOT_QUERY = "蓝色菱形"  # "blue diamond", a Chinese query; 5 of the 40 scenes hold a blue diamond
LIBRARY_SIZE = 40


def toy_environment() -> dict:
    env = dict(os.environ, CH09_MODELS="toy", HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(config.REPO_DIR), *filter(None, [env.get("PYTHONPATH")])])
    return env


def small_png(source, target: Path) -> Path:
    """Write ``source`` (a PNG file or PNG bytes) to ``target``, compacted (``figures.compact_png``)."""
    from .figures import compact_png

    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(compact_png(data))
    return target


def section_script(number: str) -> Path:
    from .lesson import section_scripts

    return next(s for s in section_scripts() if s.name.startswith(f"{number}_"))


def committed_notebook(number: str):
    import nbformat

    from .notebooks import notebook_path

    return nbformat.read(notebook_path(section_script(number)), as_version=4)


def notebook_figure(number: str, figure: str) -> bytes:
    """The PNG the committed notebook of ``number`` shows for the figure it saves as ``figure``."""
    import base64

    for cell in committed_notebook(number).cells:
        if cell.cell_type != "code":
            continue
        text = "".join(o.get("text", "") for o in cell.outputs)
        if f"[figure] outputs/section_{number}/{figure}" in text:
            shown = [o for o in cell.outputs if "image/png" in o.get("data", {})]
            if shown:
                return base64.b64decode(shown[-1].data["image/png"])
    raise LookupError(f"the committed {number} notebook shows no {figure}: run `python -m chapter09.notebooks {number}`")


def lesson_figures(target_dir: Path = PICTURES_DIR) -> list[Path]:
    """The README's lesson figures, taken from the committed notebooks (the same run a learner reads)."""
    return [small_png(notebook_figure(number, figure), target_dir / name)
            for name, (number, figure) in LESSON_FIGURES.items()]


# ----------------------------------------------------------------------------- measured text blocks
README_TEXT_FILES = [config.PACKAGE_DIR / "README.md", config.PACKAGE_DIR / "README.zh-CN.md"]
# block name -> (section, the first line's start, the last line's start) in that notebook's output
TEXT_BLOCKS = {
    "captions": ("9.4", "  [en] captions naming", "  [zh] captions naming"),
    "vqa": ("9.4", "  exact-answer accuracy", "    shape (zh)"),
    "demo-loss": ("9.5", "  loss:", "  loss:"),
    "tiny-vlm": ("9.5", "  captions naming every object", "  captions naming every object"),
    "precision": ("9.5", "  CPU:", "  This CPU has"),
    "models": ("9.6", "  CPU:", "| tiny VLM (toy)"),
}
_BLOCK = re.compile(r"(<!-- notebook (?P<number>[\d.]+): (?P<name>[\w-]+) -->\n```text\n)"
                    r"(?P<body>(?:(?!```).)*?)\n?(```\n<!-- /notebook -->)", re.S)  # the body holds no fence


def notebook_text(number: str) -> str:
    """Everything the committed notebook printed, in order."""
    return "".join(o.get("text", "") for c in committed_notebook(number).cells if c.cell_type == "code"
                   for o in c.outputs if o.output_type == "stream" and o.get("name") == "stdout")


def text_block(name: str) -> str:
    number, first, last = TEXT_BLOCKS[name]
    lines = notebook_text(number).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(last))
    return "\n".join(lines[start:end + 1])


def readme_blocks(text: str) -> list[tuple[str, str, str]]:
    """(section, block name, body) of every measured block in a README's text."""
    return [(m["number"], m["name"], m["body"]) for m in _BLOCK.finditer(text)]


def update_text_blocks(paths=None) -> list[Path]:
    """Refill every measured block of the READMEs from the committed notebooks."""
    written = []
    for path in paths or README_TEXT_FILES:
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        new = _BLOCK.sub(lambda m: m[1] + text_block(m["name"]) + "\n" + m[5], text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            written.append(path)
    return written


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited with code {process.returncode} before answering")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2):
                return
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")


@contextlib.contextmanager
def served_toy_index(folder: Path):
    """A toy library of held-out scenes, indexed (with stored captions) and served on a free local port;
    yields its URL."""
    from .toyworld import write_dataset

    library = write_dataset(folder / "library", n=LIBRARY_SIZE, seed=config.TOY_HELDOUT_SEED, split="heldout")
    index = folder / "index"
    capstone = [sys.executable, "-m", "chapter09.capstone"]
    for command in (["index", str(library / "images"), "--index", str(index), "--no-progress"],
                    ["caption", "--index", str(index), "--no-progress"]):
        subprocess.run([*capstone, *command], env=toy_environment(), cwd=folder, check=True,
                       stdout=subprocess.DEVNULL)
    port = _free_port()
    with open(folder / "serve.log", "w") as log:
        process = subprocess.Popen([*capstone, "serve", "--index", str(index), "--port", str(port)],
                                   env=toy_environment(), cwd=folder, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}/"
            _wait_for(url, process)
            yield url
        finally:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=20)
            if process.poll() is None:
                process.kill()


def browser_fonts(folder: Path) -> dict:
    """Environment for Chromium whose fontconfig also knows the pinned CJK font (figures.cjk_font_path),
    so the UI's Chinese renders whatever fonts the system has."""
    from .figures import cjk_font_path

    font = cjk_font_path()
    if font is None:
        return {}
    fonts = folder / "fonts"
    fonts.mkdir(exist_ok=True)
    (fonts / font.name).symlink_to(font)
    config_file = folder / "fonts.conf"
    config_file.write_text(f"""<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>
  <dir>{fonts}</dir>
  <cachedir>{folder / "fontcache"}</cachedir>
</fontconfig>
""", encoding="utf-8")
    return {"FONTCONFIG_FILE": str(config_file)}


TIDY_PATHS_JS = """(prefixes) => {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const prefix of prefixes) node.nodeValue = node.nodeValue.split(prefix).join("");
  }
}"""


def web_ui_screenshot(target: Path = PICTURES_DIR / WEB_UI, query: str = SCREENSHOT_QUERY) -> Path:
    """Search ``query`` in the web UI over a toy index, open the first hit, and keep a screenshot."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="ch09-webui-") as folder, served_toy_index(Path(folder)) as url:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                                 env={**os.environ, **browser_fonts(Path(folder))})
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(url, wait_until="networkidle")
                page.locator("#query textarea, #query input").first.fill(query)
                page.locator("#search-button").click()
                first = page.locator("#results img").first
                first.wait_for(timeout=60_000)
                first.click()  # the hit's detail: full image, score, path, stored captions
                page.locator("#hit-detail img").first.wait_for(timeout=30_000)
                page.wait_for_load_state("networkidle")
                page.wait_for_timeout(500)  # let the thumbnails finish painting
                # this machine's folders out of the picture, as the notebooks do: the temporary library
                # shows as library/..., the checkout's twins as chapter09/...
                page.evaluate(TIDY_PATHS_JS, [str(Path(folder).resolve()) + "/", folder.rstrip("/") + "/",
                                              str(config.REPO_DIR) + "/"])
                png = page.screenshot(full_page=True)
            finally:
                browser.close()
    return small_png(png, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chapter09.readme_pictures", description=__doc__.split("\n\n")[0])
    parser.add_argument("which", nargs="?", choices=("all", "figures", "text", "web-ui"), default="all")
    args = parser.parse_args(argv)
    written = []
    if args.which in ("all", "figures"):
        written += lesson_figures()
    if args.which in ("all", "text"):
        written += update_text_blocks()
    if args.which in ("all", "web-ui"):
        written.append(web_ui_screenshot())
    for path in written:
        print(f"wrote {path.relative_to(config.REPO_DIR)} ({path.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
