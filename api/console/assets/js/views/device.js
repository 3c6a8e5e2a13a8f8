// One device: the answer to "did it get the firmware, and if not, why?" first, then its
// registration, its objects and every update job with each step the device went through.

import {call, errorText, query, seg, APIError} from '../api.js';
import {h, facts, field, pressGuard, redraw, replace, table} from '../dom.js';
import {stream} from '../sse.js';
import {labels} from './devices.js';
import {bootstrapHistory} from './bootstrap.js';
import {ago, binding, bytes, deviceState, jobActive, jobState, OBJECTS, percent, seconds, time, updateResult} from '../words.js';

/** @param {import('../main.js').Ctx} ctx */
export async function render(ctx) {
  const ep = ctx.params[0];
  const view = {
    summary: h('section', {class: 'answer', 'aria-labelledby': 'h-firmware'}),
    registration: h('section', {'aria-labelledby': 'h-registration'}),
    objects: h('section', {'aria-labelledby': 'h-objects'}),
    jobs: h('div', {class: 'jobs', id: 'jobs'}),
    actions: h('div', {class: 'job-actions'}),
  };
  /** @type {Set<string>} ids of jobs whose steps are shown */
  const open = new Set();
  let firstLoad = true;
  let busy = false;
  let drawn = '';
  /** @type {any} the device as last loaded (null: never registered) */
  let device = null;
  const pressing = pressGuard(ctx.main);

  /** load fetches the device and its jobs, draws them when they changed, and tells whether a job is active. */
  async function load() {
    if (busy) return true;
    busy = true;
    try {
      const [dev, jobs] = await Promise.all([
        call('/devices/' + seg(ep), {signal: ctx.signal}).catch((e) => {
          if (e instanceof APIError && e.status === 404) return null;
          throw e;
        }),
        call('/devices/' + seg(ep) + '/updates' + query({limit: 50}), {signal: ctx.signal}).then((l) => l.updates || []).catch((e) => {
          if (e instanceof APIError && e.status === 404) return [];
          throw e;
        }),
      ]);
      if (firstLoad && jobs.length) open.add(jobs[0].id); // the newest job's steps are shown at once
      firstLoad = false;
      device = dev;
      const active = jobs.some((/** @type {any} */ j) => jobActive(j.state));
      const sig = JSON.stringify([dev, jobs]);
      if (sig === drawn) return active;
      // A click in progress would be lost to a redraw: wait for it, the next poll draws.
      while (pressing()) await new Promise((r) => setTimeout(r, 200));
      drawn = sig;
      replace(view.summary, summary(dev, jobs, ep));
      replace(view.registration, h('h2', {id: 'h-registration'}, 'Registration'), dev ? registration(dev) : h('p', null, 'This device has never registered.'));
      replace(view.objects, h('h2', {id: 'h-objects'}, 'Objects'), dev ? objects(dev) : h('p', null, '—'));
      redraw(view.jobs, () => replace(view.jobs, jobs.length ? jobs.map((j) => jobCard(ctx, j, open, load)) : h('p', null, 'No update has been started for this device.')));
      return active;
    } finally {
      busy = false;
    }
  }

  const active = await load();
  replace(ctx.main, 
    h('nav', {class: 'crumbs', 'aria-label': 'Breadcrumb'}, h('a', {href: '#/devices'}, 'Devices'), ' / ', h('span', {'aria-current': 'page'}, ep)),
    h('h1', {tabindex: '-1', class: 'endpoint'}, ep),
    view.summary,
    h('section', {'aria-labelledby': 'h-history'},
      h('h2', {id: 'h-history'}, 'Update history'),
      ctx.who.can('updateDevices') ? startForm(ctx, ep, load, () => device) : null,
      view.jobs),
    view.registration,
    view.objects,
    bootstrapHistory(ctx, ep));

  // Live: registrations and notifications of this device refresh the page; an active job is
  // polled too, since its steps are not on the event stream.
  let timer = 0;
  const soon = () => {
    clearTimeout(timer);
    timer = window.setTimeout(() => load().catch(() => {}), 500);
  };
  stream('/events' + query({endpoint: ep}), {signal: ctx.signal, onEvent: soon});
  let polling = active;
  const poll = async () => {
    if (ctx.signal.aborted) return;
    try {
      polling = await load();
    } catch { /* shown on the next successful load */ }
    if (!ctx.signal.aborted) window.setTimeout(poll, polling ? 2000 : 10000);
  };
  window.setTimeout(poll, active ? 2000 : 10000);
  ctx.signal.addEventListener('abort', () => clearTimeout(timer));
}

/**
 * renderJob is #/devices/{ep}/updates/{id}: one job on its own page, its steps shown.
 * @param {import('../main.js').Ctx} ctx
 */
export async function renderJob(ctx) {
  const [ep, id] = ctx.params;
  const holder = h('div', {class: 'jobs'});
  const open = new Set([id]);
  const load = async () => {
    const j = await call('/devices/' + seg(ep) + '/updates/' + seg(id), {signal: ctx.signal});
    replace(holder, jobCard(ctx, j, open, load));
  };
  await load();
  replace(ctx.main, 
    h('nav', {class: 'crumbs', 'aria-label': 'Breadcrumb'}, h('a', {href: '#/devices'}, 'Devices'), ' / ',
      h('a', {href: '#/devices/' + seg(ep)}, ep), ' / ', h('span', {'aria-current': 'page'}, id)),
    h('h1', {tabindex: '-1'}, 'Update ' + id),
    holder);
}

/**
 * summary answers the support question in one paragraph.
 * @param {any} dev @param {any[]} jobs @param {string} ep
 */
function summary(dev, jobs, ep) {
  const out = [h('h2', {id: 'h-firmware'}, 'Firmware')];
  if (dev) {
    out.push(h('p', {class: 'now'}, 'Runs ', h('strong', {id: 'current-version'}, dev.firmware_version || 'an unknown version'),
      dev.online ? ' and is online' : ' and is offline', dev.last_seen ? ' (last heard from ' + ago(dev.last_seen) + ').' : '.'));
  } else {
    out.push(h('p', {class: 'now'}, 'No device named ', h('strong', null, ep), ' has registered.'));
  }
  const j = jobs[0];
  if (!j) {
    out.push(h('p', null, 'No firmware update has been started for it.'));
    return out;
  }
  const verdict = j.state === 'succeeded' ? 'it succeeded' : j.state === 'failed' ? 'it failed' :
    j.state === 'cancelled' ? 'it was cancelled' : 'it is in progress: ' + jobState(j.state);
  out.push(h('p', {class: 'latest state-' + j.state, id: 'latest-update'},
    'The latest update, to ', h('strong', null, j.image_version), ', started ', ago(j.created_at), '; ', verdict,
    j.state === 'delivering' ? ' (' + percent(j.progress) + ')' : '', '.',
    j.campaign_id ? [' It belongs to campaign ', h('a', {href: '#/campaigns/' + seg(j.campaign_id)}, j.campaign_id), '.'] : ''));
  const why = whyText(j);
  if (why) out.push(h('p', {class: 'why', id: 'failure-reason'}, h('span', {class: 'label'}, 'Why: '), why));
  return out;
}

/**
 * whyText is the job's reason and what the device reported, in words.
 * @param {any} j
 */
function whyText(j) {
  const parts = [];
  if (j.reason) parts.push(j.reason);
  if (j.device_result !== undefined && j.device_result > 1) {
    const r = updateResult(j.device_result);
    if (!j.reason || !j.reason.toLowerCase().includes(String(j.device_result_text || r).toLowerCase())) {
      parts.push('the device reported: ' + r);
    }
  }
  if (j.state === 'failed' && j.next_attempt_at) parts.push('another attempt follows ' + ago(j.next_attempt_at));
  return parts.join('; ');
}

/** @param {any} d */
function registration(d) {
  const dtls = !!d.identity;
  return facts([
    ['Status', h('span', {class: 'badge ' + (d.online ? 'ok' : 'off')}, d.online ? 'online' : 'offline')],
    ['Last seen', d.last_seen ? h('time', {datetime: d.last_seen}, time(d.last_seen) + ' (' + ago(d.last_seen) + ')') : ''],
    ['Registered', time(d.registered_at)],
    ['Registration updated', time(d.updated_at)],
    ['Expires', d.expires_at ? time(d.expires_at) : ''],
    ['Lifetime', d.lifetime ? seconds(d.lifetime) : ''],
    ['Binding', binding(d.binding)],
    ['Queue mode', d.queue_mode ? 'yes: requests wait until the device wakes up' : 'no'],
    ['Transport', dtls ? 'CoAP over DTLS 1.2 (UDP)' : 'CoAP over UDP'],
    ['Security mode', dtls ? 'pre-shared key, identity ' + d.identity : 'NoSec (no DTLS)'],
    ['LwM2M version', d.lwm2m_version],
    ['Manufacturer', d.manufacturer || ''],
    ['Model', d.model || ''],
    ['Device type', d.device_type || ''],
    ['Labels', d.labels && Object.keys(d.labels).length ? labels(d.labels) : ''],
    ['Content formats', (d.content_formats || []).join(', ')],
    ['Registration id', d.registration_id],
    ['Deregistered', time(d.deregistered_at)],
  ]);
}

/** @param {any} d */
function objects(d) {
  /** @type {Map<string, {version: string, instances: string[]}>} */
  const byObject = new Map();
  for (const o of d.objects || []) {
    const [, id, inst] = String(o.path).split('/');
    const e = byObject.get(id) || {version: '', instances: []};
    if (o.version) e.version = o.version;
    if (inst !== undefined) e.instances.push(inst);
    byObject.set(id, e);
  }
  if (!byObject.size) return h('p', null, 'The device declared no objects.');
  return table('Objects the device declared', ['Object', 'Name', 'Version', 'Instances'],
    [...byObject].map(([id, e]) => ['/' + id, OBJECTS[id] || '—', e.version || '1.0', e.instances.join(', ') || '—']));
}

/**
 * jobCard is one update job: what, when, how far, what the device said, and its steps.
 * @param {import('../main.js').Ctx} ctx @param {any} j @param {Set<string>} open @param {() => Promise<any>} reload
 */
function jobCard(ctx, j, open, reload) {
  const ep = j.endpoint;
  const steps = h('div', {class: 'steps'});
  const details = /** @type {HTMLDetailsElement} */ (h('details', {open: open.has(j.id)},
    h('summary', {id: 'steps-' + j.id}, 'Steps'), steps));
  let loaded = false;
  const loadSteps = async () => {
    if (loaded) return;
    loaded = true;
    try {
      const full = j.history ? j : await call('/devices/' + seg(ep) + '/updates/' + seg(j.id), {signal: ctx.signal});
      replace(steps, history(full.history || []));
    } catch (e) {
      loaded = false;
      replace(steps, h('p', {class: 'alert'}, errorText(e)));
    }
  };
  details.addEventListener('toggle', () => {
    if (details.open) {
      open.add(j.id);
      loadSteps();
    } else {
      open.delete(j.id);
    }
  });
  if (details.open) loadSteps();

  const size = j.image_size ? ' of ' + bytes(j.image_size) : '';
  const delivered = h('span', null, bytes(j.bytes_delivered) + size,
    j.image_size ? [' ', h('progress', {max: 1, value: j.progress || 0, 'aria-label': 'delivered'}), ' ', percent(j.progress)] : '');
  const reported = [deviceState(j.device_state) && 'state: ' + deviceState(j.device_state) + ' (' + j.device_state + ')',
    j.device_result !== undefined && 'update result: ' + updateResult(j.device_result) + ' (' + j.device_result + ')'].filter(Boolean).join('; ');
  const cancel = ctx.who.can('updateDevices') && jobActive(j.state) ? h('button', {type: 'button', class: 'danger', id: 'cancel-' + j.id, onclick: async () => {
    const fd = await ctx.confirm({title: 'Cancel the update of ' + ep + '?', ok: 'Cancel update', danger: true,
      body: [h('p', null, 'The device stops the download or discards the package it has.'),
        field('Reason (kept in the job\'s history)', h('input', {id: 'cancel-reason', name: 'reason', type: 'text', maxlength: 1024}))]});
    if (!fd) return;
    try {
      await call('/devices/' + seg(ep) + '/updates/' + seg(j.id) + '/cancel', {method: 'POST', body: {reason: String(fd.get('reason') || '')}});
      ctx.announce('Update ' + j.id + ' cancelled.');
      await reload();
    } catch (e) {
      ctx.announce(errorText(e));
      alertNear(card, errorText(e));
    }
  }}, 'Cancel update') : null;

  const card = h('article', {class: 'job state-' + j.state, id: 'job-' + j.id, 'data-state': j.state},
    h('h3', null, h('a', {href: '#/devices/' + seg(ep) + '/updates/' + seg(j.id), id: 'job-link-' + j.id}, 'To ' + j.image_version), ' ',
      h('span', {class: 'badge ' + badgeClass(j.state)}, jobState(j.state))),
    j.reason ? h('p', {class: 'why'}, h('span', {class: 'label'}, j.state === 'failed' ? 'Failure reason: ' : 'Note: '), whyText(j)) : null,
    facts([
      ['Job', j.id],
      ['Campaign', j.campaign_id ? h('a', {href: '#/campaigns/' + seg(j.campaign_id)}, j.campaign_id) : 'none (started for this device alone)'],
      ['Started', time(j.created_at)],
      ['Last change', time(j.updated_at)],
      ['From version', j.from_version],
      ['Method', j.method + (j.delivery ? ', delivered by ' + j.delivery : '')],
      ['Bytes delivered', delivered],
      ['Attempt', j.attempt + ' of ' + j.max_attempts],
      ['Next attempt', time(j.next_attempt_at)],
      ['Device reported', reported],
      ['Image', j.image_id],
    ]),
    details,
    cancel ? h('div', {class: 'buttons'}, cancel) : null);
  return card;
}

/** @param {string} state */
export function badgeClass(state) {
  return state === 'succeeded' ? 'ok' : state === 'failed' ? 'bad' : state === 'cancelled' ? 'off' : 'busy';
}

/** @param {any[]} hist */
function history(hist) {
  if (!hist.length) return h('p', null, 'No steps recorded.');
  return table('Steps of the update', ['Time', 'Step', 'Device state', 'Update result', 'Attempt', 'Note'],
    hist.map((t) => [
      h('time', {datetime: t.at}, time(t.at)),
      (t.from ? jobState(t.from) + ' → ' : '') + jobState(t.to),
      t.device_state !== undefined ? deviceState(t.device_state) + ' (' + t.device_state + ')' : '—',
      t.device_result !== undefined ? updateResult(t.device_result) + ' (' + t.device_result + ')' : '—',
      String(t.attempt),
      t.reason || '',
    ]), {class: 'list history'});
}

/** @param {HTMLElement} near @param {string} msg */
function alertNear(near, msg) {
  near.querySelector('.action-error')?.remove();
  near.append(h('p', {class: 'alert action-error', role: 'alert'}, msg));
}

/**
 * fits tells whether an image is built for the device, by the rule the server applies (and
 * campaigns): every field its target names must be the device's. An image for any model fits all.
 * @param {any} target @param {any} dev
 */
export function fits(target, dev) {
  if (!target) return true;
  for (const k of ['manufacturer', 'model', 'device_type']) {
    if (target[k] && target[k] !== dev?.[k]) return false;
  }
  return Object.entries(target.labels || {}).every(([k, v]) => dev?.labels?.[k] === v);
}

/**
 * startForm lets a release engineer start an update of this one device, offering only the images
 * built for it: the server refuses the others (model_mismatch).
 * @param {import('../main.js').Ctx} ctx @param {string} ep @param {() => Promise<any>} reload @param {() => any} dev
 */
function startForm(ctx, ep, reload, dev) {
  const image = /** @type {HTMLSelectElement} */ (h('select', {id: 'start-image', name: 'image_id', required: true}, h('option', {value: ''}, 'Loading images…')));
  const method = h('select', {id: 'start-method', name: 'method'}, ['auto', 'pull', 'push'].map((m) => h('option', {value: m}, m)));
  const error = h('p', {class: 'alert', role: 'alert', hidden: true});
  // The chosen image's release notes, so that whoever starts the update reads what it changes.
  const notes = h('pre', {class: 'notes', id: 'start-notes', hidden: true});
  /** @type {Map<string, any>} */
  const byID = new Map();
  image.addEventListener('change', () => {
    const text = byID.get(image.value)?.release_notes || '';
    notes.textContent = text;
    notes.hidden = !text;
  });
  const form = h('form', {class: 'start-update', 'aria-label': 'Start an update'},
    field('Image', image), notes, field('Method', method),
    h('div', {class: 'buttons'}, h('button', {type: 'submit', class: 'primary', id: 'start-update'}, 'Start update…')), error);
  call('/images' + query({limit: 200}), {signal: ctx.signal}).then((l) => {
    const all = l.images || [];
    const imgs = all.filter((/** @type {any} */ i) => fits(i.target, dev()));
    for (const i of imgs) byID.set(i.id, i);
    const none = !all.length ? 'No image uploaded yet' : 'No image is built for this device (model ' + (dev()?.model || 'not known yet') + ')';
    replace(image, h('option', {value: ''}, imgs.length ? 'Choose an image' : none),
      imgs.map((i) => h('option', {value: i.id}, i.version + ' · ' + (i.target?.model || 'any model') + ' · ' + i.name + ' (' + i.id + ')')));
  }).catch(() => replace(image, h('option', {value: ''}, 'Images cannot be listed')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    if (!image.value) {
      error.textContent = 'Choose an image.';
      error.hidden = false;
      image.focus();
      return;
    }
    const label = image.selectedOptions[0]?.textContent || image.value;
    const fd = await ctx.confirm({title: 'Update ' + ep + '?', ok: 'Start update', body: [h('p', null, 'Install ' + label + ' on ' + ep + '.')]});
    if (!fd) return;
    try {
      const j = await call('/devices/' + seg(ep) + '/updates', {method: 'POST', body: {image_id: image.value, method: /** @type {HTMLSelectElement} */ (method).value}});
      ctx.announce('Update ' + j.id + ' started.');
      await reload();
    } catch (e) {
      error.textContent = errorText(e);
      error.hidden = false;
    }
  });
  return form;
}
