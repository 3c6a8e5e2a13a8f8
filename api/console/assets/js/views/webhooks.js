// Webhooks: the subscriptions (where events go), a form to add one (admins), and each
// subscription's dead letters with a button to send one again.

import {call, errorText, seg, APIError} from '../api.js';
import {h, field, idCopy, replace, table} from '../dom.js';
import {ago, time} from '../words.js';

const KINDS = {update_job: 'Update job transitions', campaign: 'Campaign events', registration: 'Device registered / de-registered'};

/** @param {import('../main.js').Ctx} ctx */
export async function render(ctx) {
  let list;
  try {
    list = await call('/webhooks', {signal: ctx.signal});
  } catch (e) {
    if (e instanceof APIError && e.status === 404) {
      replace(ctx.main, h('h1', {tabindex: '-1'}, 'Webhooks'), h('p', null, 'This lwota delivers no webhooks.'));
      return;
    }
    throw e;
  }
  const admin = ctx.who.can('manageWebhooks');
  const subs = /** @type {any[]} */ (list.webhooks || []);
  const rows = subs.map((s) => [
    idCopy(s.id),
    h('code', null, s.url),
    (s.kinds || []).join(', '),
    s.enabled ? h('span', {class: 'badge ok'}, 'enabled') : h('span', {class: 'badge off'}, 'disabled'),
    s.created_by || '',
    h('time', {datetime: s.created_at, title: time(s.created_at)}, ago(s.created_at)),
    h('span', {class: 'nowrap'},
      h('button', {type: 'button', class: 'dead-letters', onclick: () => showDead(ctx, s, deadBox)}, 'Dead letters'),
      admin ? h('button', {type: 'button', class: 'danger', onclick: () => remove(ctx, s)}, 'Delete') : null),
  ]);
  const deadBox = h('section', {id: 'webhook-dead', 'aria-live': 'polite'});
  replace(ctx.main,
    h('h1', {tabindex: '-1'}, 'Webhooks'),
    h('p', null, 'lwota POSTs signed JSON to these URLs for every stored event of the kinds they name, retries failures with backoff, and keeps what it gave up on as dead letters.'),
    subs.length ? table('Webhook subscriptions', ['ID', 'URL', 'Kinds', 'State', 'Created by', 'Created', ''], rows, {id: 'webhook-list'}) :
      h('p', {class: 'count'}, 'No webhook yet.'),
    admin ? createForm(ctx) : null,
    deadBox);
}

/** @param {import('../main.js').Ctx} ctx */
function createForm(ctx) {
  const url = h('input', {id: 'wh-url', name: 'url', type: 'url', required: true, autocomplete: 'off'});
  const boxes = Object.entries(KINDS).map(([k, w]) => field(w, h('input', {id: 'wh-kind-' + k, name: 'kinds', type: 'checkbox', value: k})));
  const error = h('p', {class: 'alert', role: 'alert', hidden: true});
  const secretOut = h('div', {id: 'wh-secret', hidden: true});
  const form = h('form', {class: 'search', 'aria-label': 'Add a webhook'},
    h('h2', null, 'Add a webhook'),
    field('URL', url, 'http:// or https:// only'), boxes,
    h('div', {class: 'buttons'}, h('button', {type: 'submit', class: 'primary'}, 'Add')),
    error, secretOut);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    const fd = new FormData(/** @type {HTMLFormElement} */ (form));
    try {
      const s = await call('/webhooks', {method: 'POST', body: {url: String(fd.get('url') || '').trim(), kinds: fd.getAll('kinds').map(String)}});
      // The secret is shown here once: lwota never shows it again.
      replace(secretOut, h('p', null, 'Webhook ', h('code', null, s.id), ' added. Its signing secret, shown only now:'),
        h('code', {class: 'hash'}, s.secret));
      secretOut.hidden = false;
      ctx.announce('Webhook added. Copy its secret now.');
    } catch (e) {
      error.textContent = errorText(e);
      error.hidden = false;
    }
  });
  return form;
}

/**
 * @param {import('../main.js').Ctx} ctx
 * @param {any} s
 */
async function remove(ctx, s) {
  const ok = await ctx.confirm({title: 'Delete webhook ' + s.id + '?', body: [h('p', null, 'Its pending deliveries are dropped. ' + s.url + ' hears nothing more.')], ok: 'Delete', danger: true});
  if (!ok) return;
  try {
    await call('/webhooks/' + seg(s.id), {method: 'DELETE'});
    ctx.announce('Webhook deleted.');
    ctx.go('#/webhooks');
  } catch (e) {
    ctx.announce(errorText(e));
  }
}

/**
 * @param {import('../main.js').Ctx} ctx
 * @param {any} s
 * @param {HTMLElement} box
 */
async function showDead(ctx, s, box) {
  const admin = ctx.who.can('manageWebhooks');
  const list = await call('/webhooks/' + seg(s.id) + '/deliveries?state=dead', {signal: ctx.signal});
  const ds = /** @type {any[]} */ (list.deliveries || []);
  const rows = ds.map((d) => [
    h('code', null, d.id),
    d.type,
    d.endpoint || '—',
    String(d.attempts),
    d.last_error || '',
    h('time', {datetime: d.ended_at, title: time(d.ended_at)}, ago(d.ended_at)),
    admin ? h('button', {type: 'button', class: 'retry', onclick: async (/** @type {Event} */ ev) => {
      const b = /** @type {HTMLButtonElement} */ (ev.currentTarget);
      try {
        await call('/webhooks/' + seg(s.id) + '/deliveries/' + seg(d.id) + '/retry', {method: 'POST', body: {}});
        b.textContent = 'Queued';
        b.disabled = true;
        ctx.announce('Delivery queued again.');
      } catch (e) {
        ctx.announce(errorText(e));
      }
    }}, 'Retry') : '',
  ]);
  replace(box, h('h2', null, 'Dead letters of ' + s.id),
    ds.length ? table('Dead letters', ['Delivery', 'Event', 'Device', 'Attempts', 'Last error', 'Given up', ''], rows, {id: 'webhook-dead-list'}) :
      h('p', {class: 'count'}, 'No dead letter: everything was delivered or is still being tried.'));
}
