// Pure trace arithmetic: span tree order and depth, and own ("self") time per step.

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

/** Own time of each span (its duration minus the union of its children's), summed per step. */
export function breakdown(ordered) {
  const steps = new Map();
  for (const span of ordered) {
    const start = span.offsetMs;
    const end = start + span.duration_ms;
    const intervals = span.children.map((c) => [Math.max(c.offsetMs, start), Math.min(c.offsetMs + c.duration_ms, end)])
      .filter(([a, b]) => b > a).sort((a, b) => a[0] - b[0]);
    let covered = 0;
    let cursor = start;
    for (const [a, b] of intervals) {
      if (b <= cursor) continue;
      covered += b - Math.max(a, cursor);
      cursor = b;
    }
    const step = stepOf(span);
    const entry = steps.get(step) || { step, spans: 0, self_ms: 0 };
    entry.spans += 1;
    entry.self_ms += Math.max(span.duration_ms - covered, 0);
    steps.set(step, entry);
  }
  const total = [...steps.values()].reduce((acc, s) => acc + s.self_ms, 0) || 1;
  return [...steps.values()].map((s) => ({ ...s, share: s.self_ms / total })).sort((a, b) => b.self_ms - a.self_ms);
}
