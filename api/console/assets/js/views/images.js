// Firmware images: version, id (to copy into the CLI or API), model, size, SHA-256, the key that
// signed it and who uploaded it.

import {call, query, seg} from '../api.js';
import {h, field, idCopy, replace, table} from '../dom.js';
import {ago, bytes, time} from '../words.js';
import {labels} from './devices.js';

/** @param {import('../main.js').Ctx} ctx */
export async function render(ctx) {
  const q = ctx.query;
  const input = (/** @type {string} */ name) => h('input', {id: 'f-' + name, name, type: 'search', value: q.get(name) || '', autocomplete: 'off', spellcheck: 'false'});
  const form = h('form', {class: 'search', role: 'search', 'aria-label': 'Find images'},
    field('Model', input('model')), field('Version', input('version')),
    h('div', {class: 'buttons'}, h('button', {type: 'submit', class: 'primary'}, 'Search'),
      h('button', {type: 'button', onclick: () => ctx.go('#/images')}, 'Clear')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const fd = new FormData(/** @type {HTMLFormElement} */ (form));
    ctx.go('#/images' + query({model: String(fd.get('model') || '').trim(), version: String(fd.get('version') || '').trim()}));
  });
  const list = await call('/images' + query({model: q.get('model') || '', version: q.get('version') || '', cursor: q.get('cursor') || '', limit: 50}), {signal: ctx.signal});
  const imgs = /** @type {any[]} */ (list.images || []);
  const rows = imgs.map((i) => [
    h('a', {href: '#/images/' + seg(i.id), class: 'image-link'}, h('strong', null, i.version)),
    idCopy(i.id),
    i.name,
    i.target?.model || 'any',
    h('span', {title: i.size + ' bytes', class: 'nowrap'}, bytes(i.size)),
    h('code', {class: 'hash'}, i.sha256),
    i.unsigned ? h('span', {class: 'badge warn'}, 'unsigned') : h('span', {title: 'key id ' + (i.key_id || '')},
      (i.key_name || i.key_id || '—') + (i.signature_algorithm ? ' (' + i.signature_algorithm + ')' : '')),
    i.uploader || '—',
    h('time', {datetime: i.created_at, title: time(i.created_at)}, ago(i.created_at)),
    labels(i.labels),
  ]);
  const more = list.next_cursor ? h('a', {class: 'button', href: '#/images' + query({...Object.fromEntries(q), cursor: list.next_cursor})}, 'Next page') : null;
  replace(ctx.main, 
    h('h1', {tabindex: '-1'}, 'Images'),
    form,
    imgs.length ? table('Firmware images', ['Version', 'ID', 'Name', 'Model', 'Size', 'SHA-256', 'Signing key', 'Uploader', 'Uploaded', 'Labels'], rows, {id: 'image-list'}) :
      h('p', {class: 'count'}, 'No image matches.'),
    more ? h('nav', {class: 'pager', 'aria-label': 'Pages'}, more) : null);
}
