"""The JSON API under a long, steady load (issue 34's soak): does the server answer every request, and does its
memory stay flat?

    python -m chapter09.capstone.bench.web --soak 600 [--n 10000] [--clients 20] [--soak-logins] [--out FILE]

``clients`` threads, each with one keep-alive HTTP connection (``http.client``: the cheapest client the standard
library has, so the load generator takes as little of the shared cores as it can), send one request at a time
for ``seconds``: at most ``clients`` requests are in flight, a bounded load rather than a flood. Each client
walks the same cycle of requests from its own starting point, so the clients are not in step:

* English and Chinese text searches (``GET /api/search?text=``, texts drawn at random from the given pools);
* a search by an indexed image (``image=PATH``: a path an earlier answer named, its stored vector);
* a filtered text search (``type=jpeg,png&min_size=8``: the filter's path, which keeps every toy image);
* an upload (``POST /api/search/image``: a thumbnail fetched earlier, sent back as the query image);
* thumbnail fetches (the URLs earlier answers gave; every other one sent with its ``ETag``, answered 304).

What it records: every response's status per kind of request, and each request it sent but got no answer to
(a refused or dropped connection, a timeout: counted as unanswered, apart from the statuses); every request's
latency; the server's resident memory (``VmRSS`` of ``/proc/PID/status``) and the load average every
``sample_s`` seconds; the CPU time the server and this load generator used (both share the machine's cores).
It reports the memory's growth from the first sample after ``warmup_s`` (the first minute: models, caches and
allocator pools filling) to the last sample, in MB and %, with the least-squares trend in MB per minute, and
requests/s, p50 and p99 per window of ``window_s``.

The per-client limiter (``web/access.py``): a client on loopback without a login is this machine's own user and
is not limited, so by default the soak measures the server without it; with ``logins`` each client logs in as
its own user (HTTP Basic), the limiter holds each to its share, and its refusals (429) are counted apart from
the errors.
"""
from __future__ import annotations

import base64
import http.client
import json
import math
import os
import random
import statistics
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from ..errors import ChapterError

# the cycle each client walks (its own starting point): half text searches, the rest the other kinds
MIX = ("en", "thumbnail", "zh", "image", "en", "filtered", "thumbnail", "zh", "en", "upload")
SEARCHES = {"en", "zh", "image", "filtered", "upload"}
FILTER = {"type": "jpeg,png", "min_size": 8}  # the filter's code path; every toy image passes it
KNOWN_HITS = 512  # hits remembered for image queries and thumbnail fetches (a bounded pool)


@dataclass(frozen=True)
class SoakOptions:
    """What one soak runs; the sampling, window and warm-up follow from ``seconds`` unless given (a 600 s soak:
    RSS every 10 s, windows of 60 s, growth from minute 1; a 3 s test: every 0.15 s, 0.6 s, from 0.6 s)."""

    seconds: float = 600.0
    clients: int = 20
    k: int = 8
    logins: bool = False
    sample_s: float | None = None   # RSS and load average read this often; None: min(10, seconds / 20)
    window_s: float | None = None   # p50/p99 per window of this length; None: min(60, seconds / 5)
    warmup_s: float | None = None   # growth measured from the first sample at or after this; None: min(60, seconds / 5)
    timeout_s: float = 60.0         # a request unanswered this long counts as unanswered

    def __post_init__(self):
        derived = {"sample_s": min(10.0, self.seconds / 20), "window_s": min(60.0, self.seconds / 5),
                   "warmup_s": min(60.0, self.seconds / 5)}
        for name, value in derived.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        checks = [(self.seconds > 0, "--soak takes the seconds to run, more than 0 (600 for the issue's soak)"),
                  (self.clients >= 1, "--clients must be at least 1"),
                  (1 <= self.k <= 50, "--k must be from 1 to 50 (the API's limit)"),
                  (self.sample_s > 0 and self.window_s > 0, "the soak's sampling and window must be more than 0 s"),
                  (0 <= self.warmup_s < self.seconds, "the soak's warm-up must be shorter than the soak itself"),
                  (self.timeout_s > 0, "the soak's request timeout must be more than 0 s")]
        for ok, message in checks:
            if not ok:
                raise ChapterError(message)


def soak_logins(clients: int) -> list[tuple[str, str]]:
    """One (user, password) per client, for ``serve``'s logins and the clients' HTTP Basic headers."""
    return [(f"soak{i:02d}", f"pw-{i:02d}-{os.getpid()}") for i in range(clients)]


def rss_mb(pid: int) -> float | None:
    """The resident memory of process ``pid`` in MB (``VmRSS``), or None when it has gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds process ``pid`` has used (``/proc/PID/stat``), or None when it has gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # after the command's name, which may hold spaces
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Shared:
    """What the clients learn from the answers (hit paths, thumbnail URLs and ETags, one JPEG to upload) and
    what they record; appends and small dict writes, under one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.hits: deque[tuple[str, str]] = deque(maxlen=KNOWN_HITS)  # (path, thumbnail URL)
        self.etags: dict[str, str] = {}
        self.jpeg: bytes | None = None
        self.records: list[tuple[float, str, int | None, float]] = []  # (started at s, kind, status, seconds)
        self.unanswered: Counter = Counter()  # why, for requests that got no answer

    def learn(self, kind: str, url: str, status: int, body: bytes, etag: str | None) -> None:
        if kind in SEARCHES and status == 200:
            hits = json.loads(body).get("hits", ())
            with self.lock:
                self.hits.extend((hit["path"], hit["thumbnail"]) for hit in hits if hit.get("thumbnail"))
        elif kind == "thumbnail" and status == 200:
            with self.lock:
                if etag and len(self.etags) < 4 * KNOWN_HITS:
                    self.etags[url] = etag
                if self.jpeg is None:
                    self.jpeg = body


class _Requests:
    """The next request of each kind: (method, path, body, headers), with a fallback to an English search
    while nothing has been learnt yet for an image, a thumbnail or an upload."""

    def __init__(self, english: list[str], chinese: list[str], k: int, shared: _Shared):
        self.english, self.chinese, self.k, self.shared = english, chinese or english, k, shared

    def search(self, **params) -> tuple:
        return "GET", f"/api/search?{urlencode({**params, 'k': self.k})}", None, {}

    def make(self, kind: str, rng: random.Random) -> tuple[str, tuple]:
        with self.shared.lock:
            hit = rng.choice(self.shared.hits) if self.shared.hits else None
            jpeg = self.shared.jpeg
        if kind == "zh":
            return kind, self.search(text=rng.choice(self.chinese))
        if kind == "image" and hit:
            return kind, self.search(image=hit[0])
        if kind == "filtered":
            return kind, self.search(text=rng.choice(self.english), **FILTER)
        if kind == "thumbnail" and hit:
            url = hit[1]
            etag = self.shared.etags.get(url) if rng.random() < 0.5 else None
            return kind, ("GET", url, None, {"If-None-Match": etag} if etag else {})
        if kind == "upload" and jpeg:
            boundary = f"soak{rng.getrandbits(64):x}"
            body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="query.jpg"\r\n'
                    "Content-Type: image/jpeg\r\n\r\n").encode() + jpeg + f"\r\n--{boundary}--\r\n".encode()
            return kind, ("POST", f"/api/search/image?k={self.k}", body,
                          {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        return "en", self.search(text=rng.choice(self.english))


def _client(number: int, url: str, requests: _Requests, shared: _Shared, login, started: float, deadline: float,
            timeout: float) -> None:
    """One client: one request at a time on one keep-alive connection (reopened after a failure) until
    ``deadline``."""
    parts = urlsplit(url)
    auth = {"Authorization": "Basic " + base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()} if login else {}
    rng = random.Random(number)
    connection = None
    step = number
    while time.monotonic() < deadline:
        kind, (method, path, body, headers) = requests.make(MIX[step % len(MIX)], rng)
        step += 1
        sent = time.monotonic()
        try:
            if connection is None:
                connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
            connection.request(method, path, body=body, headers={**headers, **auth})  # paths come URL-encoded
            response = connection.getresponse()
            data, status, etag = response.read(), response.status, response.getheader("ETag")
        except (OSError, http.client.HTTPException) as error:
            shared.unanswered[f"{kind}: {type(error).__name__}: {error}"[:200]] += 1
            shared.records.append((sent - started, kind, None, time.monotonic() - sent))
            if connection is not None:
                connection.close()
            connection = None
            continue
        shared.records.append((sent - started, kind, status, time.monotonic() - sent))
        shared.learn(kind, path, status, data, etag)
    if connection is not None:
        connection.close()


def _sampler(pid: int, started: float, deadline: float, every: float, samples: list, stop: threading.Event) -> None:
    """The server's RSS and the load average at 0 s and every ``every`` seconds, and once more at the end."""
    while True:
        samples.append((round(time.monotonic() - started, 2), rss_mb(pid), os.getloadavg()[0]))
        if stop.wait(max(0.0, min(every, deadline - time.monotonic()))) or time.monotonic() >= deadline:
            samples.append((round(time.monotonic() - started, 2), rss_mb(pid), os.getloadavg()[0]))
            return


def run_soak(url: str, pid: int, english: list[str], chinese: list[str], options: SoakOptions,
             logins: list[tuple[str, str]] | None = None) -> dict:
    """Soak the server at ``url`` (process ``pid``, whose memory is sampled) for ``options.seconds``; ``logins``:
    one per client when the server has them (the limiter on). Returns the figures ``summarise`` makes."""
    if not english:
        raise ChapterError("the soak needs texts to search for (an English pool at least)")
    if logins is not None and len(logins) < options.clients:
        raise ChapterError(f"the soak needs one login per client: {len(logins)} for {options.clients} clients")
    shared = _Shared()
    requests = _Requests(english, chinese, options.k, shared)
    load_before = [round(x, 2) for x in os.getloadavg()]
    server_cpu, own_cpu = cpu_seconds(pid), time.process_time()
    started = time.monotonic()
    deadline = started + options.seconds
    samples: list = []
    stop = threading.Event()
    sampler = threading.Thread(target=_sampler, args=(pid, started, deadline, options.sample_s, samples, stop),
                               daemon=True)
    sampler.start()
    threads = [threading.Thread(target=_client, args=(i, url, requests, shared, logins[i] if logins else None,
                                                      started, deadline, options.timeout_s), daemon=True)
               for i in range(options.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    stop.set()
    sampler.join()
    server_cpu_after = cpu_seconds(pid)
    cpu = {"server_cores": round((server_cpu_after - server_cpu) / wall, 2)
           if server_cpu is not None and server_cpu_after is not None else None,
           "load_generator_cores": round((time.process_time() - own_cpu) / wall, 2),
           "same_process": pid == os.getpid()}  # in a test the server runs in this process: one figure for both
    return summarise(shared, samples, wall, options, cpu, load_before)


def _ms(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 1)


def memory_growth(samples: list[tuple[float, float | None, float]], warmup_s: float) -> dict:
    """The RSS from the first sample at or after ``warmup_s`` to the last: MB, %, and the least-squares trend
    (MB per minute) over those samples."""
    after = [(t, mb) for t, mb, _ in samples if mb is not None and t >= warmup_s]
    if len(after) < 2:
        return {"samples_after_warmup": len(after)}
    (t0, first), (t1, last) = after[0], after[-1]
    mean_t = statistics.fmean(t for t, _ in after)
    mean_mb = statistics.fmean(mb for _, mb in after)
    spread = sum((t - mean_t) ** 2 for t, _ in after)
    slope = sum((t - mean_t) * (mb - mean_mb) for t, mb in after) / spread if spread else 0.0
    return {"samples_after_warmup": len(after), "from_s": t0, "to_s": t1, "from_mb": round(first, 1),
            "to_mb": round(last, 1), "growth_mb": round(last - first, 1),
            "growth_pct": round(100 * (last - first) / first, 2), "trend_mb_per_min": round(60 * slope, 2),
            "max_mb": round(max(mb for _, mb in after), 1)}


def summarise(shared: _Shared, samples: list, wall: float, options: SoakOptions, cpu: dict, load_before) -> dict:
    records = shared.records
    statuses = Counter(status for _, _, status, _ in records if status is not None)
    answered = sum(statuses.values())
    ok = sum(n for status, n in statuses.items() if 200 <= status < 400)  # 2xx, and 304 for a revalidated thumbnail
    kinds = {}
    for kind in sorted({kind for _, kind, _, _ in records}):
        mine = [(status, seconds) for _, k, status, seconds in records if k == kind]
        kinds[kind] = {"requests": len(mine), "statuses": dict(Counter(str(s) for s, _ in mine)),
                       "p50_ms": _ms([s for status, s in mine if status], 0.5),
                       "p99_ms": _ms([s for status, s in mine if status], 0.99)}
    windows = []
    count = max(1, math.ceil(round(options.seconds / options.window_s, 6)))  # a request is sent only before the deadline
    for w in range(count):
        start, end = w * options.window_s, min(options.seconds, (w + 1) * options.window_s)
        last = w == count - 1  # it also takes a request sent a moment after the deadline was checked
        inside = [s for at, _, status, s in records if start <= at and (at < end or last) and status is not None]
        windows.append({"from_s": round(start, 1), "to_s": round(end, 1), "requests": len(inside),
                        "requests_per_s": round(len(inside) / max(end - start, 1e-9), 1),
                        "p50_ms": _ms(inside, 0.5), "p99_ms": _ms(inside, 0.99)})
    return {"seconds": round(wall, 1), "clients": options.clients, "k": options.k,
            "limiter": "on: one login per client" if options.logins else "off: loopback without a login",
            "requests": len(records), "answered": answered, "unanswered": len(records) - answered,
            "ok": ok, "slowed_429": statuses.get(429, 0), "errors": answered - ok - statuses.get(429, 0),
            "statuses": {str(s): n for s, n in sorted(statuses.items())},
            "unanswered_why": dict(shared.unanswered.most_common(5)),
            "requests_per_s": round(answered / wall, 1), "p50_ms": _ms([s for _, _, st, s in records if st], 0.5),
            "p99_ms": _ms([s for _, _, st, s in records if st], 0.99), "kinds": kinds, "windows": windows,
            "rss": [{"t_s": t, "mb": round(mb, 1) if mb is not None else None, "load": round(load, 2)}
                    for t, mb, load in samples],
            "memory": memory_growth(samples, options.warmup_s), "warmup_s": options.warmup_s, "cpu": cpu,
            "load_before": load_before, "load_max": round(max((load for _, _, load in samples), default=0.0), 2),
            "load_after": [round(x, 2) for x in os.getloadavg()]}


def format_soak(r: dict) -> str:
    memory = r["memory"]
    lines = [f"soak: {r['clients']} clients (one request in flight each), {r['seconds']} s, JSON API, k={r['k']}; "
             f"per-client limiter {r['limiter']}",
             f"  requests: {r['answered']:,} answered of {r['requests']:,} ({r['unanswered']} unanswered); "
             f"ok (2xx/304) {r['ok']:,}, slowed down (429) {r['slowed_429']:,}, errors {r['errors']:,}; "
             f"statuses {r['statuses']}",
             f"  {r['requests_per_s']} requests/s; p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms"]
    lines += [f"    {kind:>9}: {k['requests']:,} requests, p50 {k['p50_ms']} ms, p99 {k['p99_ms']} ms, {k['statuses']}"
              for kind, k in r["kinds"].items()]
    if "growth_mb" in memory:
        lines.append(f"  server RSS: {memory['from_mb']} MB at {memory['from_s']} s -> {memory['to_mb']} MB at "
                     f"{memory['to_s']} s: {memory['growth_mb']:+} MB ({memory['growth_pct']:+} %); trend "
                     f"{memory['trend_mb_per_min']:+} MB/min over {memory['samples_after_warmup']} samples; "
                     f"max {memory['max_mb']} MB")
    else:
        lines.append(f"  server RSS: too few samples after the {r['warmup_s']} s warm-up to say")
    cpu = r["cpu"]
    lines.append(f"  CPU: server {cpu['server_cores']} cores, load generator {cpu['load_generator_cores']} cores"
                 + (" (one process: the server runs in it)" if cpu["same_process"] else "") +
                 f"; load average before {r['load_before']}, at most {r['load_max']} during, after {r['load_after']}")
    lines += [f"    {w['from_s']:>6}-{w['to_s']:<6} s: {w['requests']:>6,} requests, {w['requests_per_s']:>6} /s, "
              f"p50 {w['p50_ms']} ms, p99 {w['p99_ms']} ms" for w in r["windows"]]
    lines += [f"  unanswered: {n} x {why}" for why, n in r["unanswered_why"].items()]
    return "\n".join(lines)
