"""Helpers the store's fault tests share: a writer child process to kill, and a lock file the kernel refuses."""
import errno
import os
import textwrap


def writer_script(commit_rows: int, pace_s: float = 0.0) -> str:
    """A child that writes img/00000.jpg.. (argv: index, total, library) in commits of ``commit_rows``,
    skipping what earlier runs committed, printing "committed N" after each commit (and "took over …" when
    it took a stale lock over), ``pace_s`` between rows so that a kill lands mid-run."""
    return textwrap.dedent(f"""
        import sys, time, numpy as np
        from chapter09.capstone.store.database import EncoderIdentity, Store
        index, total = sys.argv[1], int(sys.argv[2])
        identity = EncoderIdentity("clip", "/models/clip-toy", "bf16", 16)
        with Store.open(index, library=sys.argv[3], write=True, commit_rows={commit_rows}) as store:
            if getattr(store.lock, "took_over", None):
                print("took over", store.lock.took_over, flush=True)
            table = store.images(identity)
            done = set(table.column("path").to_pylist())  # resume: what earlier runs committed
            for i in range(total):
                path = f"img/{{i:05d}}.jpg"
                if path in done:
                    continue
                if {pace_s!r}:
                    time.sleep({pace_s!r})
                v = np.random.default_rng(i).standard_normal((1, 16)).astype(np.float32)
                table.put({{"path": [path], "size": [i], "mtime_ns": [i], "sha1": ["x"], "width": [1], "height": [1],
                           "vector": v / np.linalg.norm(v)}})
                if table.pending == 0:
                    print("committed", len(table), flush=True)
        print("finished", flush=True)
    """)


def refuse_lock_file(monkeypatch, index) -> None:
    """The kernel refusing to create ``index``'s lock file, as on a read-only mount (the tests run as root)."""
    from chapter09.capstone.store import lock

    real_open = os.open

    def refusing(path, flags, *args):
        if str(path) == str(index / lock.LOCK_NAME) and flags & (os.O_RDWR | os.O_WRONLY | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(lock.os, "open", refusing)
