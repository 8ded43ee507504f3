"""Ingest throughput of a real `llmlens serve` process, end to end.

Pre-builds OTLP/protobuf bodies of LLM-app traces (4 spans a trace: HTTP root, retrieval,
embedding, LLM chat with ~30 attributes and ~500-character prompt and response; 512 spans a
request; about 750 bytes a span on the wire), sends them from N concurrent senders for a fixed
time, then prints:
accepted spans/s (acknowledged 2xx), end-to-end spans/s (counted by /api/v1/status), the
server's CPU per span split into ingest workers, merges and kernel time, the senders' CPU,
how busy the machine was, peak RSS (server process, and server plus its workers), and bytes on
disk per span.

`--shape heavy` sends a heavier, common shape: every span carries both OpenInference and GenAI
attributes (as apps instrumented twice, or by a bridge, send them), the retriever span its three
documents with their text, the chat span its ~500-character prompt and response in both
conventions' message attributes; about 1.66 KB a span on the wire.

On a shared machine the figures move with its speed: compare runs by the reference speed
printed last. File creation costs kernel time that depends on what the file system did just
before (the test suite, or a previous run deleting its data directory): leave a minute between
runs.

    python benchmarks/ingest.py [--shape current|heavy] [--senders 4] [--seconds 20] [--spans-per-request 512]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.server_process import ServerProcess  # noqa: E402

PROMPT = ("You are a helpful support assistant for Acme Cloud. Answer using the context. Context: " +
          "Acme Cloud invoices are issued monthly; refunds take five business days. " * 5)[:500]
ANSWER = ("Refunds are processed within five business days after approval. You can follow the status in the "
          "billing console under Invoices > Refunds. " * 4)[:500]


def _kv(key: str, value) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def _span(trace_id: bytes, parent: bytes, name: str, kind: int, start: int, dur_ms: float, attrs: dict) -> Span:
    span = Span(trace_id=trace_id, span_id=random.randbytes(8), parent_span_id=parent, name=name, kind=kind,
                start_time_unix_nano=start, end_time_unix_nano=start + int(dur_ms * 1e6),
                status=Status(code=1))
    span.attributes.extend(_kv(k, v) for k, v in attrs.items())
    return span


def build_request(traces: int, now_ns: int) -> bytes:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend([_kv("service.name", "chatbot"), _kv("llmlens.app", "support"),
                                   _kv("llmlens.department", "cx"), _kv("deployment.environment", "bench")])
    scope = rs.scope_spans.add()
    scope.scope.name = "llmlens.bench"
    for i in range(traces):
        tid = random.randbytes(16)
        start = now_ns - random.randint(0, 5_000_000_000) + i
        root = _span(tid, b"", "POST /v1/chat", 2, start, 900, {
            "http.request.method": "POST", "http.route": "/v1/chat", "http.response.status_code": 200,
            "url.scheme": "http", "server.address": "chatbot", "server.port": 8000, "session.id": f"s-{i % 50}",
            "user.id": f"u-{i % 200}"})
        retrieval = _span(tid, root.span_id, "retrieve", 1, start + 1_000_000, 40, {
            "llmlens.span.kind": "retrieval", "retrieval.top_k": 4, "retrieval.results": 4,
            "retrieval.score.avg": 0.71, "gen_ai.retrieval.query.text": "how long do refunds take?"})
        embed = _span(tid, retrieval.span_id, "embeddings text-embedding-3-small", 3, start + 2_000_000, 12, {
            "gen_ai.operation.name": "embeddings", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "text-embedding-3-small", "gen_ai.response.model": "text-embedding-3-small",
            "gen_ai.usage.input_tokens": 9, "server.address": "mock-llm", "server.port": 8100})
        chat_attrs = {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18", "gen_ai.request.temperature": 0.2,
            "gen_ai.request.max_tokens": 256, "gen_ai.request.top_p": 1.0, "gen_ai.request.stream": True,
            "gen_ai.response.id": f"chatcmpl-{random.getrandbits(64):x}", "gen_ai.response.finish_reasons": "stop",
            "gen_ai.usage.input_tokens": random.randint(200, 900), "gen_ai.usage.output_tokens": random.randint(20, 300),
            "gen_ai.usage.cache_read.input_tokens": 0, "gen_ai.response.time_to_first_chunk": 0.18,
            "server.address": "mock-llm", "server.port": 8100, "gen_ai.conversation.id": f"s-{i % 50}",
            "llmlens.app": "support", "llmlens.department": "cx", "user.id": f"u-{i % 200}",
            "openai.response.service_tier": "default", "openai.response.system_fingerprint": "fp_bench",
            "gen_ai.output.type": "text", "gen_ai.request.seed": 7, "gen_ai.request.frequency_penalty": 0.0,
            "gen_ai.request.presence_penalty": 0.0, "llmlens.cost_usd": 0.00012, "llmlens.ttft_ms": 180.0,
            "gen_ai.input.messages": PROMPT, "gen_ai.output.messages": ANSWER,
        }
        chat = _span(tid, root.span_id, "chat gpt-4o-mini", 3, start + 60_000_000, 800, chat_attrs)
        scope.spans.extend([root, retrieval, embed, chat])
    return request.SerializeToString()


DOCUMENTS = [
    ("kb-refunds-01", 0.83, "Refund policy. Approved refunds are paid back to the original payment method within five "
     "business days. Partial refunds are possible for annual plans cancelled within thirty days of renewal; the "
     "unused months are credited pro rata. Refunds for usage-based charges are not available once consumed."),
    ("kb-billing-07", 0.76, "Invoices. Acme Cloud issues one invoice per billing account on the first day of each "
     "month, covering the previous month's usage. Invoices are available in the billing console and are e-mailed "
     "to the account's billing contacts. Tax is computed from the billing address at the time of issue."),
    ("kb-support-12", 0.64, "Contacting support. Customers on the Business plan can open a ticket from the console "
     "and get a first answer within four hours; Enterprise customers have a named contact and a phone line. Billing "
     "questions are answered by the finance team during business hours, Monday to Friday."),
]
QUESTION = "How long does a refund take, and where can I follow its status?"


def _messages(role: str, text: str) -> str:
    """GenAI's structured message attribute (a JSON array of messages with parts)."""
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}], separators=(",", ":"))


def build_heavy_request(traces: int, now_ns: int) -> bytes:
    """Spans that carry both OpenInference and GenAI attributes; ~1.66 KB a span on the wire."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend([_kv("service.name", "chatbot"), _kv("llmlens.app", "support"),
                                   _kv("llmlens.department", "cx"), _kv("deployment.environment", "bench")])
    scope = rs.scope_spans.add()
    scope.scope.name = "openinference.instrumentation.openai"
    scope.scope.version = "0.1.18"
    for i in range(traces):
        tid = random.randbytes(16)
        start = now_ns - random.randint(0, 5_000_000_000) + i
        session, user = f"s-{i % 50}", f"u-{i % 200}"
        root = _span(tid, b"", "POST /v1/chat", 2, start, 900, {
            "http.request.method": "POST", "http.route": "/v1/chat", "http.response.status_code": 200,
            "url.scheme": "http", "server.address": "chatbot", "server.port": 8000, "session.id": session,
            "user.id": user, "openinference.span.kind": "CHAIN", "input.value": QUESTION, "input.mime_type": "text/plain",
            "output.value": ANSWER.split(". ")[0], "output.mime_type": "text/plain",
            "gen_ai.operation.name": "invoke_workflow", "gen_ai.conversation.id": session})
        retrieval_attrs = {
            "openinference.span.kind": "RETRIEVER", "gen_ai.operation.name": "retrieval", "input.value": QUESTION,
            "gen_ai.retrieval.query.text": QUESTION, "gen_ai.data_source.id": "kb-main", "retrieval.top_k": 3,
            "session.id": session, "user.id": user,
        }
        for n, (doc_id, score, text) in enumerate(DOCUMENTS):
            retrieval_attrs[f"retrieval.documents.{n}.document.id"] = doc_id
            retrieval_attrs[f"retrieval.documents.{n}.document.score"] = score
            retrieval_attrs[f"retrieval.documents.{n}.document.content"] = text
        retrieval = _span(tid, root.span_id, "retrieve", 1, start + 1_000_000, 40, retrieval_attrs)
        embed = _span(tid, retrieval.span_id, "embeddings text-embedding-3-small", 3, start + 2_000_000, 12, {
            "openinference.span.kind": "EMBEDDING", "embedding.model_name": "text-embedding-3-small",
            "embedding.embeddings.0.embedding.text": QUESTION, "llm.system": "openai", "llm.provider": "openai",
            "embedding.invocation_parameters": '{"model":"text-embedding-3-small","encoding_format":"base64"}',
            "gen_ai.operation.name": "embeddings", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "text-embedding-3-small", "gen_ai.response.model": "text-embedding-3-small",
            "gen_ai.usage.input_tokens": 14, "llm.token_count.prompt": 14, "llm.token_count.total": 14,
            "server.address": "api.openai.com", "server.port": 443, "session.id": session, "user.id": user})
        input_tokens, output_tokens = random.randint(200, 900), random.randint(20, 300)
        chat_attrs = {
            "openinference.span.kind": "LLM", "llm.system": "openai", "llm.provider": "openai",
            "llm.model_name": "gpt-4o-mini-2024-07-18",
            "llm.invocation_parameters": '{"model":"gpt-4o-mini","temperature":0.2,"max_tokens":256,"stream":true}',
            "llm.input_messages.0.message.role": "system", "llm.input_messages.0.message.content": PROMPT,
            "llm.input_messages.1.message.role": "user", "llm.input_messages.1.message.content": QUESTION,
            "llm.output_messages.0.message.role": "assistant", "llm.output_messages.0.message.content": ANSWER,
            "llm.token_count.prompt": input_tokens, "llm.token_count.completion": output_tokens,
            "llm.token_count.total": input_tokens + output_tokens,
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18", "gen_ai.request.temperature": 0.2,
            "gen_ai.request.max_tokens": 256, "gen_ai.response.id": f"chatcmpl-{random.getrandbits(64):x}",
            "gen_ai.response.finish_reasons": "stop", "gen_ai.usage.input_tokens": input_tokens,
            "gen_ai.usage.output_tokens": output_tokens, "server.address": "api.openai.com", "server.port": 443,
            "gen_ai.conversation.id": session, "session.id": session, "user.id": user,
            "gen_ai.input.messages": _messages("system", PROMPT), "gen_ai.output.messages": _messages("assistant", ANSWER),
        }
        chat = _span(tid, root.span_id, "ChatCompletion", 3, start + 60_000_000, 800, chat_attrs)
        scope.spans.extend([root, retrieval, embed, chat])
    return request.SerializeToString()


SHAPES = {"current": build_request, "heavy": build_heavy_request}


def _stat(path: Path) -> tuple[str, list[str]] | None:
    """(command name, fields after it) of a /proc stat file, or None if the task is gone."""
    try:
        text = path.read_text()
    except OSError:
        return None
    return text[text.index("(") + 1:text.rindex(")")], text.rsplit(")", 1)[1].split()


def _cpu(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time of a process, and of its live children (the ingest workers), from /proc."""
    own = children = 0.0
    for path in Path("/proc").glob("[0-9]*/stat"):
        stat = _stat(path)
        if stat is None:
            continue
        if path.parent.name == str(pid):
            own += _cpu(stat[1])
        elif stat[1][1] == str(pid):
            children += _cpu(stat[1])
    return own, children


def machine_cpu() -> tuple[float, float]:
    """(busy, idle) seconds of all cores since boot, from /proc/stat (steal counts as busy)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK"), idle / os.sysconf("SC_CLK_TCK")


def kernel_cpu_seconds(pid: int) -> float:
    """System (kernel) CPU time of a process: file creation for new parts shows up here."""
    stat = _stat(Path(f"/proc/{pid}/stat"))
    return int(stat[1][12]) / os.sysconf("SC_CLK_TCK") if stat else 0.0


def merge_cpu_seconds(pid: int) -> float:
    """CPU time of the server's ClickHouse merge threads (named MergeMutate), from /proc."""
    total = 0.0
    for path in Path(f"/proc/{pid}/task").glob("*/stat"):
        stat = _stat(path)
        if stat is not None and stat[0].startswith("MergeMutate"):
            total += _cpu(stat[1])
    return total


def reference_us_per_span(body: bytes) -> float:
    """CPU speed of this machine right now: decode + normalise one body in this process.

    Shared machines vary (measured here: the same code at 31 and at 49 us a span an hour
    apart), so each run prints this next to its throughput to make runs comparable.
    """
    from llmlens.server.normalise import build_cost_model
    from llmlens.server.receive.workers import build_batch

    cost = build_cost_model()
    build_batch("traces", body, "protobuf", cost)  # warm up
    started = time.process_time()
    for _ in range(5):
        batch = build_batch("traces", body, "protobuf", cost)
    return (time.process_time() - started) / (5 * batch.accepted) * 1e6


def rss_peak_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def children_peak_kb(pid: int) -> int:
    """Peak RSS of the server's live child processes (the ingest workers), summed."""
    total = 0
    for path in Path("/proc").glob("[0-9]*/stat"):
        stat = _stat(path)
        if stat is not None and stat[1][1] == str(pid):
            total += rss_peak_kb(int(path.parent.name))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="current",
                        help="current: ~750 B a span; heavy: OpenInference + GenAI attributes, ~1.66 KB a span")
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--spans-per-request", type=int, default=512)
    parser.add_argument("--bodies", type=int, default=64, help="distinct pre-built bodies (each sent once)")
    parser.add_argument("--ingest-wal", action="store_true",
                        help="run the server with --ingest-wal (exports acknowledged from a write-ahead log)")
    parser.add_argument("--build-for", type=int, default=60_000, metavar="SPANS_PER_S",
                        help="build enough distinct bodies for this rate (building takes a while on a slow machine)")
    args = parser.parse_args()

    traces = args.spans_per_request // 4
    print(f"building bodies: {traces * 4} spans a request ...", flush=True)
    now = time.time_ns()
    budget = int(args.build_for / args.spans_per_request * args.seconds) + args.bodies  # enough to never repeat
    bodies = [SHAPES[args.shape](traces, now) for _ in range(min(budget, 2000))]
    size = sum(map(len, bodies)) / len(bodies)
    print(f"{len(bodies)} bodies, {size / 1024:.0f} KiB each ({size / (traces * 4):,.0f} B a span, shape {args.shape})",
          flush=True)

    reference = reference_us_per_span(bodies[0])
    tmp = Path(tempfile.mkdtemp(prefix="llmlens-bench-"))
    server = ServerProcess(tmp / "data", extra_args=["--ingest-wal"] if args.ingest_wal else []).start()
    accepted = [0] * args.senders
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    next_body = iter(range(len(bodies)))
    stop = time.monotonic() + args.seconds

    def sender(n: int) -> None:
        with httpx.Client(timeout=60) as client:
            while time.monotonic() < stop:
                with lock:
                    index = next(next_body, None)
                if index is None:  # built too few bodies for this rate: the figures cover the time sent
                    return
                r = client.post(server.url + "/v1/traces", content=bodies[index],
                                headers={"content-type": "application/x-protobuf"})
                with lock:
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    accepted[n] += traces * 4
                elif r.status_code in (429, 503):
                    time.sleep(float(r.headers.get("retry-after", "1")))

    cpu_before = cpu_seconds(server.proc.pid)
    merges_before = merge_cpu_seconds(server.proc.pid)
    kernel_before = kernel_cpu_seconds(server.proc.pid)
    machine_before = machine_cpu()
    senders_before = time.process_time()
    started = time.monotonic()
    threads = [threading.Thread(target=sender, args=(i,)) for i in range(args.senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed_send = time.monotonic() - started
    senders_cpu = time.process_time() - senders_before
    total_acked = sum(accepted)
    status = server.wait_for_spans(total_acked, timeout=120)
    elapsed_e2e = time.monotonic() - started
    peak_kb = rss_peak_kb(server.proc.pid)
    workers_peak_kb = children_peak_kb(server.proc.pid)
    own_after, children_after = cpu_seconds(server.proc.pid)
    merges = merge_cpu_seconds(server.proc.pid) - merges_before
    kernel = kernel_cpu_seconds(server.proc.pid) - kernel_before
    busy, idle = (after - before for after, before in zip(machine_cpu(), machine_before, strict=True))
    own, children = own_after - cpu_before[0], children_after - cpu_before[1]
    cpu = own + children
    server.terminate()
    disk = sum(f.stat().st_size for f in (tmp / "data").rglob("*") if f.is_file())
    print()
    print(f"senders                    {args.senders} (threads, httpx, protobuf, {args.spans_per_request} spans/request, "
          f"shape {args.shape}{', --ingest-wal' if args.ingest_wal else ''})")
    print(f"HTTP statuses              {dict(sorted(statuses.items()))}")
    print(f"accepted spans/s           {total_acked / elapsed_send:,.0f}  ({total_acked:,} acknowledged in {elapsed_send:.1f} s)")
    print(f"end-to-end spans/s         {status['spans'] / elapsed_e2e:,.0f}  ({status['spans']:,} counted by /api/v1/status)")
    print(f"spans per insert commit    {status['spans'] / max(1, status['writer']['commits']):,.0f}  "
          f"({status['writer']['commits']} commits)")
    if "dedup_seconds" in status["writer"]:
        print(f"repeat lookups per commit  {1000 * status['writer']['dedup_seconds'] / max(1, status['writer']['commits']):,.1f} ms  "
              "(the writer finding rows already stored, store/dedup.py)")
    print(f"server CPU per span        {cpu / max(1, status['spans']) * 1e6:,.1f} us  (server {own / max(1, status['spans']) * 1e6:,.0f} + ingest "
          f"workers {children / max(1, status['spans']) * 1e6:,.0f}; of the server's, merges "
          f"{merges / max(1, status['spans']) * 1e6:,.0f}; 2 cores / this = {2 / max(1e-9, cpu / max(1, status['spans'])):,.0f} spans/s ceiling)")
    print(f"  of which in the kernel     {kernel / max(1, status['spans']) * 1e6:,.0f} us  (server process, system time)")
    print(f"senders' CPU per span      {senders_cpu / max(1, total_acked) * 1e6:,.1f} us  (this process: httpx)")
    print(f"machine busy               {100 * busy / max(1e-9, busy + idle):.0f}%  (all cores, from /proc/stat, send + drain)")
    print(f"server peak RSS            {peak_kb / 1024:,.0f} MiB  (with its ingest workers "
          f"{(peak_kb + workers_peak_kb) / 1024:,.0f} MiB: the sum of each process's peak)")
    print(f"bytes on disk per span     {disk / max(1, status['spans']):,.0f}  (data dir, before background merges)")
    print(f"machine                    {os.cpu_count()} cores, python {sys.version.split()[0]}; reference "
          f"decode+normalise {reference:.1f} us/span in one process (lower = faster machine right now); "
          f"load average {os.getloadavg()[0]:.1f}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
