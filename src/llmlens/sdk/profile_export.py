"""Folded samples -> a gzip'ed pprof profile -> `POST {endpoint}/ingest`, as Pyroscope's clients push.

The server (llmlens, or Pyroscope itself) takes
`/ingest?name=<service>.cpu{service_name=<service>}&from=&until=&format=pprof&sampleRate=&spyName=llmlens`
with the profile as the body. Each sample's value is a number of samples (sample type
`cpu`/`samples`, or `wall`/`samples`; period 1/hz s in nanoseconds), labelled with `thread_name`
and, when a span was active, `trace_id`, `span_id` and `span_name`.
"""

from __future__ import annotations

import logging
import os
import sys
from types import CodeType

import requests

from llmlens import __version__
from llmlens.sdk.pprof import ProfileBuilder
from llmlens.sdk.stack_sampler import FoldedProfile

log = logging.getLogger("llmlens.sdk")
SPY_NAME = "llmlens"


class SourcePaths:
    """File names as the import system sees them (`httpx/_client.py`), not this machine's absolute paths."""

    def __init__(self) -> None:
        self._short: dict[str, str] = {}

    def __call__(self, filename: str) -> str:
        short = self._short.get(filename)
        if short is None:
            short = self._short[filename] = self._relative(filename)
        return short

    @staticmethod
    def _relative(filename: str) -> str:
        best = ""
        for entry in sys.path:
            root = os.path.abspath(entry or os.curdir).rstrip(os.sep) + os.sep
            if filename.startswith(root) and len(root) > len(best):
                best = root
        return filename[len(best):] if best else filename


def line_at(code: CodeType, offset: int) -> int:
    """The source line of the instruction at byte `offset` in `code` (its first line when unknown)."""
    for start, end, line in code.co_lines():
        if start <= offset < end:
            return line or code.co_firstlineno
    return code.co_firstlineno


def encode_pprof(folded: FoldedProfile, mode: str, period_ns: int, source_path: SourcePaths) -> bytes:
    builder = ProfileBuilder(sample_type=(mode, "samples"), period_type=(mode, "nanoseconds"), period=period_ns,
                             time_nanos=folded.start_ns, duration_nanos=max(0, folded.end_ns - folded.start_ns))
    locations: dict[tuple[int, int], int] = {}
    for (code_ids, offsets, thread_name, span), count in folded.counts.items():
        ids = []
        for frame in zip(code_ids, offsets, strict=True):
            location_id = locations.get(frame)
            if location_id is None:
                code = folded.codes[frame[0]]
                location_id = locations[frame] = builder.location(
                    code.co_qualname, source_path(code.co_filename), code.co_firstlineno, line_at(code, frame[1]))
            ids.append(location_id)
        labels = [("thread_name", thread_name)]
        if span is not None:
            labels += [("trace_id", f"{span.trace_id:032x}"), ("span_id", f"{span.span_id:016x}"),
                       ("span_name", span.name)]
        builder.sample(ids, count, labels)
    return builder.gzipped()


class ProfilePusher:
    """POSTs profiles to `{base}/ingest`; a failure is logged once as a warning until a push succeeds again."""

    def __init__(self, base_url: str, service_name: str, headers: dict[str, str], hz: int, mode: str,
                 timeout_s: float) -> None:
        self.url = base_url.rstrip("/") + "/ingest"
        self.service_name = service_name
        self.hz = hz
        self.mode = mode
        self.timeout_s = timeout_s
        self._headers = {"content-type": "application/octet-stream", "user-agent": f"llmlens-sdk/{__version__}",
                         **headers}
        self._session = self._new_session()
        self._failing = False

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.headers.update(self._headers)
        return session

    def after_fork(self) -> None:
        """In a fork's child: its own connections, not the parent's (the old session is left to the parent)."""
        self._session = self._new_session()
        self._failing = False

    def push(self, body: bytes, start_ns: int, end_ns: int, timeout_s: float | None = None) -> bool:
        params = {
            "name": f"{self.service_name}.{self.mode}{{service_name={self.service_name}}}",
            "from": str(start_ns // 1_000_000_000),
            "until": str(max(end_ns // 1_000_000_000, start_ns // 1_000_000_000)),
            "format": "pprof",
            "sampleRate": str(self.hz),
            "spyName": SPY_NAME,
        }
        try:
            response = self._session.post(self.url, params=params, data=body,
                                          timeout=self.timeout_s if timeout_s is None else timeout_s)
            ok = 200 <= response.status_code < 300
            why = "" if ok else f"HTTP {response.status_code}: {response.text[:200]}"
        except requests.RequestException as exc:
            ok, why = False, repr(exc)
        if ok:
            self._failing = False
        elif not self._failing:
            self._failing = True
            log.warning("llmlens: profile export to %s failed, profiles are dropped until it succeeds: %s",
                        self.url, why)
        else:
            log.debug("llmlens: profile export failed again: %s", why)
        return ok

    def close(self) -> None:
        self._session.close()
