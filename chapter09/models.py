"""Deciding which weights serve a role, fast, and on which device and dtype they run.

``resolve(role)`` answers in a second or two, never by waiting out the hub
client's retries:

1. a directory the user named (``CH09_MODEL_DIR_<ROLE>`` or ``local_dir=``);
2. the real checkpoint already in the local Hugging Face cache;
3. the hub itself, if it answers within ``HUB_PROBE_TIMEOUT_S``;
4. otherwise (mode ``auto``) the toy twin, announced in one line per process (``announce``).

Mode ``real`` never falls back: it raises ``ModelUnavailableError`` saying how
to get the weights. Mode ``toy`` always takes the twin. Role ``clip`` with ``Settings.clip_model``
(``--clip-model``) is the checkpoint named there: a folder, else the cache, else the hub, never a twin
(``resolve_chosen_clip``).

The choices a user makes about models (mode, device, dtype, precision) travel as one
``Settings``, resolved once at the entry point; loaded models are shared through one
cache (``cached``).
"""
from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from . import config
from .config import ModelSpec, model_spec
from .cpu import has_native_bf16
from .errors import ChapterError, UsageError


class ModelUnavailableError(ChapterError, RuntimeError):
    """The weights a role needs cannot be had here; the message says what to do.

    ``role`` and ``has_twin`` let callers decide without parsing the message (a role the toy
    world has no twin of, such as BLIP-2, is skipped with a note rather than a training hint).
    """

    def __init__(self, message: str, role: str = "", has_twin: bool = True):
        super().__init__(message)
        self.role, self.has_twin = role, has_twin


@dataclass(frozen=True)
class Settings:
    """What the user chose about models, resolved once at the entry point and passed down as one thing.

    ``mode``: auto | real | toy (None: ``$CH09_MODELS``, else auto). ``device``/``dtype``: None picks
    the best for the machine (``pick_device``/``pick_dtype``). ``precision``: the capstone encoders'
    fp32 | bf16 | int8 | auto (None: the dtype decides). ``clip_model``: a CLIP-family checkpoint (hub id or
    save_pretrained folder) that serves role ``clip`` instead of the registry's (``--clip-model``; None: the
    registry's); the toy world has no twin of an arbitrary checkpoint, so ``--models toy`` refuses it.
    """

    mode: str | None = None
    device: str | None = None
    dtype: str | None = None
    precision: str | None = None
    clip_model: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "mode", models_mode(self.mode))
        if self.clip_model is not None:
            if not str(self.clip_model).strip():
                raise UsageError("--clip-model is empty: give a hub id (e.g. google/siglip-base-patch16-224) or "
                                 "a folder made by save_pretrained()")
            if self.mode == "toy":
                raise UsageError(f"--clip-model {self.clip_model} needs real weights, and --models toy (or "
                                 f"{config.ENV_MODELS}=toy) asks for the toy twins: drop one of the two")

    @classmethod
    def from_args(cls, args) -> "Settings":
        """From an argparse namespace with --models/--device/--dtype (and --precision, --clip-model where offered)."""
        return cls(getattr(args, "models", None), getattr(args, "device", None), getattr(args, "dtype", None),
                   getattr(args, "precision", None), getattr(args, "clip_model", None))

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    def cli_args(self) -> list[str]:
        """The same settings as command-line flags (for running another entry point)."""
        args = ["--models", self.mode]
        for flag, value in (("--device", self.device), ("--dtype", self.dtype)):
            if value:
                args += [flag, value]
        return args


@dataclass(frozen=True)
class ResolvedModel:
    role: str
    spec: ModelSpec
    location: str  # a local directory or a hub id, ready for from_pretrained
    source: str  # "local-dir" | "cache" | "hub" | "toy"
    chosen: bool = False  # a toy twin the user asked for (mode toy), not a fallback

    @property
    def is_toy(self) -> bool:
        return self.source == "toy"

    def describe(self) -> str:
        what = "TOY twin" if self.is_toy else "real"
        return f"{self.role:<20} {what:<8} {self.spec.model_class:<30} {self.location}"


def models_mode(mode: str | None = None) -> str:
    mode = mode or os.environ.get(config.ENV_MODELS, "auto")
    if mode not in config.MODEL_MODES:
        raise UsageError(f"--models must be one of {config.MODEL_MODES}, not {mode!r}")
    return mode


def _hub_offline_by_env() -> bool:
    return any(
        os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


@functools.cache
def hub_reachable(timeout_s: float = config.HUB_PROBE_TIMEOUT_S) -> bool:
    """True if the hub answers an HTTP request within ``timeout_s`` seconds. Asked once per process.

    Nothing else changes: when the hub is unreachable ``resolve`` hands out local folders, which
    ``from_pretrained`` reads without asking the hub, so no process-wide offline switch is needed.
    """
    if _hub_offline_by_env():
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        request = urllib.request.Request(f"{endpoint}/api/models?limit=1", method="HEAD")
        with urllib.request.urlopen(request, timeout=timeout_s):
            return True
    except urllib.error.HTTPError as error:  # the server answered: it is reachable
        return error.code < 500
    except Exception:  # DNS failure, refused, timed out, proxy error...
        return False


def cached_snapshot(hub_id: str) -> str | None:
    """The local snapshot directory of ``hub_id`` if it is fully in the HF cache."""
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(hub_id, local_files_only=True)
    except Exception:
        return None


def _user_dir(role: str, local_dir: str | os.PathLike | None) -> Path | None:
    named = local_dir or os.environ.get(config.ENV_MODEL_DIR_PREFIX + role.upper())
    if not named:
        return None
    path = Path(named).expanduser()
    if not path.is_dir():
        raise ModelUnavailableError(
            f"the directory named for model role {role!r} does not exist: {path}. "
            f"Point {config.ENV_MODEL_DIR_PREFIX}{role.upper()} at a folder made by save_pretrained().",
            role, config.model_spec(role).has_twin)
    return path


def toy_location(spec: ModelSpec) -> Path:
    if not spec.has_twin:
        raise ModelUnavailableError(
            f"{spec.hub_id} is not here (hub, Hugging Face cache or {config.ENV_MODEL_DIR_PREFIX}"
            f"{spec.role.upper()}), and the toy world has no {spec.role} twin "
            f"(its class is tested on a tiny random model: {spec.tested_by})", spec.role, has_twin=False)
    path = spec.toy_path
    if not (path / "config.json").exists() and not (path / "modules.json").exists():
        raise ModelUnavailableError(
            f"the toy twin for {spec.role!r} is missing at {path}. Build it with "
            f"`python -m chapter09.toyworld train {spec.role}`.", spec.role)
    return path


def _looks_like_folder(name: str) -> bool:
    """A name meant as a path (absolute, ./, ../, ~, nested) rather than a hub id (``owner/name``)."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def resolve_chosen_clip(name: str, spec: ModelSpec, mode: str) -> ResolvedModel:
    """Role ``clip`` served by the checkpoint ``--clip-model`` names: a folder, else the HF cache, else the hub.

    Never a toy fallback: the user asked for these weights, so a miss says what to do instead."""
    if mode == "toy":  # Settings refuses this pair already; kept for callers passing a bare mode
        raise UsageError(f"--clip-model {name} cannot be used with --models toy")
    chosen = replace(spec, hub_id=name, model_class="CLIP-family (from its config.json)", params="")
    path = Path(name).expanduser()
    if path.is_dir():
        return ResolvedModel("clip", replace(chosen, hub_id=str(path.resolve())), str(path.resolve()), "local-dir")
    if _looks_like_folder(name):
        raise ModelUnavailableError(f"--clip-model {name}: no such folder. Give a folder made by save_pretrained() "
                                    "or a hub id such as openai/clip-vit-large-patch14.", "clip", spec.has_twin)
    snapshot = cached_snapshot(name)
    if snapshot:
        return ResolvedModel("clip", chosen, snapshot, "cache")
    if hub_reachable():
        return ResolvedModel("clip", chosen, name, "hub")
    raise ModelUnavailableError(
        f"--clip-model {name} is neither a folder, nor in the local Hugging Face cache, and the hub is not "
        f"reachable. Download it on a machine with internet (`hf download {name}`) and copy the cache, or save it "
        "with save_pretrained() and pass that folder.", "clip", spec.has_twin)


def resolve(role: str, mode: str | Settings | None = None, local_dir: str | os.PathLike | None = None) -> ResolvedModel:
    """Decide, quickly, which weights serve ``role`` (see the module docstring)."""
    spec = model_spec(role)
    if role == "clip" and isinstance(mode, Settings) and mode.clip_model:  # local_dir: where a driver found it
        return resolve_chosen_clip(str(local_dir or mode.clip_model), spec, mode.mode)
    mode = models_mode(mode.mode if isinstance(mode, Settings) else mode)
    if mode == "toy":
        return ResolvedModel(role, spec, str(toy_location(spec)), "toy", chosen=True)
    user_dir = _user_dir(role, local_dir)
    if user_dir is not None:
        return ResolvedModel(role, spec, str(user_dir), "local-dir")
    snapshot = cached_snapshot(spec.hub_id)
    if snapshot:
        return ResolvedModel(role, spec, snapshot, "cache")
    if hub_reachable():
        return ResolvedModel(role, spec, spec.hub_id, "hub")
    if mode == "real":
        raise ModelUnavailableError(
            f"model role {role!r} needs {spec.hub_id} ({spec.params} parameters), which is neither "
            f"in the local Hugging Face cache nor reachable on the hub. Either download it on a "
            f"machine with internet (`hf download {spec.hub_id}`) and copy the cache, or set "
            f"{config.ENV_MODEL_DIR_PREFIX}{role.upper()}=/path/to/a/save_pretrained/folder, "
            f"or run with --models toy to use the embedded toy world.", role, spec.has_twin)
    return ResolvedModel(role, spec, str(toy_location(spec)), "toy")


_announced: set[str] = set()
_toy_said: set[str] = set()  # the roles the toy-world line has named in this process (one line per process)
TOY_TAG = "[toy world]"  # how the toy-world line starts (tests look for it)


def in_notebook() -> bool:
    """True inside a running Jupyter kernel. Having imported ipykernel is not enough: a test process or a
    notebook builder imports it without being a notebook."""
    if "ipykernel" not in sys.modules or "IPython" not in sys.modules:
        return False
    shell = sys.modules["IPython"].get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _roles_text(roles: list[str]) -> str:
    return roles[0] if len(roles) == 1 else ", ".join(roles[:-1]) + " and " + roles[-1]


def toy_line(roles: list[str], notebook: bool) -> str:
    """The one line that says the toy twins are in use, and how to get real weights where the reader is."""
    if notebook:
        return (f"{TOY_TAG} {_roles_text(roles)} {'runs on a tiny twin' if len(roles) == 1 else 'run on tiny twins'} "
                "trained on synthetic shapes: the numbers below describe the toy world. For real weights, put "
                f'os.environ["{config.ENV_MODELS}"] = "real" (or {config.ENV_MODEL_DIR_PREFIX}<ROLE> = a '
                "save_pretrained folder) in a new cell before the setup cell, then Restart & Run All.")
    return (f"{TOY_TAG} no real checkpoint for {_roles_text(roles)} is reachable here, so a tiny twin trained on "
            "synthetic shapes stands in (and for any other model missing): the numbers describe the toy world. "
            "--models real insists on real weights and says how to get them; --models toy picks the twins "
            "without this line.")


def announce_toy_world(roles, stream=None, lang: str = "en") -> None:
    """Name, in one line, the toy twins a notebook is about to use (a lesson calls it at its start when the toy
    world was chosen). In a terminal an explicit choice of the toy world is not announced at all."""
    roles = [role for role in roles if role not in _toy_said]
    if not roles or not in_notebook() or _toy_said:
        return
    _toy_said.update(roles)
    line = toy_line(roles, notebook=True)
    if lang == "zh":
        line = (f"{TOY_TAG} {'、'.join(roles)} 用的是在合成图形上训练的小型孪生模型：下面的数字描述的是玩具世界。"
                f'要用真实权重，请在 setup 单元格之前新建一个单元格，写入 os.environ["{config.ENV_MODELS}"] = "real"'
                f"（或把 {config.ENV_MODEL_DIR_PREFIX}<ROLE> 设为一个 save_pretrained 保存的文件夹），"
                "然后选择 Restart & Run All。")
    print(line, file=stream or sys.stdout)


def announcement(resolved: ResolvedModel, notebook: bool = False) -> str | None:
    """The line ``announce`` prints for ``resolved`` first in a process (None: none), e.g. for the capstone's quick
    search, which prints what the full search would without resolving the model again."""
    if not resolved.is_toy:
        return f"[models] {resolved.role}: {resolved.spec.hub_id} from {resolved.source} ({resolved.location})"
    return None if resolved.chosen and not notebook else toy_line([resolved.role], notebook)


def announcement_lines(resolveds, notebook: bool = False) -> list[str]:
    """What ``announce`` prints for ``resolveds``, in turn, first in a fresh process: a line per real model, and
    for the toy twins one line at most, naming the first (none after an explicit choice of the toy world). The
    capstone's quick search prints these instead of resolving the models again."""
    lines, toy_said = [], False
    for resolved in resolveds:
        line = None if resolved.is_toy and toy_said else announcement(resolved, notebook)
        toy_said = toy_said or resolved.is_toy
        if line:
            lines.append(line)
    return lines


def announce(resolved: ResolvedModel, stream=None) -> None:
    """Say once per role which real weights are in use; for toy twins, one line per process at most, and none
    in a terminal after an explicit choice of the toy world (``--models toy`` or CH09_MODELS=toy)."""
    stream = stream or sys.stdout
    key = f"{resolved.role}:{resolved.location}"
    if key in _announced:
        return
    _announced.add(key)
    if not resolved.is_toy:
        print(announcement(resolved), file=stream)
        return
    notebook = in_notebook()
    if _toy_said or (resolved.chosen and not notebook):
        _toy_said.add(resolved.role)
        return
    _toy_said.add(resolved.role)
    print(toy_line([resolved.role], notebook), file=stream)


# ----------------------------------------------------------------------------- one cache of loaded models
_cache: dict = {}
_cache_lock = threading.Lock()
# One model loaded at a time (re-entrant: a factory may load another through the cache): transformers' loading is
# not thread-safe, and the web server's first searches, run at once, failed with "Cannot copy out of meta tensor".
_load_lock = threading.RLock()


def cached(kind: str, key, factory: Callable[[], object]):
    """The object ``factory()`` made for (``kind``, ``key``), made once per process and shared.

    Every loaded model (encoders, captioners, translators) goes through here, so lessons run
    in one process, the capstone's commands and its web UI never load the same weights twice.
    """
    with _cache_lock:
        if (kind, key) in _cache:
            return _cache[(kind, key)]
    with _load_lock:  # not under _cache_lock: loading takes seconds, and a loaded model is found meanwhile
        with _cache_lock:
            if (kind, key) in _cache:  # another thread loaded it while this one waited
                return _cache[(kind, key)]
        made = factory()
        with _cache_lock:
            return _cache.setdefault((kind, key), made)


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def quiet_transformers() -> None:
    """For entry points only (lessons, command lines): library chatter off for the whole process."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


@contextlib.contextmanager
def quiet_loading():
    """Inside the block, hide library chatter that says nothing to a learner (progress bars on tiny loads,
    the torchvision fallback notice); everything is restored afterwards."""
    import transformers

    verbosity = transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*requires torchvision.*")
            yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()


# ----------------------------------------------------------------------------- device and dtype
def pick_device(device: str | None = None) -> str:
    import torch

    device = device or os.environ.get(config.ENV_DEVICE)
    if device:
        return device
    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def pick_dtype(device: str, dtype: str | None = None):
    """bf16 on CPUs that support it, fp16 on CUDA, fp32 otherwise; overridable."""
    import torch

    dtype = dtype or os.environ.get(config.ENV_DTYPE)
    if dtype:
        try:
            return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                    "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[dtype]
        except KeyError:
            raise UsageError(f"unknown dtype {dtype!r}: use float32, bfloat16 or float16") from None
    if device.startswith("cuda"):
        return torch.float16
    if device == "cpu" and has_native_bf16():
        return torch.bfloat16
    return torch.float32
