// The audit log (admins): who changed what, when, from where and how it ended, newest first,
// filtered by actor and action, a page at a time.

import {call, query} from '../api.js';
import {h, field, replace, table} from '../dom.js';
import {ago, time} from '../words.js';

const PAGE = 50;
const FILTERS = ['actor', 'action'];

/** @param {import('../main.js').Ctx} ctx */
export async function render(ctx) {
  const q = ctx.query;
  const input = (/** @type {string} */ name, /** @type {string} */ placeholder) => h('input', {
    id: 'f-' + name, name, type: 'search', value: q.get(name) || '', placeholder, autocomplete: 'off', spellcheck: 'false'});
  const form = h('form', {class: 'search', role: 'search', 'aria-label': 'Filter the audit log'},
    field('Actor', input('actor', 'token:3f9a…'), 'exactly: token:<id>, device:<endpoint> or system'),
    field('Action', input('action', 'PATCH /api/v1/images/:id'), 'exactly, as listed'),
    h('div', {class: 'buttons'},
      h('button', {type: 'submit', class: 'primary'}, 'Filter'),
      h('button', {type: 'button', onclick: () => ctx.go('#/audit')}, 'Clear')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const fd = new FormData(/** @type {HTMLFormElement} */ (form));
    /** @type {Record<string, string>} */
    const p = {};
    for (const k of FILTERS) p[k] = String(fd.get(k) || '').trim();
    ctx.go('#/audit' + query(p));
  });
  /** @type {Record<string, string>} */
  const params = {limit: String(PAGE), cursor: q.get('cursor') || ''};
  for (const k of FILTERS) params[k] = q.get(k) || '';
  const page = await call('/audit' + query(params), {signal: ctx.signal});
  const entries = /** @type {any[]} */ (page.entries || []);
  const filterLink = (/** @type {string} */ k, /** @type {string} */ v) => h('a', {href: '#/audit' + query({...Object.fromEntries(q), [k]: v, cursor: ''})}, v);
  const rows = entries.map((e) => [
    h('time', {datetime: e.at, title: time(e.at)}, ago(e.at)),
    h('span', null, filterLink('actor', e.actor), e.actor_name ? ' ' + e.actor_name : '', e.role ? ' (' + e.role + ')' : ''),
    filterLink('action', e.action),
    e.target ? h('code', null, e.target) : '—',
    h('span', {class: 'badge ' + (e.outcome === 'success' ? 'ok' : e.outcome === 'denied' ? 'warn' : 'bad')},
      e.outcome + (e.status ? ' ' + e.status : '')),
    details(e.detail),
  ]);
  const more = page.next_cursor ? h('a', {class: 'button', href: '#/audit' + query({...Object.fromEntries(q), cursor: page.next_cursor})}, 'Older') : null;
  const first = q.get('cursor') ? h('a', {class: 'button', href: '#/audit' + query({...Object.fromEntries(q), cursor: ''})}, 'Newest') : null;
  replace(ctx.main,
    h('h1', {tabindex: '-1'}, 'Audit log'),
    form,
    entries.length ? table('Audit entries, newest first', ['When', 'Actor', 'Action', 'Target', 'Outcome', 'Detail'], rows, {id: 'audit-list'}) :
      h('p', {class: 'count', id: 'audit-list'}, FILTERS.some((k) => q.get(k)) ? 'No entry matches.' : 'The audit log is empty.'),
    (more || first) ? h('nav', {class: 'pager', 'aria-label': 'Pages'}, first, more) : null);
}

/** @param {Record<string, string>|undefined} d */
function details(d) {
  const entries = Object.entries(d || {}).filter(([k]) => k !== 'request_id').sort();
  if (!entries.length) return '—';
  return h('ul', {class: 'labels'}, entries.map(([k, v]) => h('li', null, k + '=' + v)));
}
