// A flame graph on one <canvas>: the tree is flattened once into typed arrays (no DOM node per frame),
// each draw walks them and paints only what is at least half a pixel wide, so 100,000-node trees stay
// fast. Root at the top, callees below (as Pyroscope draws it). Click a frame to zoom to it (its
// ancestors stay, full width), click the top row to zoom out; search() highlights matching frames.
// Diff trees (nodes with baseline and comparison) are drawn by the share of each side's total and
// coloured red where the comparison spends more, green where it spends less.

const ROW = 18;
const FONT = '12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace';
const MIN_LABEL_PX = 28;

/** Flatten `tree` ({name, value, self, children} or a diff tree) depth first. */
export function flatten(tree, diff = false) {
  const nodes = [];
  const baseTotal = diff ? tree.baseline || 0 : 0;
  const compTotal = diff ? tree.comparison || 0 : 0;
  const weightOf = (n) => (diff
    ? (baseTotal ? (n.baseline || 0) / baseTotal : 0) + (compTotal ? (n.comparison || 0) / compTotal : 0)
    : n.value);
  const stack = [[tree, -1, 0, 0]];
  while (stack.length) {
    const [node, parent, depth, x] = stack.pop();
    const index = nodes.length;
    const weight = weightOf(node);
    nodes.push({ node, parent, depth, x, weight });
    let offset = x;
    const kids = node.children || [];
    const placed = [];
    for (const child of kids) { placed.push([child, index, depth + 1, offset]); offset += weightOf(child); }
    for (let i = placed.length - 1; i >= 0; i--) stack.push(placed[i]);  // keep left-to-right order
  }
  const count = nodes.length;
  const flat = {
    count, diff, baseTotal, compTotal, names: new Array(count), nodes: new Array(count),
    x: new Float64Array(count), w: new Float64Array(count), depth: new Int32Array(count), parent: new Int32Array(count),
    maxDepth: 0,
  };
  nodes.forEach((n, i) => {
    flat.names[i] = n.node.name; flat.nodes[i] = n.node;
    flat.x[i] = n.x; flat.w[i] = n.weight; flat.depth[i] = n.depth; flat.parent[i] = n.parent;
    if (n.depth > flat.maxDepth) flat.maxDepth = n.depth;
  });
  return flat;
}

/** Functions by own samples: [{name, self, total}] (and baseline_self, comparison_self for a diff
 * tree), total counting a recursive function once a stack; sorted by `by`. */
export function topFunctions(tree, limit = 50, by = 'self') {
  const byName = new Map();
  const onPath = new Map();
  const stack = [[tree, false]];
  while (stack.length) {
    const [node, leaving] = stack.pop();
    if (node === tree) { if (!leaving) for (const c of node.children || []) stack.push([c, false]); continue; }
    if (leaving) { onPath.set(node.name, onPath.get(node.name) - 1); continue; }
    const entry = byName.get(node.name) || { name: node.name, self: 0, total: 0, baseline_self: 0, comparison_self: 0 };
    entry.self += node.self || 0;
    entry.baseline_self += node.baseline_self || 0;
    entry.comparison_self += node.comparison_self || 0;
    if (!onPath.get(node.name)) entry.total += node.value || 0;
    byName.set(node.name, entry);
    onPath.set(node.name, (onPath.get(node.name) || 0) + 1);
    stack.push([node, true]);
    for (const c of node.children || []) stack.push([c, false]);
  }
  const key = typeof by === 'function' ? by : (e) => e[by];
  return [...byName.values()].sort((a, b) => key(b) - key(a) || b.total - a.total).slice(0, limit);
}

function hash(text) {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

const warmCache = new Map();

/** Warm colours by function name (the same function, the same colour, in every view). */
function warm(name) {
  let colour = warmCache.get(name);
  if (colour === undefined) {
    const h = hash(name);
    colour = `hsl(${10 + (h % 40)}, ${70 + ((h >> 8) % 20)}%, ${58 + ((h >> 16) % 12)}%)`;
    if (warmCache.size < 200000) warmCache.set(name, colour);
  }
  return colour;
}

/** Red when the comparison's share is larger, green when smaller, grey when about the same. */
export function diffColour(node, baseTotal, compTotal) {
  const before = baseTotal ? (node.baseline || 0) / baseTotal : 0;
  const after = compTotal ? (node.comparison || 0) / compTotal : 0;
  const change = Math.max(before, after) ? (after - before) / Math.max(before, after) : 0;  // -1 .. 1
  const strength = Math.min(1, Math.abs(change));
  if (strength < 0.05) return 'hsl(0, 0%, 82%)';
  const light = 88 - 40 * strength;
  return change > 0 ? `hsl(0, 80%, ${light}%)` : `hsl(130, 55%, ${light}%)`;
}

export class FlameGraph {
  constructor(container, { onFocus = () => {}, format = (n) => String(n) } = {}) {
    this.container = container;
    this.canvas = document.createElement('canvas');
    this.canvas.setAttribute('data-testid', 'flamegraph');
    this.canvas.setAttribute('role', 'img');
    this.canvas.flamegraph = this;  // for tests and the console
    this.tooltip = document.createElement('div');
    this.tooltip.className = 'fg-tooltip';
    this.tooltip.hidden = true;
    container.replaceChildren(this.canvas, this.tooltip);
    this.onFocus = onFocus;
    this.format = format;
    this.flat = null;
    this.focus = 0;
    this.term = '';
    this.canvas.addEventListener('click', (e) => this._click(e));
    this.canvas.addEventListener('mousemove', (e) => this._hover(e));
    this.canvas.addEventListener('mouseleave', () => { this.tooltip.hidden = true; });
    new ResizeObserver(() => this.draw()).observe(container);
  }

  setData(tree, { diff = false } = {}) {
    this.flat = flatten(tree, diff);
    this.focus = 0;
    this.canvas.dataset.nodes = String(this.flat.count);
    this.draw();
  }

  /** Highlight frames whose name contains `term` (case-insensitive); '' clears. Returns the matches. */
  search(term) {
    this.term = (term || '').toLowerCase();
    this.draw();
    return Number(this.canvas.dataset.matches || 0);
  }

  zoom(index) {
    if (!this.flat) return;
    this.focus = index >= 0 && index < this.flat.count ? index : 0;
    this.draw();
    this.onFocus(this.flat.nodes[this.focus], this.focus);
  }

  reset() { this.zoom(0); }

  /** Index of the first node named `name` (for tests and links). */
  find(name) { return this.flat ? this.flat.names.indexOf(name) : -1; }

  /** Where node `index` is drawn, in CSS pixels relative to the canvas, or null when not drawn. */
  rectOf(index) {
    const geometry = this._geometry();
    if (!geometry || index < 0) return null;
    const { x0, scale } = geometry;
    const { x, w, depth } = this.flat;
    if (!this._visible(index)) return null;
    const left = this._onPath(index) ? 0 : (x[index] - x0) * scale;
    const width = this._onPath(index) ? this.canvas.clientWidth : w[index] * scale;
    return { x: left, y: depth[index] * ROW, width, height: ROW - 1 };
  }

  _geometry() {
    if (!this.flat) return null;
    const width = this.container.clientWidth || 800;
    const f = this.focus;
    return { x0: this.flat.x[f], scale: this.flat.w[f] ? width / this.flat.w[f] : 0, width };
  }

  /** A node on the path from the root to the focus (drawn full width above it). */
  _onPath(index) {
    for (let i = this.focus; i >= 0; i = this.flat.parent[i]) if (i === index) return true;
    return false;
  }

  _visible(index) {
    const { x, w, depth } = this.flat;
    const f = this.focus;
    if (this._onPath(index)) return true;
    return depth[index] > depth[f] && x[index] >= x[f] - 1e-12 && x[index] + w[index] <= x[f] + w[f] + 1e-9;
  }

  draw() {
    if (!this.flat) return;
    const { width, x0, scale } = this._geometry();
    const { count, names, x, w, depth, nodes, diff, baseTotal, compTotal } = this.flat;
    const ratio = window.devicePixelRatio || 1;
    const height = (this.flat.maxDepth + 1) * ROW;
    this.canvas.width = Math.floor(width * ratio);
    this.canvas.height = Math.floor(height * ratio);
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
    const ctx = this.canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = FONT;
    ctx.textBaseline = 'middle';
    const f = this.focus;
    const fEnd = x[f] + w[f];
    const fDepth = depth[f];
    const term = this.term;
    let drawn = 0;
    let matches = 0;
    for (let i = 0; i < count; i++) {
      let left;
      let span;
      if (depth[i] <= fDepth) {
        if (!this._onPath(i)) continue;
        left = 0; span = width;
      } else {
        if (x[i] < x[f] - 1e-12 || x[i] + w[i] > fEnd + 1e-9) continue;
        span = w[i] * scale;
        if (span < 0.5) continue;
        left = (x[i] - x0) * scale;
      }
      const match = term && names[i].toLowerCase().includes(term);
      if (match) matches++;
      if (i === 0) ctx.fillStyle = '#c9ced6';
      else if (term) ctx.fillStyle = match ? '#d633ff' : '#e4e6ea';
      else ctx.fillStyle = diff ? diffColour(nodes[i], baseTotal, compTotal) : warm(names[i]);
      const top = depth[i] * ROW;
      ctx.fillRect(left, top, Math.max(span - 0.5, 0.5), ROW - 1);
      drawn++;
      if (span >= MIN_LABEL_PX) {
        ctx.fillStyle = '#1b1f24';
        ctx.save();
        ctx.beginPath();
        ctx.rect(left, top, span - 2, ROW);
        ctx.clip();
        ctx.fillText(i === 0 ? this._rootLabel() : names[i], left + 3, top + ROW / 2);
        ctx.restore();
      }
    }
    Object.assign(this.canvas.dataset, { drawn: String(drawn), matches: String(matches), focus: names[f] });
    this.canvas.setAttribute('aria-label', `Flame graph of ${count} frames, focused on ${names[f]}`);
  }

  _rootLabel() {
    const root = this.flat.nodes[0];
    return this.flat.diff
      ? `total: baseline ${this.format(root.baseline || 0)}, comparison ${this.format(root.comparison || 0)}`
      : `total ${this.format(root.value || 0)}`;
  }

  _at(event) {
    if (!this.flat) return -1;
    const bounds = this.canvas.getBoundingClientRect();
    const px = event.clientX - bounds.left;
    const row = Math.floor((event.clientY - bounds.top) / ROW);
    const { x0, scale } = this._geometry();
    const { count, x, w, depth } = this.flat;
    if (row <= depth[this.focus]) {
      for (let i = this.focus; i >= 0; i = this.flat.parent[i]) if (depth[i] === row) return i;
      return -1;
    }
    const at = x0 + px / scale;
    for (let i = 0; i < count; i++) {
      if (depth[i] === row && x[i] <= at && at < x[i] + w[i] && this._visible(i)) return i;
    }
    return -1;
  }

  _click(event) {
    const index = this._at(event);
    if (index < 0) return;
    this.zoom(index === this.focus ? Math.max(this.flat.parent[index], 0) : index);
  }

  _hover(event) {
    const index = this._at(event);
    if (index < 0) { this.tooltip.hidden = true; return; }
    const node = this.flat.nodes[index];
    const root = this.flat.nodes[0];
    let text;
    if (this.flat.diff) {
      const pct = (v, t) => (t ? `${((100 * v) / t).toFixed(2)}%` : '–');
      text = `${node.name}\nbaseline ${this.format(node.baseline || 0)} (${pct(node.baseline || 0, root.baseline)})` +
        ` → comparison ${this.format(node.comparison || 0)} (${pct(node.comparison || 0, root.comparison)})`;
    } else {
      const pct = root.value ? ((100 * node.value) / root.value).toFixed(2) : '0';
      text = `${node.name}\ntotal ${this.format(node.value)} (${pct}%), self ${this.format(node.self || 0)}`;
    }
    this.tooltip.textContent = text;
    this.tooltip.hidden = false;
    const bounds = this.container.getBoundingClientRect();
    this.tooltip.style.left = `${Math.min(event.clientX - bounds.left + 12, bounds.width - 260)}px`;
    this.tooltip.style.top = `${event.clientY - bounds.top + 14}px`;
  }
}
