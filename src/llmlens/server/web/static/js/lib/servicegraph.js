// A service graph as SVG: a layered left-to-right layout (callers left of what they call), nodes
// sized by traffic and shaped by kind, edges coloured by error rate. Every node and edge is a link
// (an SVG <a>) with a text alternative, so the graph works with a keyboard and a screen reader.
// Sizes and colours are attributes and classes, never style attributes (the page's CSP forbids them).
import * as f from './format.js';

const SVG = 'http://www.w3.org/2000/svg';
const COLUMN = 230;      // px between layers
const ROW = 96;          // px between nodes of a layer
const PAD = { x: 90, y: 56 };
const R_MIN = 12;
const R_MAX = 34;
// Error-rate levels of an edge: the colour classes (see app.css) and the legend.
export const LEVELS = [['ok', 'under 1% errors', 0], ['warn', '1–5% errors', 0.01], ['bad', '5% or more errors', 0.05]];
export const NODE_TYPES = [
  ['service', 'Instrumented service'], ['llm', 'LLM provider'], ['vector_store', 'Vector store'],
  ['database', 'Database'], ['external', 'Other peer (sent no spans)'], ['user', 'Callers outside the traces'],
];

export function errorLevel(rate) {
  let level = LEVELS[0][0];
  for (const [name, , from] of LEVELS) if (rate >= from) level = name;
  return level;
}

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null && value !== false) el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Layers by longest path from the callers (cycles broken where a depth-first walk meets them),
 * then a few barycentre sweeps to untangle each layer's order. Returns {id: {layer, order}}. */
export function layout(nodes, edges) {
  const ids = nodes.map((n) => n.id);
  const out = new Map(ids.map((id) => [id, []]));
  for (const e of edges) if (out.has(e.client) && out.has(e.server) && e.client !== e.server) out.get(e.client).push(e.server);
  const state = new Map();
  const order = [];
  const forward = new Set();  // "a>b" of edges kept (not closing a cycle)
  const visit = (id) => {
    state.set(id, 'open');
    for (const next of out.get(id)) {
      if (state.get(next) === 'open') continue;  // closes a cycle: drawn, but not used for layers
      forward.add(`${id}>${next}`);
      if (!state.has(next)) visit(next);
    }
    state.set(id, 'done');
    order.push(id);
  };
  const incoming = new Set(edges.map((e) => e.server));
  for (const id of [...ids.filter((id) => !incoming.has(id)), ...ids]) if (!state.has(id)) visit(id);
  order.reverse();  // topological order of the kept edges
  const layer = new Map(ids.map((id) => [id, 0]));
  for (const id of order) {
    for (const next of out.get(id)) if (forward.has(`${id}>${next}`)) layer.set(next, Math.max(layer.get(next), layer.get(id) + 1));
  }
  const layers = [];
  for (const id of ids) (layers[layer.get(id)] ||= []).push(id);
  const position = new Map();
  const place = () => layers.forEach((members) => members.forEach((id, i) => position.set(id, i)));
  place();
  const neighbours = (id, up) => edges.filter((e) => (up ? e.server === id : e.client === id)).map((e) => (up ? e.client : e.server));
  for (let sweep = 0; sweep < 4; sweep++) {
    const up = sweep % 2 === 0;
    for (const members of up ? layers.slice(1) : layers.slice(0, -1).reverse()) {
      const centre = (id) => {
        const near = neighbours(id, up).filter((n) => position.has(n));
        return near.length ? near.reduce((sum, n) => sum + position.get(n), 0) / near.length : position.get(id);
      };
      members.sort((a, b) => centre(a) - centre(b) || a.localeCompare(b));
      place();
    }
  }
  return { layers, at: Object.fromEntries(ids.map((id) => [id, { layer: layer.get(id), order: position.get(id) }])) };
}

/** The first point along an edge where its label covers no node and no other label. */
function placeLabel(along, text, placed) {
  const halfWidth = 3.3 * text.length;
  const box = ({ x, y }) => ({ x0: x - halfWidth, x1: x + halfWidth, y0: y - 16, y1: y });
  const overlaps = (b) => placed.some((o) => b.x0 < o.x1 && o.x0 < b.x1 && b.y0 < o.y1 && o.y0 < b.y1);
  for (const t of [0.5, 0.4, 0.6, 0.3, 0.7, 0.22, 0.78]) {
    const at = along(t);
    if (!overlaps(box(at))) {
      placed.push(box(at));
      return at;
    }
  }
  return along(0.5);
}

function shape(type, r) {
  if (type === 'llm') {  // a hexagon
    const points = [...Array(6).keys()].map((i) => {
      const a = Math.PI / 6 + (i * Math.PI) / 3;
      return `${(r * Math.cos(a)).toFixed(1)},${(r * Math.sin(a)).toFixed(1)}`;
    });
    return s('polygon', { points: points.join(' '), class: 'shape' });
  }
  if (type === 'database' || type === 'vector_store') {  // a cylinder
    const w = r * 0.9;
    const h = r * 0.7;
    const e = r * 0.28;
    return s('g', { class: 'shape-group' },
      s('path', { class: 'shape', d: `M${-w},${-h} L${-w},${h} A${w},${e} 0 0 0 ${w},${h} L${w},${-h}` }),
      s('ellipse', { class: 'shape', cx: 0, cy: -h, rx: w, ry: e }));
  }
  if (type === 'user') return s('g', { class: 'shape-group' },
    s('circle', { class: 'shape', r: r * 0.45, cy: -r * 0.35 }),
    s('path', { class: 'shape', d: `M${-r * 0.8},${r * 0.8} Q0,${-r * 0.3} ${r * 0.8},${r * 0.8} Z` }));
  return s('circle', { class: 'shape', r });
}

function nodeTitle(n) {
  const lines = [`${n.id} (${NODE_TYPES.find(([t]) => t === n.type)?.[1] || n.type})`];
  if (n.requests) lines.push(`${f.int(n.requests)} requests in, ${f.pct(n.error_rate)} errors`);
  if (n.calls) lines.push(`${f.int(n.calls)} calls out`);
  return lines.join('\n');
}

function edgeTitle(e) {
  return `${e.client} → ${e.server}\n${f.int(e.requests)} requests (${f.rate(e.rate)}), ${f.int(e.errors)} errors ` +
    `(${f.pct(e.error_rate)})\np50 ${f.ms(e.p50_ms)} · p95 ${f.ms(e.p95_ms)}`;
}

/**
 * Draw `graph` ({nodes, edges} of GET /api/v1/service-graph) into `container`; `href(kind, item)`
 * gives each node's and edge's link ('node' | 'edge').
 */
export function drawGraph(container, graph, href) {
  const { nodes, edges } = graph;
  const { layers, at } = layout(nodes, edges);
  const tallest = Math.max(1, ...layers.map((l) => l.length));
  const width = Math.max(container.clientWidth || 0, PAD.x * 2 + (layers.length - 1) * COLUMN);
  const height = PAD.y * 2 + (tallest - 1) * ROW + 30;
  const xy = {};
  for (const n of nodes) {
    const { layer, order } = at[n.id];
    const size = layers[layer].length;
    const columns = Math.max(1, layers.length - 1);
    xy[n.id] = {
      x: layers.length === 1 ? width / 2 : PAD.x + (layer * (width - 2 * PAD.x)) / columns,
      y: PAD.y + ((tallest - size) * ROW) / 2 + order * ROW,
    };
  }
  const traffic = (n) => Math.max(n.requests, n.calls);
  const busiest = Math.max(1, ...nodes.map(traffic));
  const radius = Object.fromEntries(nodes.map((n) => [n.id, R_MIN + (R_MAX - R_MIN) * Math.sqrt(traffic(n) / busiest)]));
  const heaviest = Math.max(1, ...edges.map((e) => e.requests));

  const markers = s('defs', {}, LEVELS.map(([level]) => s('marker', {
    id: `arrow-${level}`, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 11, markerHeight: 11,
    markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse',
    class: `arrow ${level}` }, s('path', { d: 'M0,0 L10,5 L0,10 z' }))));
  // Boxes labels must not cover: each node with its name and figures below it, then placed labels.
  const placed = nodes.map((n) => {
    const r = radius[n.id];
    const half = Math.max(r, 5 + 3.6 * Math.max(n.id.length, 16));
    return { x0: xy[n.id].x - half, x1: xy[n.id].x + half, y0: xy[n.id].y - r, y1: xy[n.id].y + r + 33 };
  });
  const edgeLayer = s('g', { class: 'edges' });
  const labelLayer = s('g', { class: 'edge-labels' });
  for (const e of edges) {
    const a = xy[e.client];
    const b = xy[e.server];
    if (!a || !b) continue;
    const level = errorLevel(e.error_rate);
    const ra = radius[e.client];
    const rb = radius[e.server] + 4;
    let d;
    let along = () => ({ x: a.x, y: a.y - 70 });  // where on the edge a label may go, by t in [0, 1]
    if (e.client === e.server) {  // a service calling itself: a loop above it
      d = `M${a.x - ra * 0.6},${a.y - ra * 0.8} C${a.x - 50},${a.y - 90} ${a.x + 50},${a.y - 90} ${a.x + ra * 0.6},${a.y - ra * 0.8}`;
    } else {
      const dx = b.x - a.x;
      const dy = b.y - a.y;
      const len = Math.hypot(dx, dy) || 1;
      // Backwards or within a layer: bend away. Over several layers: bow outwards, around the nodes between.
      const span = at[e.server].layer - at[e.client].layer;
      const outwards = (a.y + b.y) / 2 > height / 2 ? 1 : -1;
      const bend = span <= 0 ? 60 : outwards * Math.min(90, 45 * (span - 1));
      const start = { x: a.x + (dx / len) * ra, y: a.y + (dy / len) * ra };
      const end = { x: b.x - (dx / len) * rb, y: b.y - (dy / len) * rb };
      const c = { x: (start.x + end.x) / 2 - (dy / len) * bend, y: (start.y + end.y) / 2 + (dx / len) * bend };
      d = `M${start.x.toFixed(1)},${start.y.toFixed(1)} Q${c.x.toFixed(1)},${c.y.toFixed(1)} ${end.x.toFixed(1)},${end.y.toFixed(1)}`;
      along = (t) => ({ x: (1 - t) ** 2 * start.x + 2 * (1 - t) * t * c.x + t * t * end.x,
        y: (1 - t) ** 2 * start.y + 2 * (1 - t) * t * c.y + t * t * end.y });
    }
    const strokeWidth = (1.5 + 4.5 * Math.sqrt(e.requests / heaviest)).toFixed(1);
    const label = `${f.int(e.requests)} · ${f.pct(e.error_rate)} err`;
    edgeLayer.append(s('a', {
      href: href('edge', e), class: `edge ${level}`, 'data-testid': 'graph-edge', 'data-client': e.client,
      'data-server': e.server, 'data-requests': e.requests, 'data-error-rate': e.error_rate, 'data-level': level,
      'aria-label': edgeTitle(e).replaceAll('\n', '; ') },
    s('title', {}, edgeTitle(e)),
    s('path', { class: 'hit', d }),
    s('path', { class: 'line', d, 'stroke-width': strokeWidth, 'marker-end': `url(#arrow-${level})` })));
    const mid = placeLabel(along, label, placed);
    labelLayer.append(s('text', { class: `edge-label ${level}`, x: mid.x.toFixed(1), y: (mid.y - 4).toFixed(1), 'text-anchor': 'middle' }, label));
  }
  const nodeLayer = s('g', { class: 'nodes' });
  for (const n of nodes) {
    const { x, y } = xy[n.id];
    const r = radius[n.id];
    const level = n.requests ? errorLevel(n.error_rate) : 'ok';
    const sub = n.requests ? `${f.int(n.requests)} in · ${f.pct(n.error_rate)} err` : `${f.int(n.calls)} out`;
    nodeLayer.append(s('a', {
      href: href('node', n), class: `node ${n.kind} ${n.type} ${level}`, transform: `translate(${x.toFixed(1)},${y.toFixed(1)})`,
      'data-testid': 'graph-node', 'data-id': n.id, 'data-kind': n.kind, 'data-type': n.type,
      'data-requests': n.requests, 'data-calls': n.calls, 'data-radius': r.toFixed(1),
      'aria-label': nodeTitle(n).replaceAll('\n', '; ') },
    s('title', {}, nodeTitle(n)),
    shape(n.type, r),
    s('text', { class: 'node-name', y: r + 15, 'text-anchor': 'middle' }, n.id),
    s('text', { class: 'node-sub', y: r + 29, 'text-anchor': 'middle' }, sub)));
  }
  const svg = s('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'group',
    'aria-label': `Service graph: ${nodes.length} nodes, ${edges.length} edges` },
  markers, edgeLayer, nodeLayer, labelLayer);
  container.replaceChildren(svg);
  return svg;
}

/** The legend: node kinds and edge colours, drawn with the same shapes and classes. */
export function legend(container) {
  const item = (graphic, text) => {
    const li = document.createElement('li');
    li.append(s('svg', { width: 26, height: 22, viewBox: '-13 -11 26 22', 'aria-hidden': 'true' }, graphic), text);
    return li;
  };
  container.replaceChildren(
    ...NODE_TYPES.map(([type, text]) => item(s('g', { class: `node ${type === 'service' ? 'service' : 'virtual'} ${type}` }, shape(type, 8)), text)),
    ...LEVELS.map(([level, text]) => item(s('g', { class: `edge ${level}` }, s('path', { class: 'line', d: 'M-11,0 L11,0', 'stroke-width': 3 })), text)));
}
