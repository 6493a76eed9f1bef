"""The index's writer lock, one writer at a time: an exclusive ``flock`` on ``INDEX/.lock`` in a folder,
a lock object created with a conditional put on S3 (``ObjectStoreLock``).

The kernel releases a ``flock`` when its holder dies, even by ``kill -9``, so a killed run never
leaves a stale lock behind. On S3 nothing does: the lock object is a lease its holder refreshes, taken
over when its holder is gone. Readers never take either.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from email.utils import parsedate_to_datetime
from pathlib import Path

from ...errors import SetupError
from ..errors import IndexLockedError, StoreError, file_system_error, log
from .locations import is_uri

LOCK_NAME = ".lock"


class IndexLock:
    """An exclusive ``flock`` on ``INDEX/.lock``: one writer at a time, released by the kernel on death.

    ``wait_s``: how long to wait for another holder (0: refuse at once). The file carries the
    holder's pid, host and start time so the refusal can say who has it.
    """

    def __init__(self, index_dir: str | os.PathLike, wait_s: float = 0.0):
        self.path = Path(index_dir) / LOCK_NAME
        self.wait_s = wait_s
        self.fd: int | None = None

    def holder(self) -> str:
        try:
            data = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            data = {}
        if not data:
            return "another process"
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(data.get("since", 0)))
        return f"pid {data.get('pid')} on {data.get('host')}, since {since}"

    def acquire(self) -> "IndexLock":
        import fcntl  # POSIX only: fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise self._refused(error) from None
        deadline, told = time.monotonic() + self.wait_s, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    waited = f" after waiting {self.wait_s:g} s" if self.wait_s else ""
                    raise IndexLockedError(
                        f"index {self.path.parent} is being updated by another run ({self.holder()}){waited}; "
                        "nothing was written. Wait for it to finish, or pass --wait SECONDS to queue behind it") \
                        from None
                if not told:
                    log(f"index {self.path.parent} is being updated by another run ({self.holder()}); "
                        f"waiting up to {self.wait_s:g} s for it to finish")
                    told = True
                time.sleep(0.2)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode(),
                      0)
        except OSError as error:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise self._refused(error) from None
        self.fd = fd
        return self

    def _refused(self, error: OSError) -> BaseException:
        """A read-only or full index folder, said so; any other failure to take the lock stays as it is."""
        return file_system_error(self.path.parent, error, "taking the write lock")

    def release(self) -> None:
        import fcntl  # POSIX only: fcntl

        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


# ----------------------------------------------------------------------------- an index on an object store
LEASE_S = 30.0  # a lock object whose holder has not refreshed it for this long is stale ($CH09_LOCK_LEASE_S)
LEASE_ENV = "CH09_LOCK_LEASE_S"


def _boot_id() -> str:
    """This machine's boot id: a pid is only comparable between processes of one host and one boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str | None:
    """The start time of ``pid`` (clock ticks since boot; None: no such process), so a reused pid is not
    taken for the holder."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None if not _pid_alive(pid) else ""
    return stat.rsplit(")", 1)[1].split()[19]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (bucket, 'some/prefix')."""
    rest = uri.split("://", 1)[1].strip("/")
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix


class ObjectStoreLock:
    """The writer lock of an index on S3 (``s3://bucket/prefix``): the object ``prefix/.lock``, created
    with a conditional put (``If-None-Match: *``), so of two writers exactly one creates it.

    No kernel releases it when its holder dies, so it is a lease: the holder rewrites it every
    ``lease_s / 4`` (``If-Match`` its own version, so it never overwrites a lock someone else took over)
    and deletes it on release (``If-Match`` again). A lock object is stale, and is taken over, when its
    holder ran on this machine (same host and boot) and that process is gone (``kill -9``: the next run
    takes it at once), or when it was not refreshed for ``lease_s`` seconds by the server's clock (a
    holder on another machine that died or lost the network). A holder that cannot refresh its lease
    for ``lease_s``, or finds it taken over, stops at its next commit (``check``).

    Endpoint and credentials come from the standard AWS variables (``AWS_ENDPOINT_URL``,
    ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``/``AWS_DEFAULT_REGION``), as for LanceDB.
    """

    def __init__(self, uri: str, wait_s: float = 0.0, lease_s: float | None = None):
        self.uri = uri.rstrip("/")
        self.bucket, prefix = split_s3_uri(self.uri)
        self.key = f"{prefix}/{LOCK_NAME}" if prefix else LOCK_NAME
        self.path = f"{self.uri}/{LOCK_NAME}"
        self.wait_s = wait_s
        self.lease_s = float(lease_s if lease_s is not None else os.environ.get(LEASE_ENV, LEASE_S))
        self.etag: str | None = None
        self.lost: str | None = None
        self.took_over: str | None = None  # whom a stale lock was taken from, for the log and tests
        self._stop = None
        self._thread = None
        self._client = None

    # ---- S3
    def client(self):
        if self._client is None:
            try:
                import boto3  # optional: boto3, for object stores only
                from botocore.config import Config
            except ImportError:
                raise SetupError("an s3:// index needs boto3 for its write lock: pip install boto3==1.43.11 "
                                 "(it is in requirements.txt)") from None
            self._client = boto3.client("s3", config=Config(retries={"max_attempts": 3, "mode": "standard"},
                                                            connect_timeout=5, read_timeout=10))
        return self._client

    def _body(self) -> bytes:
        return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "boot": _boot_id(),
                           "start": _process_start(os.getpid()), "since": self._since, "lease_s": self.lease_s,
                           "refreshed": time.time()}).encode()

    def _read(self) -> tuple[dict, str, float] | None:
        """(holder info, etag, age in s by the server's clock) of the lock object, None if there is none."""
        from botocore.exceptions import ClientError  # optional: botocore

        try:
            got = self.client().get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise self._failed(error, "reading the write lock") from None
        try:
            data = json.loads(got["Body"].read() or b"{}")
        except ValueError:
            data = {}

        server_now = got["ResponseMetadata"]["HTTPHeaders"].get("date")
        now = parsedate_to_datetime(server_now).timestamp() if server_now else time.time()
        return data, got["ETag"], max(0.0, now - got["LastModified"].timestamp())

    def _failed(self, error, doing: str) -> BaseException:
        """An S3 failure in words: a missing bucket, refused credentials, an unreachable endpoint."""
        code = getattr(error, "response", {}).get("Error", {}).get("Code", type(error).__name__)
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or "AWS S3 (AWS_ENDPOINT_URL is not set)"
        if code == "NoSuchBucket":
            return SetupError(f"bucket {self.bucket} does not exist at {endpoint} ({doing} for index {self.uri}); "
                              f"create it first (aws s3 mb s3://{self.bucket}), or check AWS_ENDPOINT_URL")
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoCredentialsError",
                    "PartialCredentialsError"):
            return SetupError(f"{endpoint} refused {doing} for index {self.uri} ({code}); set AWS_ACCESS_KEY_ID and "
                              "AWS_SECRET_ACCESS_KEY (and AWS_REGION) to credentials that may write the bucket")
        if code in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"):
            return SetupError(f"cannot reach {endpoint} ({doing} for index {self.uri}: {code}); check "
                              "AWS_ENDPOINT_URL and the network")
        return StoreError(f"{doing} for index {self.uri} failed: {error}")

    def _stale(self, data: dict, age: float) -> str | None:
        """Why the lock object ``data`` (``age`` s since it was last written) is stale, None if its holder lives."""
        pid = data.get("pid")
        same_machine = data.get("host") == socket.gethostname() and data.get("boot") == _boot_id() and data.get("boot")
        if same_machine and isinstance(pid, int):
            start = _process_start(pid)
            if start is None or (data.get("start") and start and start != data.get("start")):
                return f"its process (pid {pid} on this machine) is gone"
        lease = float(data.get("lease_s") or self.lease_s)
        if age > lease:
            return f"not refreshed for {age:.0f} s (lease {lease:g} s)"
        return None

    def holder(self, data: dict | None = None) -> str:
        if data is None:
            found = self._read()
            data = found[0] if found else {}
        if not data:
            return "another process"
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(data.get("since", 0)))
        return f"pid {data.get('pid')} on {data.get('host')}, since {since}"

    # ---- taking and giving back
    def acquire(self) -> "ObjectStoreLock":
        from botocore.exceptions import BotoCoreError, ClientError  # optional: botocore

        self._since = time.time()
        deadline, told = time.monotonic() + self.wait_s, False
        while True:
            try:
                put = self.client().put_object(Bucket=self.bucket, Key=self.key, Body=self._body(), IfNoneMatch="*")
                self.etag = put["ETag"]
                break
            except ClientError as error:
                if error.response["Error"]["Code"] not in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise self._failed(error, "taking the write lock") from None
            except BotoCoreError as error:
                raise self._failed(error, "taking the write lock") from None
            found = self._read()
            if found is None:  # released between our put and our read: try again at once
                continue
            data, etag, age = found
            why = self._stale(data, age)
            if why:
                try:  # only that very lock object: if its holder refreshed it meanwhile, it is not stale
                    self.client().delete_object(Bucket=self.bucket, Key=self.key, IfMatch=etag)
                except ClientError as error:
                    if error.response["Error"]["Code"] not in ("PreconditionFailed", "NoSuchKey", "404"):
                        raise self._failed(error, "removing a stale write lock") from None
                self.took_over = f"{self.holder(data)}: {why}"
                log(f"index {self.uri}: took over a stale write lock ({self.took_over})")
                continue
            if time.monotonic() >= deadline:
                waited = f" after waiting {self.wait_s:g} s" if self.wait_s else ""
                raise IndexLockedError(
                    f"index {self.uri} is being updated by another run ({self.holder(data)}){waited}; nothing was "
                    f"written. Wait for it to finish, or pass --wait SECONDS to queue behind it (a holder that died "
                    f"on another machine is taken over {float(data.get('lease_s') or self.lease_s):g} s after its "
                    f"last refresh; it was refreshed {age:.0f} s ago)") from None
            if not told:
                log(f"index {self.uri} is being updated by another run ({self.holder(data)}); "
                    f"waiting up to {self.wait_s:g} s for it to finish")
                told = True
            time.sleep(0.5)
        self._start_refresh()
        return self

    def _start_refresh(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh, name="index-lock-lease", daemon=True)
        self._thread.start()

    def _refresh(self) -> None:
        """Rewrite the lock object every lease/4 while held, If-Match our own version."""
        from botocore.exceptions import BotoCoreError, ClientError  # optional: botocore

        last_ok = time.monotonic()
        while not self._stop.wait(self.lease_s / 4):
            try:
                put = self.client().put_object(Bucket=self.bucket, Key=self.key, Body=self._body(), IfMatch=self.etag)
                self.etag, last_ok = put["ETag"], time.monotonic()
            except ClientError as error:
                if error.response["Error"]["Code"] in ("PreconditionFailed", "NoSuchKey", "404"):
                    self.lost = "another run took the lock over (this run's lease had lapsed)"
                    return
            except BotoCoreError:
                pass  # the network: try again; a lease not refreshed in time is lost below
            if time.monotonic() - last_ok > self.lease_s:
                self.lost = f"its lease could not be refreshed for {self.lease_s:g} s"
                return

    def check(self) -> None:
        """Raise if this run no longer holds the lock (called before each commit)."""
        if self.lost:
            raise IndexLockedError(f"index {self.uri}: this run lost its write lock ({self.lost}); it stopped "
                                   "before its next commit. Every earlier commit is kept: run the command again")

    def release(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError  # optional: botocore

        if self._stop is not None:
            self._stop.set()
            self._thread.join(timeout=15)
            self._stop = None
        if self.etag is not None and not self.lost:
            with contextlib.suppress(ClientError, BotoCoreError):
                self.client().delete_object(Bucket=self.bucket, Key=self.key, IfMatch=self.etag)
        self.etag = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def lock_for(location: str | os.PathLike, wait_s: float = 0.0):
    """The writer lock of an index: ``IndexLock`` in a folder, ``ObjectStoreLock`` on S3 (None: another URI
    scheme, which has no lock)."""
    location = str(location)
    if location.startswith("s3://"):
        return ObjectStoreLock(location, wait_s)
    if is_uri(location):
        return None
    return IndexLock(location, wait_s)
