"""A real HTTP receiver for the profiles the SDK pushes to `/ingest`, decoded into plain stacks.

It checks what the contract with the server says a push is (query parameters, a gzip'ed pprof
body, the sample type and period) and turns each pprof sample into a `ProfileSample` with its frame
names root first, its value and its labels.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from llmlens.sdk.pprof import Profile


@dataclass
class ProfileSample:
    frames: tuple[str, ...]  # "function (file:line)", root first
    value: int
    labels: dict[str, str]


@dataclass
class Push:
    params: dict[str, str]
    headers: dict[str, str]
    sample_type: tuple[str, str]
    period_type: tuple[str, str]
    period: int
    samples: list[ProfileSample]


def decode(body: bytes) -> tuple[Any, list[ProfileSample]]:
    profile = Profile()
    profile.ParseFromString(gzip.decompress(body))
    strings = profile.string_table
    assert strings[0] == ""
    functions = {f.id: f for f in profile.function}
    locations = {}
    for location in profile.location:
        (line,) = location.line
        function = functions[line.function_id]
        locations[location.id] = f"{strings[function.name]} ({strings[function.filename]}:{function.start_line})"
    samples = [
        ProfileSample(tuple(locations[i] for i in reversed(s.location_id)), s.value[0],
                      {strings[label.key]: strings[label.str] for label in s.label})
        for s in profile.sample
    ]
    return profile, samples


@dataclass
class ProfileReceiver:
    pushes: list[Push] = field(default_factory=list)
    status: int = 200  # what every push is answered with
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def samples(self) -> list[ProfileSample]:
        with self.lock:
            return [s for push in self.pushes for s in push.samples]

    def wait_for(self, predicate: Callable[[ProfileReceiver], bool], timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return False


def start_profile_receiver() -> ProfileReceiver:
    receiver = ProfileReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            url = urlsplit(self.path)
            if url.path == "/ingest" and receiver.status == 200:
                profile, samples = decode(body)
                s = profile.string_table
                push = Push({k: v[0] for k, v in parse_qs(url.query).items()},
                            {k.lower(): v for k, v in self.headers.items()},
                            (s[profile.sample_type[0].type], s[profile.sample_type[0].unit]),
                            (s[profile.period_type.type], s[profile.period_type.unit]), profile.period, samples)
                with receiver.lock:
                    receiver.pushes.append(push)
            self.send_response(receiver.status if url.path == "/ingest" else 404)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    receiver.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=receiver.server.serve_forever, daemon=True).start()
    return receiver
