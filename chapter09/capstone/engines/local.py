"""The local engine's decode half: a dataset's items in batches from DataLoader worker processes, started by a
fork server (never forked from this process, which holds LanceDB), the fork server stopped when the batches end.
Indexing (``index.decode.DecodedFiles``) and captioning (``caption_batch.CaptionDecoded``) hand it their dataset."""
from __future__ import annotations

import contextlib
import functools
import multiprocessing
import multiprocessing.forkserver
import os
import sys
import threading
import time
import types


def collate_as_list(items):
    """A batch is the list of its items (dicts): nothing stacked, nothing copied."""
    return items


MIN_BATCHES_FOR_WORKERS = 2  # a run of this many batches or fewer decodes here: workers' start-up would cost more


def default_workers(items: int, batch_size: int, model_threads: int | None = None) -> int:
    """Decode workers for a run of ``items``: up to two, none for a run of ``MIN_BATCHES_FOR_WORKERS`` batches or
    fewer (their start-up would cost more than they save). ``model_threads``: a model so much slower than decoding
    that it keeps its threads' cores busy (a captioner): workers only on the cores it leaves, because on a core it
    uses a worker decodes no sooner and adds its start-up (BLIP bf16 on 2 cores, 32 photos: 3.10 img/s decoding
    here, 2.28 with two workers)."""
    if items <= MIN_BATCHES_FOR_WORKERS * batch_size:
        return 0
    cores = os.cpu_count() or 1
    return min(2, cores if model_threads is None else max(0, cores - model_threads))


def worker_batches(dataset, batch_size: int, workers: int | None, preprocessors: dict):
    """Batches (lists) of ``dataset``'s items, decoded in ``workers`` processes (None: ``default_workers``; 0: here).
    ``preprocessors``: the image processors the workers use, preloaded by the fork server."""
    from torch.utils.data import DataLoader  # heavy: torch

    workers = default_workers(len(dataset), batch_size) if workers is None else workers
    context = decode_context(preprocessors, type(dataset).__module__) if workers else None
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_as_list,
                        prefetch_factor=4 if workers else None, persistent_workers=False,
                        multiprocessing_context=context,
                        worker_init_fn=functools.partial(exit_with, os.getpid()) if workers else None)
    return stopping_fork_server(loader) if workers else loader


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie awaiting its parent's wait counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except FileNotFoundError:
        return True
    except OSError:  # no /proc: ask the kernel whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        return False


def exit_with(main_pid: int, _worker_id: int = 0, poll_s: float = 1.0) -> None:
    """Run in each decode worker as it starts: end the worker once ``main_pid`` (the process reading the batches)
    has ended. Without it a ``kill -9`` of ``index`` or ``caption --index`` left the fork server and its workers
    running for ever: torch's watchdog watches a worker's parent, which is the fork server, and the fork server
    waits for every process holding its liveness pipe, which the workers do."""
    def watch():
        while not _gone(main_pid):
            time.sleep(poll_s)
        os._exit(0)

    threading.Thread(target=watch, name="ch09-exit-with-main", daemon=True).start()


@contextlib.contextmanager
def main_hidden():
    """A fork server (or spawn) is told the parent's main script and re-runs it before any worker starts, unless
    it is guarded by `if __name__ == "__main__"`: a lesson, the tour (run by run_all_sections through runpy) or a
    learner's own script calling build_index at top level would start indexing again. The workers need nothing
    from __main__ (the dataset and collate function live in modules), so they start with it hidden."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def stopping_fork_server(loader):
    """The loader's batches; once they end (or the caller stops), its workers and then the fork server exit, so
    their CPU time is this process's children's (``getrusage(RUSAGE_CHILDREN)``, which the bench reads: a fork
    server's workers are its children, counted only when it is reaped) and nothing is left running."""
    with main_hidden():
        batches = iter(loader)  # starts the workers (and the fork server)
    try:
        yield from batches
    finally:
        shutdown = getattr(batches, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        del batches
        stop = getattr(getattr(multiprocessing.forkserver, "_forkserver", None), "_stop", None)
        if stop is not None:
            stop()


def prestart_decode_workers(preprocessors: dict, dataset_module: str) -> bool:
    """Start the decode workers' fork server now, so the pool that follows finds it running: its interpreter
    imports torch and the decoding modules (about 2.6 s before a cold pool's first batch, 0.4 s after a warm
    start, measured here), which overlaps whatever the caller does meanwhile (``index`` loads its models and
    checks precision). A fork server already running is kept. False where there is no fork server (spawn)."""
    context = decode_context(preprocessors, dataset_module)
    if context.get_start_method() != "forkserver":
        return False
    with main_hidden():
        multiprocessing.forkserver.ensure_running()
    return True


def decode_context(preprocessors: dict, dataset_module: str | None = None):
    """How decode workers start: never as a fork of this process, which holds LanceDB's runtime (LanceDB warns
    that a forked child can deadlock). A fork server (a fresh interpreter that has imported only torch, this
    module, the dataset's module and the image processors, never LanceDB) forks them instead: its start-up is
    paid once per pool (it is stopped when the pool's batches end), each worker after it starts in a fraction of
    a second; spawn, where there is no fork server, re-imports everything in every worker."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    preload = ["torch", __name__, *([dataset_module] if dataset_module else []),
               *sorted({type(p).__module__ for p in preprocessors.values()})]
    context.set_forkserver_preload(list(dict.fromkeys(preload)))
    return context
