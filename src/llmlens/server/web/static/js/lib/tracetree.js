// Pure trace arithmetic: span tree order and depth, and own ("self") time per step on the timeline.

const GENERATION = new Set(['chat', 'text_completion', 'generate_content', 'responses', 'completion']);

/** Spans in depth-first order (children by start), with depth, offsetMs; the array gets totalMs. */
export function layout(spans) {
  const byId = new Map(spans.map((s) => [s.span_id, { ...s, children: [] }]));
  const roots = [];
  for (const span of byId.values()) {
    const parent = span.parent_span_id && byId.get(span.parent_span_id);
    if (parent) parent.children.push(span); else roots.push(span);
  }
  const startNs = (s) => Number(s.start_unix_nano ?? Date.parse(s.start_time) * 1e6);
  const byStart = (a, b) => startNs(a) - startNs(b);
  const t0 = Math.min(...spans.map(startNs));
  const ordered = [];
  const visit = (span, depth) => {
    span.depth = depth;
    span.offsetMs = (startNs(span) - t0) / 1e6;
    ordered.push(span);
    span.children.sort(byStart).forEach((child) => visit(child, depth + 1));
  };
  roots.sort(byStart).forEach((root) => visit(root, 0));
  ordered.totalMs = Math.max(...ordered.map((s) => s.offsetMs + s.duration_ms), 0.001);
  return ordered;
}

/** What step of the work a span is: from its LLM operation, its declared kind, else its name. */
export function stepOf(span) {
  const attrs = span.attributes || {};
  const op = (span.llm && span.llm.operation) || attrs['gen_ai.operation.name'];
  if (op) {
    if (GENERATION.has(op)) return 'generation';
    if (op === 'embeddings') return 'embedding';
    if (op === 'execute_tool') return 'tool';
    return op;
  }
  const declared = attrs['llmlens.span.kind'] || attrs['openinference.span.kind'] || attrs['traceloop.span.kind'];
  if (declared) return String(declared).toLowerCase().replace('retriever', 'retrieval');
  return span.name;
}

/** The step a span's time counts to: a span with no kind of its own inside a model call (the model
 * server's spans, when it is instrumented) is part of that call's wait, not a step of its own. */
function stepWithin(span, parentOf) {
  const own = stepOf(span);
  if (own !== span.name) return own;
  for (let p = parentOf.get(span); p; p = parentOf.get(p)) {
    const step = stepOf(p);
    if (step === 'generation' || step === 'embedding') return step;
  }
  return own;
}

/**
 * Own time of each span on the trace's timeline, summed per step. Each instant of the trace counts
 * once: to the spans running then that have no descendant running then (shared equally when
 * several run in parallel). So a child that outlives its parent (a streamed response: the HTTP
 * handler returns before its generation ends) keeps its time, the parent is not blamed for it,
 * and the own times add up to at most the trace's duration.
 */
export function breakdown(ordered) {
  const parentOf = new Map();
  for (const span of ordered) for (const child of span.children || []) parentOf.set(child, span);
  const events = [];
  for (const span of ordered) {
    if (!(span.duration_ms > 0)) continue;  // an instant takes no time (and would never leave `running`)
    events.push([span.offsetMs, 1, span], [span.offsetMs + span.duration_ms, -1, span]);
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const own = new Map(ordered.map((s) => [s, 0]));
  const running = new Set();
  let last = 0;
  for (const [at, change, span] of events) {
    if (at > last && running.size) {
      const leaves = runningLeaves(running, parentOf);
      for (const leaf of leaves) own.set(leaf, own.get(leaf) + (at - last) / leaves.length);
    }
    last = at;
    if (change > 0) running.add(span); else running.delete(span);
  }
  const steps = new Map();
  for (const span of ordered) {
    const step = stepWithin(span, parentOf);
    const entry = steps.get(step) || { step, spans: 0, self_ms: 0 };
    entry.spans += 1;
    entry.self_ms += own.get(span);
    steps.set(step, entry);
  }
  const total = ordered.totalMs || [...steps.values()].reduce((acc, s) => acc + s.self_ms, 0) || 1;
  return [...steps.values()].map((s) => ({ ...s, share: s.self_ms / total })).sort((a, b) => b.self_ms - a.self_ms);
}

/** The running spans none of whose descendants is running. */
function runningLeaves(running, parentOf) {
  const covered = new Set();
  for (const span of running) {
    for (let p = parentOf.get(span); p && !covered.has(p); p = parentOf.get(p)) covered.add(p);
  }
  return [...running].filter((s) => !covered.has(s));
}

/** The Profiles page showing the samples taken inside `span` (and the spans below it). Profiles are
 * stored at the time they began, up to an export interval before the span: the range starts a minute early. */
export function profileHref(span, traceId) {
  const start = Date.parse(span.start_time);
  const p = new URLSearchParams({
    service: span.service, span_id: span.span_id, trace_id: traceId, range: 'custom',
    start: new Date(start - 60e3).toISOString(), end: new Date(start + span.duration_ms + 60e3).toISOString(),
  });
  return `/profiles?${p}`;
}
