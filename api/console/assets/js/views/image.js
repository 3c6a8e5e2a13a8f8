// One firmware image: what it is (id to copy, version, model, size, SHA-256, the name of the key
// that signed it), its release notes and metadata, the devices running its version and the
// campaigns using it. Release engineers edit the notes and metadata; admins delete the image,
// which lwota refuses (409 image_in_use) while an update or a campaign uses it.

import {call, errorText, query, seg} from '../api.js';
import {h, facts, field, idCopy, replace, table} from '../dom.js';
import {campaignState, bytes, time, ago} from '../words.js';

/** @param {import('../main.js').Ctx} ctx */
export async function render(ctx) {
  const id = ctx.params[0];
  const img = await call('/images/' + seg(id), {signal: ctx.signal});
  const editError = h('p', {class: 'alert', role: 'alert', id: 'edit-error', hidden: true});
  const deleteError = h('p', {class: 'alert', role: 'alert', id: 'delete-error', hidden: true});

  const key = img.unsigned ? h('span', {class: 'badge warn'}, 'unsigned') :
    h('span', {id: 'signing-key', title: 'key id ' + (img.key_id || '')}, img.key_name || img.key_id || '—',
      img.signature_algorithm ? ' (' + img.signature_algorithm + ')' : '');
  const target = img.target || {};
  const devices = img.usage?.devices;
  const devicesLink = '#/devices' + query({firmware: img.version, model: target.model || ''});
  const campaigns = /** @type {any[]} */ (img.usage?.campaigns || []);

  const actions = [];
  if (ctx.who.can('editImages')) {
    actions.push(h('button', {type: 'button', id: 'edit-image', onclick: () => edit()}, 'Edit notes and metadata'));
  }
  if (ctx.who.can('deleteImages')) {
    actions.push(h('button', {type: 'button', class: 'danger', id: 'delete-image', onclick: () => remove()}, 'Delete image…'));
  }
  const notes = h('section', {'aria-labelledby': 'notes-h'}, h('h2', {id: 'notes-h'}, 'Release notes'),
    img.release_notes ? h('div', {class: 'release-notes', id: 'release-notes'}, img.release_notes) :
      h('p', {class: 'meta', id: 'release-notes'}, 'None.'));
  const meta = Object.entries(img.metadata || {}).sort();
  const metadata = h('section', {'aria-labelledby': 'meta-h'}, h('h2', {id: 'meta-h'}, 'Metadata'),
    meta.length ? table('Image metadata', ['Key', 'Value'], meta.map(([k, v]) => [h('code', null, k), v]), {id: 'image-metadata'}) :
      h('p', {class: 'meta', id: 'image-metadata'}, 'None.'));

  replace(ctx.main,
    h('p', {class: 'crumbs'}, h('a', {href: '#/images'}, 'Images')),
    h('h1', {tabindex: '-1'}, 'Image ' + img.version),
    actions.length ? h('div', {class: 'buttons', role: 'group', 'aria-label': 'Image actions'}, actions) : null,
    editError, deleteError,
    facts([
      ['ID', idCopy(img.id)],
      ['Version', h('strong', {id: 'image-version'}, img.version)],
      ['Name', img.name],
      ['Model', target.model || 'any'],
      ['Manufacturer', target.manufacturer || ''],
      ['Device type', target.device_type || ''],
      ['Size', h('span', {title: img.size + ' bytes'}, bytes(img.size))],
      ['SHA-256', h('code', {class: 'hash'}, img.sha256)],
      ['Signing key', key],
      ['Uploaded', h('span', null, h('time', {datetime: img.created_at, title: time(img.created_at)}, ago(img.created_at)),
        img.uploader ? ' by ' + img.uploader : '')],
    ]),
    notes,
    metadata,
    h('section', {'aria-labelledby': 'usage-h'}, h('h2', {id: 'usage-h'}, 'In use'),
      h('p', {id: 'image-devices'}, devices === undefined ? 'lwota cannot count the devices on this image.' :
        h('a', {href: devicesLink}, devices + (devices === 1 ? ' device runs ' : ' devices run ') + img.version +
          (target.model ? ' on ' + target.model : ''))),
      campaigns.length ? table('Campaigns using this image', ['Campaign', 'State'], campaigns.map((c) => [
        h('a', {href: '#/campaigns/' + seg(c.id)}, c.name || c.id), campaignState(c.state)]), {id: 'image-campaigns'}) :
        h('p', {class: 'meta', id: 'image-campaigns'}, 'No campaign uses this image.')));

  async function edit() {
    const metaText = meta.map(([k, v]) => k + '=' + v).join('\n');
    const fd = await ctx.confirm({title: 'Edit image ' + img.version, ok: 'Save', body: [
      field('Release notes', h('textarea', {id: 'edit-notes', name: 'notes', rows: 8, maxlength: 65536}, img.release_notes || '')),
      field('Metadata', h('textarea', {id: 'edit-metadata', name: 'metadata', rows: 4, spellcheck: 'false'}, metaText),
        'key=value, one a line'),
    ]});
    if (!fd) return;
    /** @type {Record<string, string>} */
    const m = {};
    for (const line of String(fd.get('metadata') || '').split('\n')) {
      if (!line.trim()) continue;
      const i = line.indexOf('=');
      if (i <= 0) {
        showError(editError, 'Metadata lines are key=value: ' + JSON.stringify(line));
        return;
      }
      m[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    try {
      await call('/images/' + seg(img.id), {method: 'PATCH', body: {release_notes: String(fd.get('notes') || ''), metadata: m}, signal: ctx.signal});
    } catch (e) {
      showError(editError, 'Not saved: ' + errorText(e));
      return;
    }
    ctx.announce('Image ' + img.version + ' saved.');
    ctx.go(location.hash);
  }

  async function remove() {
    const ok = await ctx.confirm({title: 'Delete image ' + img.version + '?', ok: 'Delete image', danger: true,
      body: [h('p', null, 'The image and, with its last image, its bytes are removed. lwota refuses while an update or a campaign uses it.')]});
    if (!ok) return;
    try {
      await call('/images/' + seg(img.id), {method: 'DELETE', signal: ctx.signal});
    } catch (e) {
      showError(deleteError, 'Not deleted: ' + errorText(e));
      return;
    }
    ctx.announce('Image ' + img.version + ' deleted.');
    ctx.go('#/images');
  }
}

/** @param {HTMLElement} el @param {string} msg */
function showError(el, msg) {
  el.textContent = msg;
  el.hidden = false;
  el.focus?.();
}
