"""Notebooks generated from the section scripts and executed in the toy world, never edited by hand.

    python -m chapter09.notebooks             # regenerate and execute every notebook (toy world, about 2 min)
    python -m chapter09.notebooks 9.2 9.4     # only these sections
    python -m chapter09.notebooks --check     # fail if a committed notebook differs from its script or lacks outputs
    python -m chapter09.notebooks 9.3 --lang zh   # only the Chinese edition of 9.3

Two editions from one script: ``notebooks/9.N_*.ipynb`` holds the English prose cells, and
``notebooks/zh/9.N_*.ipynb`` the Chinese ones (the cells marked ``# %% [markdown] lang="zh"``, see
``cells.py``), executed with ``CH09_LANG=zh`` so what the lesson prints and draws is Chinese too. Code
cells are the same in both. A lesson gets a Chinese notebook once its script has Chinese cells.

Each section script is in jupytext's percent format (``# %%`` code cells,
``# %% [markdown]`` text cells), so the notebook is the script, cell by cell. Each notebook
is then run top to bottom by a Jupyter kernel (nbclient) with ``CH09_MODELS=toy``, and saved
with what it printed and drew: tables, narration, the figures inline (PNG at matplotlib's
100 dpi, stored with a 256-colour palette when that changes no pixel visibly), so it reads
on GitHub without running anything. To keep diffs reviewable, the volatile parts are
dropped: kernel and timing metadata, the temporary output folder (shown as ``outputs/``),
this checkout's absolute path, and how the kernel happened to split a stream into chunks.
What the toy models compute is the same on every run; measured timings (9.3's speed-up,
the 9.5 and 9.6 latency tables and plots, each section's "done in ... s") change from run
to run, as measurements do.

Every notebook opens with its title, then a setup cell (the same in all of them) that makes it
run where a learner opens it: nothing happens where the chapter is installed
(``pip install -r requirements.txt`` installs it in editable mode); in a fresh Jupyter inside
a clone it installs the clone; on Colab it clones ``REPO_URL`` and installs that. The
notebooks are executed from a temporary folder outside the repository, with no PYTHONPATH,
as a learner's Jupyter would run them. The CH09_MODELS / CH09_OUT environment variables
choose models and output.
"""
from __future__ import annotations

import argparse
import base64
import copy
import os
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from . import config
from .cells import DEFAULT_LANG, keep_for, read_cells
from .figures import compact_png
from .lesson import section_scripts

NOTEBOOK_DIR = config.REPO_DIR / "notebooks"
LANGS = ("en", "zh")  # the editions; a language other than English lives in its own folder under NOTEBOOK_DIR
KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}
CELL_TIMEOUT_S = 600

SETUP_MARKDOWN = """## Before you start: run the setup cell
Where the chapter is installed (`pip install -r requirements.txt` in a clone installs it in
editable mode), the next cell does nothing. In a fresh Jupyter started inside a clone it
installs the clone. On **Colab** (File -> Open notebook -> GitHub), set `REPO_URL` to this
repository's git address first: the cell clones it and installs `requirements.txt` (a few
minutes, since it pins torch 2.13.0 in place of Colab's own build).

**Which models.** With the Hugging Face hub reachable the lessons load the real checkpoints;
without it they run on the toy world (tiny twins of the same classes) and one line says so.
To insist on real weights, run `os.environ["CH09_MODELS"] = "real"` before the next cells
(`"toy"` for the toy world). The outputs committed with this notebook were produced in the
toy world, on a CPU.

**On a GPU** (Colab's T4 has 16 GB): the chapter picks CUDA and fp16 by itself. BLIP-2
OPT-2.7b then needs about 7.0 GiB of weights plus 25 % headroom, so 9.4 takes the BLIP-2
route, and 9.5 and 9.6 time the models on the GPU (no bf16 or int8 CPU kernels involved)."""

# one line per paragraph: a line break inside Chinese prose shows as a space in rendered markdown
SETUP_MARKDOWN_ZH = """## 开始之前：先运行 setup 单元格
如果已经装好本章（在克隆下来的仓库里执行 `pip install -r requirements.txt`，会以可编辑模式安装），下一个单元格什么也不做；如果是在仓库里新开的 Jupyter，它会安装这个仓库。在 **Colab** 上（File -> Open notebook -> GitHub），先把 `REPO_URL` 设成本仓库的 git 地址：单元格会克隆仓库并安装 `requirements.txt`（要几分钟，因为它会换上固定版本的 torch 2.13.0，替掉 Colab 自带的版本）。

**用哪些模型。** 能连上 Hugging Face hub 时，各节加载真实的 checkpoint；连不上就在玩具世界里运行（同一批类的小型孪生模型），并有一行提示说明。一定要用真实权重，就在运行后面的单元格之前执行 `os.environ["CH09_MODELS"] = "real"`（`"toy"` 则指定玩具世界）。随本 notebook 提交的输出是在玩具世界里、用 CPU 跑出来的。

**在 GPU 上**（Colab 的 T4 有 16 GB 显存）：本章会自动选用 CUDA 和 fp16。BLIP-2 OPT-2.7b 的权重约 7.0 GiB，再留 25 % 余量，因此 9.4 会走 BLIP-2 路线，9.5 和 9.6 也在 GPU 上计时（不涉及 CPU 的 bf16 或 int8 内核）。"""

SETUP_CODE = """# Setup: installs the chapter on Colab or in a fresh Jupyter; does nothing where it is installed.
import importlib.util
import os
import subprocess
import sys
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets: plain bars work
REPO_URL = ""  # on Colab: this repository's git URL, e.g. the address you opened this notebook from
if importlib.util.find_spec("chapter09") is None:
    root = next((p for p in ("..", ".") if os.path.isfile(os.path.join(p, "chapter09", "__init__.py"))), None)
    if root is None:
        if not REPO_URL:
            raise RuntimeError("chapter09 is not installed here: set REPO_URL in this cell to the repository's "
                               "git URL and run it again")
        subprocess.run(["git", "clone", "--depth", "1", REPO_URL, "chapter09-course"], check=True)
        root = "chapter09-course"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", "requirements.txt"], cwd=root, check=True)
    sys.path.insert(0, os.path.abspath(root))  # an editable install is importable only after a restart
print("chapter09 is ready")"""


def section_number(script: Path) -> str:
    return script.name.split("_")[0]


def notebook_path(script: Path, lang: str = DEFAULT_LANG) -> Path:
    folder = NOTEBOOK_DIR if lang == DEFAULT_LANG else NOTEBOOK_DIR / lang
    return folder / f"{script.stem}.ipynb"


def editions(script: Path) -> list[str]:
    """The languages ``script`` has a notebook in: English always, Chinese once it has Chinese prose cells."""
    return [DEFAULT_LANG, *(lang for lang in LANGS[1:] if any(c.lang == lang for c in read_cells(script)))]


def render(script: Path, lang: str = DEFAULT_LANG):
    """The notebook for ``script`` in ``lang``, not yet executed: the code cells and that language's prose
    cells, stable ids and metadata."""
    import jupytext
    import nbformat

    notebook = jupytext.reads(script.read_text(encoding="utf-8"), fmt="py:percent")
    cells = notebook.cells
    langs = [cell.metadata.get("lang", DEFAULT_LANG) if cell.cell_type == "markdown" else None for cell in cells]
    cells = [cell for cell, keep in zip(cells, keep_for(langs, lang)) if keep]
    if cells and cells[0].cell_type == "code" and _only_a_docstring(cells[0].source):
        cells = cells[1:]  # the module docstring is for the script's readers; the title cell says it in the notebook
    title = next(i for i, cell in enumerate(cells) if cell.cell_type == "markdown")
    setup = SETUP_MARKDOWN_ZH if lang == "zh" else SETUP_MARKDOWN
    notebook.cells = [*cells[:title + 1], nbformat.v4.new_markdown_cell(setup),
                      nbformat.v4.new_code_cell(SETUP_CODE), *cells[title + 1:]]
    executed_with = "CH09_MODELS=toy" + ("" if lang == DEFAULT_LANG else f" CH09_LANG={lang}")
    notebook.metadata = {"kernelspec": dict(KERNEL), "language_info": {"name": "python"},
                         "generated_from": f"chapter09/{script.name} by `python -m chapter09.notebooks`, "
                                           f"executed with {executed_with}"}
    for index, cell in enumerate(notebook.cells):
        cell.metadata = {}
        cell["id"] = f"cell-{index}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return notebook


def _only_a_docstring(source: str) -> bool:
    import ast

    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    return len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant)


def kernel_environment(out_dir: Path, lang: str = DEFAULT_LANG) -> dict:
    """The environment a notebook runs in: the toy world, no hub, output in ``out_dir``, the lesson speaking
    ``lang``. No PYTHONPATH: the chapter must be importable the way a learner's Jupyter finds it (installed),
    not through this checkout."""
    env = dict(os.environ)
    env.update(CH09_MODELS="toy", CH09_OUT=str(out_dir), HF_HUB_OFFLINE="1", CH09_LANG=lang,
               MPLBACKEND="module://matplotlib_inline.backend_inline")
    env.pop("PYTHONPATH", None)
    for name in ("CH09_DEVICE", "CH09_DTYPE", "CH09_HIDE_CPU_FEATURES"):  # the committed notebooks show the defaults
        env.pop(name, None)
    return env


def execute(notebook, out_dir: Path, timeout: int = CELL_TIMEOUT_S, lang: str = DEFAULT_LANG):
    """Run ``notebook`` (in place) from a folder outside the repository (``out_dir``'s parent), in the toy world,
    writing lesson output to ``out_dir``, with ``CH09_LANG=lang``."""
    from nbclient import NotebookClient

    client = NotebookClient(notebook, timeout=timeout, kernel_name=KERNEL["name"], record_timing=False,
                            resources={"metadata": {"path": str(Path(out_dir).resolve().parent)}})
    client.execute(env=kernel_environment(out_dir, lang))
    return notebook


def _tidy_text(text: str, out_dir: Path) -> str:
    """Paths as a reader would recognise them: the output folder as ``outputs``, the checkout relative,
    installed packages under ``site-packages/`` (a warning's file name, for instance)."""
    for path in (str(out_dir.resolve()), str(out_dir)):
        text = text.replace(path, "outputs")
    text = text.replace(str(config.REPO_DIR) + os.sep, "").replace(str(config.REPO_DIR), ".")
    for packages in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        text = text.replace(packages + os.sep, "site-packages" + os.sep)
    return text


def clean(notebook, out_dir: Path, metadata: dict):
    """Drop what changes from run to run without meaning anything: kernel metadata, timings, the
    temporary folder, this checkout's path, and the arbitrary way a stream was split into chunks."""
    notebook.metadata = copy.deepcopy(metadata)
    for cell in notebook.cells:
        cell.metadata = {}
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.outputs:
            if output.output_type == "stream":
                output.text = _tidy_text(output.text, out_dir)
                if outputs and outputs[-1].output_type == "stream" and outputs[-1].name == output.name:
                    outputs[-1].text += output.text
                    continue
            elif output.output_type in ("display_data", "execute_result"):
                output.metadata = {}
                if "image/png" in output.get("data", {}):
                    png = base64.b64decode(output.data["image/png"])
                    output.data["image/png"] = base64.b64encode(compact_png(png)).decode("ascii")
                if "text/plain" in output.get("data", {}):
                    output.data["text/plain"] = _tidy_text(output.data["text/plain"], out_dir)
            outputs.append(output)
        cell.outputs = outputs
    return notebook


def dumps(notebook) -> str:
    import nbformat

    return nbformat.writes(notebook) + "\n"


def build(script: Path, lang: str = DEFAULT_LANG) -> str:
    """The committed notebook's text for ``script`` in ``lang``: rendered, executed in the toy world, cleaned."""
    notebook = render(script, lang)
    metadata = copy.deepcopy(notebook.metadata)
    with tempfile.TemporaryDirectory(prefix="ch09-notebook-") as folder:
        out_dir = Path(folder) / "outputs"
        out_dir.mkdir()
        execute(notebook, out_dir, lang=lang)
        clean(notebook, out_dir, metadata)
    return dumps(notebook)


def problems(script: Path, lang: str = DEFAULT_LANG) -> list[str]:
    """What is wrong with the committed ``lang`` notebook of ``script`` (empty when nothing is). Fast: nothing runs."""
    import nbformat

    path = notebook_path(script, lang)
    name = path.relative_to(NOTEBOOK_DIR).as_posix()  # 9.2_x.ipynb, zh/9.2_x.ipynb
    if not path.exists():
        return [f"{name}: missing"]
    committed = nbformat.read(path, as_version=4)
    expected = render(script, lang)
    found = []
    if [(c.cell_type, c.source) for c in committed.cells] != [(c.cell_type, c.source) for c in expected.cells]:
        found.append(f"{name}: its cells differ from chapter09/{script.name}")
    code = [c for c in committed.cells if c.cell_type == "code"]
    if any(c.execution_count is None for c in code) or not any(c.outputs for c in code):
        found.append(f"{name}: not executed (no outputs)")
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    if errors:
        found.append(f"{name}: a cell raised {errors[0].ename}: {errors[0].evalue}")
    figures = sum("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    saved = script.read_text(encoding="utf-8").count(".save_figure(")
    if figures < saved:
        found.append(f"{name}: {figures} inline figures, but the script saves {saved}")
    return found


def pending_edition(lang: str) -> bool:
    """True while a language's notebooks have never been generated (its folder is absent): ``--check`` then
    says so instead of failing, until the first ``python -m chapter09.notebooks`` writes and commits them.
    Once the folder is committed, a missing or stale notebook in it fails like an English one."""
    return lang != DEFAULT_LANG and not (NOTEBOOK_DIR / lang).is_dir()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chapter09.notebooks", description=__doc__.split("\n\n")[0])
    parser.add_argument("sections", nargs="*", help="section numbers such as 9.2 (default: all)")
    parser.add_argument("--check", action="store_true",
                        help="only check that each committed notebook matches its script and carries outputs (runs nothing)")
    parser.add_argument("--lang", choices=LANGS, default=None, help="only this edition (default: every edition)")
    args = parser.parse_args(argv)
    scripts = [s for s in section_scripts() if not args.sections or section_number(s) in args.sections]
    unknown = set(args.sections) - {section_number(s) for s in scripts}
    if unknown:
        parser.error(f"no section {', '.join(sorted(unknown))}")
    jobs = [(script, lang) for script in scripts for lang in editions(script) if args.lang in (None, lang)]
    if args.check:
        pending = sorted({lang for _, lang in jobs if pending_edition(lang)})
        for lang in pending:
            print(f"notebooks/{lang}/ has not been generated yet: `python -m chapter09.notebooks` writes it")
        found = [problem for script, lang in jobs if lang not in pending for problem in problems(script, lang)]
        for problem in found:
            print(problem)
        if found:
            print("run `python -m chapter09.notebooks` and commit notebooks/")
            return 1
        checked = sum(lang not in pending for _, lang in jobs)
        print(f"{checked} notebooks match their scripts and carry outputs")
        return 0
    for script, lang in jobs:
        started = time.perf_counter()
        target, text = notebook_path(script, lang), build(script, lang)
        target.parent.mkdir(parents=True, exist_ok=True)
        changed = not target.exists() or target.read_text(encoding="utf-8") != text
        target.write_text(text, encoding="utf-8")
        print(f"{'wrote' if changed else 'unchanged'} {target.relative_to(config.REPO_DIR)} "
              f"({len(text.encode()) / 1024:.0f} KB, executed in {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
