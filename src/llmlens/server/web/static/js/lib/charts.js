// Charts on the vendored uPlot (global `uPlot`, loaded by base.html before the modules).
import { clear, h } from './dom.js';

export const PALETTE = ['#1d5fbf', '#c2410c', '#1a7f37', '#7c3aed', '#b42318', '#0e7490', '#a16207', '#be185d', '#4b5563'];
const charts = new WeakMap();
const HEIGHT = 210;

function widthOf(el) { return Math.max(300, el.clientWidth - 4); }

function mount(el, title, summary, build) {
  charts.get(el)?.destroy();
  clear(el);
  el.setAttribute('role', 'img');
  el.setAttribute('aria-label', `${title}. ${summary}`);
  const chart = build();
  charts.set(el, chart);
  return chart;
}

function noData(el, title) {
  charts.get(el)?.destroy();
  charts.delete(el);
  el.removeAttribute('role');
  clear(el, h('p', { class: 'muted' }, `${title}: no data in this time range.`));
}

/**
 * A time-series chart. buckets: ISO strings; series: [{label, values, fmt, scale ('y'|'y2'), color}].
 * Null values leave gaps, unless spanGaps (points reported less often than the step, e.g. OTLP metrics).
 */
export function timeChart(el, { title, buckets, series, fmt = String, fmt2 = String, bars = false, spanGaps = false }) {
  if (!buckets.length || series.every((s) => s.values.every((v) => v === null || v === undefined))) {
    noData(el, title);
    return null;
  }
  const xs = buckets.map((b) => Date.parse(b) / 1000);
  const hasY2 = series.some((s) => s.scale === 'y2');
  const last = series.map((s) => `${s.label} latest ${(s.fmt || fmt)(s.values.at(-1))}`).join(', ');
  return mount(el, title, last, () => new window.uPlot({
    width: widthOf(el), height: HEIGHT,
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
      y2: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    axes: [
      { stroke: '#4f5966' },
      { stroke: '#4f5966', values: (u, vals) => vals.map((v) => fmt(v)), size: 64 },
      ...(hasY2 ? [{ scale: 'y2', side: 1, stroke: '#4f5966', values: (u, vals) => vals.map((v) => fmt2(v)), size: 64, grid: { show: false } }] : []),
    ],
    series: [{ label: 'Time' }, ...series.map((s, i) => ({
      label: s.label, scale: s.scale || 'y', stroke: s.color || PALETTE[i % PALETTE.length], width: 1.6,
      fill: bars ? (s.color || PALETTE[i % PALETTE.length]) + '55' : undefined,
      paths: bars ? window.uPlot.paths.bars({ size: [0.7, 40] }) : undefined,
      value: (u, v) => (s.fmt || fmt)(v), spanGaps,
    }))],
  }, [xs, ...series.map((s) => s.values.map((v) => (v === undefined ? null : v)))], el));
}

const AXIS_FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif';
const measure = document.createElement('canvas').getContext('2d');

/** Category labels thinned to every k-th, the fewest left out so that none overlaps its neighbours
 * at this plot width (CSS pixels); the tooltip still names every bar. */
export function fittingLabels(labels, plotWidth, font = AXIS_FONT, gap = 10) {
  measure.font = font;
  const widest = Math.max(...labels.map((l) => measure.measureText(l).width)) + gap;
  const every = Math.max(1, Math.ceil(widest / (plotWidth / Math.max(labels.length, 1))));
  return labels.map((l, i) => (i % every === 0 ? l : ''));
}

/** A bar chart over categories (e.g. a duration histogram). */
export function barChart(el, { title, labels, values, fmt = String, color = PALETTE[0] }) {
  if (!values.some((v) => v > 0)) {
    noData(el, title);
    return null;
  }
  const xs = labels.map((_, i) => i);
  const summary = labels.map((l, i) => `${l}: ${fmt(values[i])}`).join(', ');
  return mount(el, title, summary, () => new window.uPlot({
    width: widthOf(el), height: HEIGHT,
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: false, range: [-0.5, labels.length - 0.5] }, y: { range: (u, min, max) => [0, max * 1.1 || 1] } },
    axes: [
      { stroke: '#4f5966', font: AXIS_FONT, splits: () => xs, grid: { show: false }, values: (u, vals) => {
        const shown = fittingLabels(labels, u.bbox.width / window.uPlot.pxRatio);
        el.dataset.axisLabels = JSON.stringify(shown);  // what is drawn, for tests and the curious
        return vals.map((v) => shown[v] ?? '');
      } },
      { stroke: '#4f5966', values: (u, vals) => vals.map((v) => fmt(v)), size: 56 },
    ],
    series: [{ label: 'Bucket', value: (u, v) => labels[v] ?? '' },
      { label: 'Requests', stroke: color, fill: color + 'aa', paths: window.uPlot.paths.bars({ size: [0.8, 80] }),
        value: (u, v) => fmt(v) }],
  }, [xs, values], el));
}

let resizeTimer = null;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    for (const el of document.querySelectorAll('.chart')) {
      const chart = charts.get(el);
      if (chart) chart.setSize({ width: widthOf(el), height: HEIGHT });
    }
  }, 150);
});
