"""Who may use the web UI: logins (``--auth``, ``--auth-file``, ``$CH09_SERVE_AUTH``), the refusal to expose a
library on a network without one, and per-client limits (searches at once, requests a second)."""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from ...errors import UsageError
from .i18n import say


class SlowDown(UsageError):
    """A client over its limits (``ClientLimiter``); ``retry_after``: seconds until it may try again."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


LOOPBACK = ("127.0.0.1", "localhost", "::1")
AUTH_ENV = "CH09_SERVE_AUTH"
PER_CLIENT = 2  # searches one client (login, else address; loopback without login: no limit) may run at once
RATE_PER_S = 5.0  # requests one such client may send a second, on average (a token bucket) ...
RATE_BURST = 10  # ... and at once after a pause


def parse_logins(pairs=(), auth_file=None, env: str | None = None) -> list[tuple[str, str]]:
    """USER:PASSWORD logins from ``--auth`` values, an ``--auth-file`` (one per line, # comments) and
    ``$CH09_SERVE_AUTH`` (comma-separated), in that order; a malformed one is refused by name."""
    given = [(value, "--auth") for value in pairs or ()]
    if auth_file:
        path = Path(auth_file)
        if not path.is_file():
            raise UsageError(f"--auth-file {path}: no such file; write one USER:PASSWORD per line")
        given += [(line.strip(), f"{path}:{number}") for number, line in enumerate(path.read_text().splitlines(), 1)
                  if line.strip() and not line.lstrip().startswith("#")]
    env = os.environ.get(AUTH_ENV) if env is None else env
    given += [(value.strip(), f"${AUTH_ENV}") for value in (env or "").split(",") if value.strip()]
    logins = []
    for value, where in given:
        user, colon, password = value.partition(":")
        if not colon or not user.strip() or not password:
            raise UsageError(f"{where}: a login is USER:PASSWORD with neither part empty")
        logins.append((user.strip(), password))
    return logins


def check_exposure(host: str, logins: list, no_auth: bool, root) -> None:
    """Refuse to put the library on a network without a login, unless ``--no-auth`` says so explicitly."""
    if host in LOOPBACK:
        return
    if not logins and not no_auth:
        raise UsageError(f"serve --host {host} would show every photo in {root} to anyone who can reach this machine; "
                         f"add a login (--auth-file FILE with USER:PASSWORD lines, or {AUTH_ENV}=USER:PASSWORD, or "
                         "--auth USER:PASSWORD), or pass --no-auth to expose it without one")
    if not logins:
        bar = "!" * 78
        print(f"{bar}\n!! serve --no-auth --host {host}: NO LOGIN. Anyone who can reach this machine can search\n"
              f"!! and download every photo in {root}.\n{bar}", file=sys.stderr)



class ClientLimiter:
    """At most ``limit`` requests running at once per client, and ``rate`` a second (a token bucket of
    ``burst`` tokens, refilled at ``rate`` a second); a request beyond either is told to slow down.

    Gradio's ``concurrency_limit`` bounds an event for all clients together, so one client sending a
    burst would otherwise take every search slot; with this, its extra requests end at once and the
    slots go to the others. A client is its login, else its address; this machine's own user (loopback,
    no login) is not limited (``bench.web`` plays 20 users from here)."""

    def __init__(self, limit: int, rate: float = RATE_PER_S, burst: int = RATE_BURST, clock=None):
        self.limit, self.running, self._lock = limit, Counter(), threading.Lock()
        self.rate, self.burst, self.clock = rate, burst, clock or time.monotonic
        self.buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when counted)

    def _take_token(self, who: str) -> float:
        """0 if ``who`` may send this request now, else the seconds until it may (caller holds the lock)."""
        now = self.clock()
        tokens, then = self.buckets.get(who, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        if tokens < 1:
            self.buckets[who] = (tokens, now)
            return (1 - tokens) / self.rate
        self.buckets[who] = (tokens - 1, now)
        if len(self.buckets) > 4096:  # forget clients whose bucket has refilled: the table stays small
            full = self.burst / self.rate
            self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < full}
        return 0.0

    @staticmethod
    def client(request) -> str | None:
        """Who ``request`` comes from, or None for this machine's own user (not limited)."""
        user = getattr(request, "username", None)
        host = getattr(getattr(request, "client", None), "host", None)
        if user:
            return f"user {user}"
        if request is None or host in LOOPBACK:
            return None
        return f"address {host or 'unknown'}"

    @contextlib.contextmanager
    def slot(self, request):
        """``hold`` for the page's events: its "slow down" as the page's one-line message."""
        import gradio as gr  # heavy: gradio

        try:
            with self.hold(self.client(request)):
                yield
        except SlowDown as error:
            raise gr.Error(str(error)) from None

    @contextlib.contextmanager
    def hold(self, who: str | None):
        """One of ``who``'s slots while the block runs (None: not limited); SlowDown when it has none left or
        is sending too fast. The page (``slot``) and the JSON API (``web/api.py``) share it."""
        if who is None:
            yield
            return
        with self._lock:
            wait = self._take_token(who)
            if wait:
                seconds = f"{max(wait, 0.1):.1f}"
                raise SlowDown(say(f"slow down: this client ({who}) is sending more than {self.rate:g} requests a "
                                   f"second (at most {self.burst} at once); try again in {seconds} s",
                                   f"请慢一点：这个客户端（{who}）每秒发送的请求超过 {self.rate:g} 个"
                                   f"（一次最多 {self.burst} 个）；请 {seconds} 秒后再试"), retry_after=max(wait, 0.1))
            if self.running[who] >= self.limit:
                raise SlowDown(say(f"slow down: this client ({who}) already has {self.limit} searches running; "
                                   "wait for them to finish",
                                   f"请慢一点：这个客户端（{who}）已有 {self.limit} 个搜索在运行；请等它们完成"),
                               retry_after=1.0)
            self.running[who] += 1
        try:
            yield
        finally:
            with self._lock:
                self.running[who] -= 1
                if not self.running[who]:
                    del self.running[who]
