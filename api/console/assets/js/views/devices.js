// Device lookup: search by endpoint prefix, firmware version (or a comparison: < 1.4.2), model,
// label and presence, sorted by a column; the search lives in the URL
// (#/devices?prefix=ab&online=false&sort=-firmware), so a result can be shared.

import {call, query, seg} from '../api.js';
import {h, field, replace, table} from '../dom.js';
import {ago, jobState, time} from '../words.js';

const PAGE = 50;
const FILTERS = ['prefix', 'firmware', 'model', 'label', 'online'];
/** Columns the server sorts by (GET /devices?sort=), by heading. */
const SORTS = {Endpoint: 'endpoint', Firmware: 'firmware', Model: 'model', 'Last seen': 'last_seen'};

/** @param {import('../main.js').Ctx} ctx */
export async function render(ctx) {
  const q = ctx.query;
  const input = (/** @type {string} */ name, /** @type {string} */ placeholder) => h('input', {
    id: 'f-' + name, name, type: 'search', value: q.get(name) || '', placeholder, autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off'});
  const online = h('select', {id: 'f-online', name: 'online'},
    [['', 'any'], ['true', 'online'], ['false', 'offline']].map(([v, l]) => h('option', {value: v, selected: (q.get('online') || '') === v}, l)));
  const form = h('form', {class: 'search', role: 'search', 'aria-label': 'Find devices'},
    field('Endpoint starts with', input('prefix', 'urn:imei:35…')),
    field('Firmware version', input('firmware', '< 1.4.2'), '1.4.2, or compared: < 1.4.2, >= 1.10, != 1.4.2'),
    field('Model', input('model', '')),
    field('Labels', input('label', 'region=eu'), 'key=value, several separated by commas'),
    field('Presence', online),
    h('div', {class: 'buttons'},
      h('button', {type: 'submit', class: 'primary'}, 'Search'),
      h('button', {type: 'button', onclick: () => ctx.go('#/devices')}, 'Clear')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const fd = new FormData(/** @type {HTMLFormElement} */ (form));
    /** @type {Record<string, string>} */
    const p = {};
    for (const k of FILTERS) p[k] = String(fd.get(k) || '').trim();
    ctx.go('#/devices' + query({...p, sort: q.get('sort') || ''}));
  });

  /** @type {Record<string, string>} */
  const params = {limit: String(PAGE), cursor: q.get('cursor') || '', sort: q.get('sort') || ''};
  for (const k of FILTERS) if (k !== 'label') params[k] = q.get(k) || '';
  // Several labels, "region=eu, cell=7", must all match: one label= each.
  const labelParams = (q.get('label') || '').split(/[\s,]+/).filter(Boolean).map((l) => '&label=' + encodeURIComponent(l)).join('');
  const list = await call('/devices' + query(params) + labelParams, {signal: ctx.signal});
  const devs = /** @type {any[]} */ (list.devices || []);
  const rows = devs.map((d) => [
    h('a', {href: '#/devices/' + seg(d.endpoint), class: 'endpoint'}, d.endpoint),
    h('span', {class: 'badge ' + (d.online ? 'ok' : 'off')}, d.online ? 'online' : 'offline'),
    d.firmware_version || '—',
    d.model || '—',
    h('time', {datetime: d.last_seen, title: time(d.last_seen)}, ago(d.last_seen)),
    lastUpdate(d),
    labels(d.labels),
  ]);
  const filtered = FILTERS.some((k) => q.get(k));
  const total = typeof list.total === 'number' ? list.total : null;
  const count = devs.length === 0 ? (filtered ? 'No device matches this search.' : 'No device has registered yet.') :
    total !== null ? total + (total === 1 ? ' device' : ' devices') + (list.next_cursor || q.get('cursor') ? ' (' + devs.length + ' shown)' : '') :
    devs.length + (list.next_cursor ? '+ devices (first ' + devs.length + ' shown)' : devs.length === 1 ? ' device' : ' devices');
  const more = list.next_cursor ? h('a', {class: 'button', href: '#/devices' + query({...Object.fromEntries(q), cursor: list.next_cursor})}, 'Next page') : null;
  const first = q.get('cursor') ? h('a', {class: 'button', href: '#/devices' + query({...Object.fromEntries(q), cursor: ''})}, 'First page') : null;
  replace(ctx.main, 
    h('h1', {tabindex: '-1'}, 'Devices'),
    form,
    h('p', {class: 'count', id: 'result-count', role: 'status'}, count),
    devs.length ? sortable(table('Devices found', ['Endpoint', 'Status', 'Firmware', 'Model', 'Last seen', 'Last update', 'Labels'], rows, {id: 'device-results'}), q) : null,
    (more || first) ? h('nav', {class: 'pager', 'aria-label': 'Pages'}, first, more) : null);
}

/** @param {any} d a device of the list, with its last update */
function lastUpdate(d) {
  const u = d.last_update;
  if (!u) return '—';
  const cls = u.state === 'succeeded' ? 'ok' : u.state === 'failed' ? 'bad' : u.state === 'cancelled' ? 'off' : 'busy';
  return h('a', {href: '#/devices/' + seg(d.endpoint) + '/updates/' + seg(u.id), title: (u.reason || '') + ' ' + time(u.updated_at)},
    h('span', {class: 'badge ' + cls}, jobState(u.state)), ' ' + u.image_version);
}

/**
 * sortable turns the headings of SORTS into links that sort the list by that column (again:
 * the other way), and marks the current one with aria-sort.
 * @param {HTMLElement} wrap what table() returns
 * @param {URLSearchParams} q
 */
function sortable(wrap, q) {
  const cur = q.get('sort') || 'endpoint';
  for (const th of wrap.querySelectorAll('thead th')) {
    const key = /** @type {Record<string, string>} */ (SORTS)[th.textContent || ''];
    if (!key) continue;
    const on = cur === key || cur === '-' + key;
    const desc = cur === '-' + key;
    if (on) th.setAttribute('aria-sort', desc ? 'descending' : 'ascending');
    const next = on && !desc ? '-' + key : key;
    const label = th.textContent || '';
    replace(th, h('a', {class: 'sort', id: 'sort-' + key, href: '#/devices' + query({...Object.fromEntries(q), sort: next === 'endpoint' ? '' : next, cursor: ''}),
      'aria-label': 'Sort by ' + label.toLowerCase() + (next.startsWith('-') ? ', descending' : '')}, label + (on ? (desc ? ' ▼' : ' ▲') : '')));
  }
  return wrap;
}

/** @param {Record<string, string>|undefined} l */
export function labels(l) {
  const entries = Object.entries(l || {});
  if (!entries.length) return '—';
  return h('ul', {class: 'labels'}, entries.sort().map(([k, v]) => h('li', null, k + '=' + v)));
}
