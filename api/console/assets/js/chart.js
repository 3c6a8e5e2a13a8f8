// Hand-drawn SVG charts: no chart library, nothing to load. Colours come from the stylesheet
// (classes per state), so the charts follow the light and dark themes.

import {h, s} from './dom.js';

const H = 220;
const M = {l: 44, r: 12, t: 10, b: 26};

/**
 * @typedef {{t: number, counts: Record<string, number>}} Sample
 */

/**
 * stateChart draws devices per state over time as stacked areas: each sample's counts, stacked
 * in the order of keys, against the time they were seen.
 * @param {Sample[]} samples oldest first
 * @param {[string, string][]} keys [count key, words], bottom to top
 * @param {number} total the campaign's device count: the y axis's top
 * @param {number} width in CSS pixels: the drawing is made for it, so that its text keeps its size
 * @returns {HTMLElement}
 */
export function stateChart(samples, keys, total, width) {
  const W = Math.max(Math.round(width) || 640, 240);
  const last = samples[samples.length - 1];
  const summary = last ? keys.map(([k, w]) => w + ' ' + (last.counts[k] || 0)).join(', ') : 'no data yet';
  const pts = samples.length === 1 ? [samples[0], {t: samples[0].t + 1000, counts: samples[0].counts}] : samples;
  const t0 = pts.length ? pts[0].t : 0;
  const t1 = pts.length ? Math.max(pts[pts.length - 1].t, t0 + 1000) : 1;
  const top = Math.max(total, 1, ...pts.map((p) => keys.reduce((n, [k]) => n + (p.counts[k] || 0), 0)));
  const x = (/** @type {number} */ t) => M.l + ((t - t0) / (t1 - t0)) * (W - M.l - M.r);
  const y = (/** @type {number} */ v) => H - M.b - (v / top) * (H - M.t - M.b);

  const svg = s('svg', {viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-labelledby': 'chart-title'},
    s('title', {id: 'chart-title'}, 'Devices per state over time; now: ' + summary));
  // Grid and the y axis: 0, half and all of the devices.
  for (const v of [0, top / 2, top]) {
    svg.append(s('line', {class: 'grid', x1: M.l, x2: W - M.r, y1: y(v), y2: y(v)}),
      s('text', {class: 'axis', x: M.l - 6, y: y(v) + 4, 'text-anchor': 'end'}, String(Math.round(v))));
  }
  if (pts.length) {
    const lower = pts.map(() => 0);
    for (const [k] of keys) {
      const upper = pts.map((p, i) => lower[i] + (p.counts[k] || 0));
      if (upper.some((u, i) => u !== lower[i])) {
        const fwd = pts.map((p, i) => `${x(p.t).toFixed(1)},${y(upper[i]).toFixed(1)}`);
        const back = pts.map((p, i) => `${x(p.t).toFixed(1)},${y(lower[i]).toFixed(1)}`).reverse();
        svg.append(s('polygon', {class: 'area area-' + k, points: fwd.concat(back).join(' ')}));
      }
      upper.forEach((u, i) => { lower[i] = u; });
    }
    const fmt = (/** @type {number} */ t) => new Date(t).toLocaleTimeString();
    svg.append(s('text', {class: 'axis', x: M.l, y: H - 6, 'text-anchor': 'start'}, fmt(t0)),
      s('text', {class: 'axis', x: W - M.r, y: H - 6, 'text-anchor': 'end'}, fmt(t1)));
  }
  return h('figure', {class: 'chart-box'}, svg,
    h('figcaption', null, h('ul', {class: 'legend'}, keys.map(([k, w]) => h('li', null, h('span', {class: 'swatch area-' + k, 'aria-hidden': 'true'}), w)))));
}

/**
 * share is a bar of value out of whole in the colour of key.
 * @param {number} value @param {number} whole @param {string} key @param {string} label
 */
export function share(value, whole, key, label) {
  const svg = s('svg', {viewBox: '0 0 100 8', preserveAspectRatio: 'none', class: 'bar', role: 'img', 'aria-label': label});
  svg.append(s('rect', {class: 'bar-bg', x: 0, y: 0, width: 100, height: 8}),
    s('rect', {class: 'area area-' + key, x: 0, y: 0, width: whole ? (value / whole) * 100 : 0, height: 8}));
  return svg;
}

/**
 * stackBar is one horizontal bar split by counts, e.g. a wave's devices by state.
 * @param {Record<string, number>} counts
 * @param {[string, string][]} keys
 * @param {number} size the bar's whole
 * @param {string} label what the bar is, for screen readers
 */
export function stackBar(counts, keys, size, label) {
  const whole = Math.max(size, 1, keys.reduce((n, [k]) => n + (counts[k] || 0), 0));
  const words = keys.filter(([k]) => counts[k]).map(([k, w]) => w + ' ' + counts[k]).join(', ') || 'none started';
  const svg = s('svg', {viewBox: '0 0 100 8', preserveAspectRatio: 'none', class: 'bar', role: 'img', 'aria-label': label + ': ' + words});
  svg.append(s('rect', {class: 'bar-bg', x: 0, y: 0, width: 100, height: 8}));
  let at = 0;
  for (const [k, w] of keys) {
    const n = counts[k] || 0;
    if (!n) continue;
    const width = (n / whole) * 100;
    svg.append(s('rect', {class: 'area area-' + k, x: at, y: 0, width, height: 8}, s('title', null, w + ': ' + n)));
    at += width;
  }
  return svg;
}
