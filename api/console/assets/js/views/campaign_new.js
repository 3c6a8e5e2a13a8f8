// A new campaign: the image (with its release notes, when it has any), the devices (a selector
// with a live count of what it matches now), waves and their gates, failure thresholds, pacing
// and maintenance windows. "Dry run" shows what the server would select; only then may the
// campaign be created and started. Every refusal of the server is shown next to its field.

import {call, errorText, query, seg, APIError} from '../api.js';
import {h, field, replace} from '../dom.js';
import {bytes, time} from '../words.js';

/** How long the selector rests before its live count is asked for. */
const COUNT_DELAY = 350;

/** @param {import('../main.js').Ctx} ctx */
export async function render(ctx) {
  const list = await call('/images' + query({limit: 500}), {signal: ctx.signal});
  const images = /** @type {any[]} */ (list.images || []);
  const models = [...new Set(images.map((i) => i.target?.model || ''))].sort();

  // ---- controls ----
  const name = input('c-name', 'text', {required: true, maxlength: 200, autocomplete: 'off'});
  const model = /** @type {HTMLSelectElement} */ (h('select', {id: 'c-model', name: 'model'},
    h('option', {value: ''}, 'any model'), models.filter(Boolean).map((m) => h('option', {value: m}, m))));
  const image = /** @type {HTMLSelectElement} */ (h('select', {id: 'c-image', name: 'image_id', required: true}));
  const notes = h('div', {class: 'release-notes', id: 'image-notes', 'aria-live': 'polite'});
  const selQuery = input('c-query', 'text', {autocomplete: 'off', spellcheck: 'false', placeholder: 'model = "sim-1" and labels.region = "eu"'});
  const selEndpoints = /** @type {HTMLTextAreaElement} */ (h('textarea', {id: 'c-endpoints', name: 'endpoints', rows: 3, spellcheck: 'false'}));
  const count = h('div', {class: 'match-count', id: 'match-count', 'aria-live': 'polite'}, 'Give a selector to see the devices it matches.');
  const method = /** @type {HTMLSelectElement} */ (h('select', {id: 'c-method', name: 'method'},
    ['auto', 'pull', 'push'].map((m) => h('option', {value: m}, m))));
  const waveList = h('ol', {class: 'wave-rows', id: 'wave-rows'});
  const thPercent = input('c-th-percent', 'number', {min: 0, max: 100, step: 'any', value: '10'});
  const thMin = input('c-th-min', 'number', {min: 0, step: 1, value: '5'});
  const thAction = /** @type {HTMLSelectElement} */ (h('select', {id: 'c-th-action', name: 'th_action'},
    h('option', {value: 'pause'}, 'pause'), h('option', {value: 'abort'}, 'abort')));
  const ovPercent = input('c-ov-percent', 'number', {min: 0, max: 100, step: 'any'});
  const ovAction = /** @type {HTMLSelectElement} */ (h('select', {id: 'c-ov-action', name: 'ov_action'},
    h('option', {value: 'pause'}, 'pause'), h('option', {value: 'abort'}, 'abort')));
  const maxConcurrent = input('c-max-concurrent', 'number', {min: 0, step: 1, value: '50'});
  const perMinute = input('c-per-minute', 'number', {min: 0, step: 1});
  const windowList = h('ol', {class: 'window-rows', id: 'window-rows'});
  const errors = h('div', {class: 'alert', id: 'form-errors', role: 'alert', hidden: true});
  const dry = h('div', {id: 'dry-run', 'aria-live': 'polite'});
  const dryButton = h('button', {type: 'button', id: 'dry-run-button'}, 'Dry run');
  const createButton = /** @type {HTMLButtonElement} */ (h('button', {type: 'submit', class: 'primary', id: 'create-button', disabled: true}, 'Create and start'));

  // ---- the image picker: by model, newest first, with its release notes ----
  function fillImages() {
    const want = model.value;
    const keep = image.value;
    const shown = images.filter((i) => !want || (i.target?.model || '') === want)
      .sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
    replace(image, h('option', {value: ''}, shown.length ? 'choose an image' : 'no image for this model'),
      shown.map((i) => h('option', {value: i.id, selected: i.id === keep}, i.version + ' · ' + (i.target?.model || 'any model') + ' · ' + i.name)));
    showNotes();
  }
  function showNotes() {
    const img = images.find((i) => i.id === image.value);
    if (!img) {
      replace(notes);
      return;
    }
    const rn = typeof img.release_notes === 'string' ? img.release_notes.trim() : '';
    replace(notes, h('p', {class: 'meta'}, img.version + ' for ' + (img.target?.model || 'any model') + ' · ' + bytes(img.size) +
      (img.created_at ? ' · uploaded ' + time(img.created_at) : '') + (img.uploader ? ' by ' + img.uploader : '') + (img.unsigned ? ' · unsigned' : '')),
    rn ? [h('h3', null, 'Release notes'), h('pre', {class: 'notes', id: 'release-notes'}, rn)] : h('p', {class: 'hint'}, 'This image has no release notes.'));
  }
  model.addEventListener('change', () => { fillImages(); changed(); });
  image.addEventListener('change', () => { showNotes(); changed(); });
  fillImages();

  // ---- waves ----
  let waveSeq = 0;
  function addWave(/** @type {string} */ percent, /** @type {boolean} */ manual) {
    const i = waveSeq++;
    const row = h('li', {class: 'wave-row', dataset: {row: String(i)}},
      field('Up to % of the devices', input('w-percent-' + i, 'number', {min: 0.01, max: 100, step: 'any', value: percent, required: true})),
      field('Gate: success % to go on', input('w-gate-' + i, 'number', {min: 0, max: 100, step: 'any'}), 'empty: every device finished'),
      field('Soak', input('w-soak-' + i, 'text', {placeholder: '10m', autocomplete: 'off'}), 'wait after the gate holds'),
      h('label', {class: 'check'}, h('input', {type: 'checkbox', id: 'w-manual-' + i, checked: manual}), ' manual approval before the next wave'),
      h('button', {type: 'button', class: 'link', onclick: () => { row.remove(); lastWave(); changed(); }}, 'Remove wave'));
    waveList.append(row);
    lastWave();
  }
  // The gate, soak and approval hold the next wave: the last wave has none to hold.
  function lastWave() {
    const rows = [...waveList.querySelectorAll('li.wave-row')];
    rows.forEach((row, n) => {
      for (const el of row.querySelectorAll('.field:nth-of-type(2), .field:nth-of-type(3), label.check')) {
        /** @type {HTMLElement} */ (el).hidden = n === rows.length - 1;
      }
    });
  }
  addWave('10', true);
  addWave('100', false);

  // ---- maintenance windows ----
  let windowSeq = 0;
  function addWindow() {
    const i = windowSeq++;
    const row = h('li', {class: 'window-row', dataset: {row: String(i)}},
      field('Opens (cron)', input('win-cron-' + i, 'text', {placeholder: '0 2 * * *', autocomplete: 'off', required: true}), 'minute hour day month weekday'),
      field('For', input('win-duration-' + i, 'text', {placeholder: '4h', autocomplete: 'off', required: true})),
      field('Time zone', input('win-tz-' + i, 'text', {placeholder: 'UTC', autocomplete: 'off'})),
      h('button', {type: 'button', class: 'link', onclick: () => { row.remove(); changed(); }}, 'Remove window'));
    windowList.append(row);
  }

  const form = /** @type {HTMLFormElement} */ (h('form', {class: 'campaign-form', id: 'campaign-form', 'aria-label': 'New campaign', novalidate: true},
    h('fieldset', null, h('legend', null, 'What'),
      field('Name', name),
      h('div', {class: 'image-pick'},
        h('div', null, field('Model', model, 'narrows the images'), field('Image', image), field('Method', method, 'auto: pull when the device can')),
        notes)),
    h('fieldset', null, h('legend', null, 'Devices'),
      field('Selector query', selQuery, 'fields: endpoint, manufacturer, model, device_type, firmware, labels.<key>; online'),
      field('or endpoints, one a line', selEndpoints),
      count),
    h('fieldset', null, h('legend', null, 'Waves and gates'),
      h('p', {class: 'hint'}, 'Each wave reaches a share of the devices, counted from the first; the last is 100 %.'),
      waveList,
      h('button', {type: 'button', id: 'add-wave', onclick: () => { addWave('100', false); changed(); }}, 'Add wave')),
    h('fieldset', null, h('legend', null, 'Failure thresholds'),
      h('div', {class: 'row'}, field('Per wave: failed %', thPercent), field('after at least (devices)', thMin), field('then', thAction)),
      h('div', {class: 'row'}, field('Whole campaign: failed %', ovPercent, 'empty: none'), field('then', ovAction))),
    h('fieldset', null, h('legend', null, 'Pacing and maintenance windows'),
      h('div', {class: 'row'}, field('At most updating at once', maxConcurrent, '0: no limit'), field('Starts per minute', perMinute, 'empty: no limit')),
      windowList,
      h('button', {type: 'button', id: 'add-window', onclick: () => { addWindow(); changed(); }}, 'Add maintenance window'),
      h('p', {class: 'hint'}, 'Without a window updates start at any time.')),
    errors,
    h('div', {class: 'buttons'}, dryButton, createButton),
    dry));

  // ---- the body the API takes ----
  const num = (/** @type {string} */ id) => {
    const v = /** @type {HTMLInputElement|null} */ (form.querySelector('#' + id))?.value.trim() ?? '';
    return v === '' ? undefined : Number(v);
  };
  const text = (/** @type {string} */ id) => /** @type {HTMLInputElement|null} */ (form.querySelector('#' + id))?.value.trim() ?? '';
  function endpoints() {
    return selEndpoints.value.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
  }
  function body(/** @type {boolean} */ dryRun) {
    /** @type {any} */
    const b = {name: name.value.trim(), image_id: image.value, method: method.value, selector: {}, waves: [], dry_run: dryRun, start: !dryRun};
    const eps = endpoints();
    if (selQuery.value.trim()) b.selector.query = selQuery.value.trim();
    if (eps.length) b.selector.endpoints = eps;
    for (const row of waveList.querySelectorAll('li.wave-row')) {
      const i = /** @type {HTMLElement} */ (row).dataset.row;
      /** @type {any} */
      const w = {percent: num('w-percent-' + i)};
      const gate = num('w-gate-' + i);
      const manual = /** @type {HTMLInputElement} */ (row.querySelector('#w-manual-' + i)).checked;
      if (gate !== undefined || manual) w.gate = {success_percent: gate || 0, manual};
      if (text('w-soak-' + i)) w.soak = text('w-soak-' + i);
      b.waves.push(w);
    }
    if (b.waves.length) {
      // The gate holds the next wave: the last has none.
      delete b.waves[b.waves.length - 1].gate;
      delete b.waves[b.waves.length - 1].soak;
    }
    const thp = num('c-th-percent');
    if (thp) b.failure_threshold = {percent: thp, min_devices: num('c-th-min') || 0, action: thAction.value};
    const ovp = num('c-ov-percent');
    if (ovp) b.overall_threshold = {percent: ovp, action: ovAction.value};
    const mc = num('c-max-concurrent');
    const pm = num('c-per-minute');
    if (mc || pm) b.pacing = {max_concurrent: mc || 0, max_starts_per_minute: pm || 0};
    const windows = [...windowList.querySelectorAll('li.window-row')].map((row) => {
      const i = /** @type {HTMLElement} */ (row).dataset.row;
      return {cron: text('win-cron-' + i), duration: text('win-duration-' + i), time_zone: text('win-tz-' + i) || undefined};
    });
    if (windows.length) b.schedule = {windows};
    return b;
  }

  // ---- the live count ----
  let countTimer = 0;
  /** @type {AbortController|null} */
  let counting = null;
  function recount() {
    clearTimeout(countTimer);
    countTimer = window.setTimeout(async () => {
      counting?.abort();
      const q = selQuery.value.trim();
      const eps = endpoints();
      setInvalid(selQuery, false);
      setInvalid(selEndpoints, false);
      if (!q && !eps.length) {
        replace(count, 'Give a selector to see the devices it matches.');
        return;
      }
      const ac = new AbortController();
      counting = ac;
      const params = new URLSearchParams();
      if (q) params.set('query', q);
      for (const ep of eps.slice(0, 1000)) params.append('endpoint', ep);
      if (image.value) params.set('image_id', image.value);
      replace(count, h('span', {class: 'loading'}, 'Counting…'));
      try {
        const p = await call('/campaigns/preview?' + params.toString(), {signal: ac.signal});
        replace(count, previewWords(p));
        count.dataset.devices = String(p.devices);
      } catch (e) {
        if (ac.signal.aborted) return;
        delete count.dataset.devices;
        setInvalid(q ? selQuery : selEndpoints, true);
        replace(count, h('p', {class: 'field-error', id: 'selector-error'}, errorText(e)));
      }
    }, COUNT_DELAY);
  }
  ctx.signal.addEventListener('abort', () => { clearTimeout(countTimer); counting?.abort(); }, {once: true});
  selQuery.addEventListener('input', () => { recount(); changed(); });
  selEndpoints.addEventListener('input', () => { recount(); changed(); });
  image.addEventListener('change', recount);

  // Any change after a dry run asks for a new one: what is created is what was previewed.
  function changed() {
    createButton.disabled = true;
    if (dry.childNodes.length) replace(dry, h('p', {class: 'hint'}, 'The form changed: dry-run again before creating.'));
  }
  form.addEventListener('input', changed);

  async function send(/** @type {boolean} */ dryRun) {
    errors.hidden = true;
    for (const el of form.querySelectorAll('[aria-invalid="true"]')) el.removeAttribute('aria-invalid');
    for (const el of form.querySelectorAll('.field-error:not(#selector-error)')) el.remove();
    return await call('/campaigns', {method: 'POST', body: body(dryRun), signal: ctx.signal});
  }
  function refused(/** @type {unknown} */ e) {
    const details = e instanceof APIError ? e.details : [];
    const unplaced = [];
    for (const d of details) {
      const el = controlFor(form, d.field, d.message);
      if (el) {
        setInvalid(el, true);
        el.closest('.field')?.append(h('span', {class: 'field-error'}, d.message));
      } else {
        unplaced.push(d.field + ': ' + d.message);
      }
    }
    replace(errors, details.length ? 'The server refused the campaign; see the marked fields.' : errorText(e),
      unplaced.length ? h('ul', null, unplaced.map((u) => h('li', null, u))) : null);
    errors.hidden = false;
    /** @type {HTMLElement|null} */ (form.querySelector('[aria-invalid="true"]'))?.focus();
  }

  dryButton.addEventListener('click', async () => {
    try {
      const out = await send(true);
      replace(dry, dryWords(out));
      createButton.disabled = false;
      ctx.announce('Dry run: ' + out.devices + ' devices in ' + (out.waves || []).length + ' waves.');
    } catch (e) {
      replace(dry);
      refused(e);
    }
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (createButton.disabled) return;
    const ok = await ctx.confirm({title: 'Create and start ' + (name.value.trim() || 'this campaign') + '?', ok: 'Create and start',
      body: [h('p', null, 'Devices start updating to ' + (images.find((i) => i.id === image.value)?.version || 'the image') + ' wave by wave.')]});
    if (!ok) return;
    createButton.disabled = true;
    try {
      const c = await send(false);
      ctx.announce('Campaign ' + c.name + ' created.');
      ctx.go('#/campaigns/' + seg(c.id));
    } catch (e) {
      refused(e);
    }
  });

  replace(ctx.main,
    h('nav', {class: 'crumbs', 'aria-label': 'Breadcrumb'}, h('a', {href: '#/campaigns'}, 'Campaigns'), ' / ', h('span', {'aria-current': 'page'}, 'New')),
    h('h1', {tabindex: '-1'}, 'New campaign'),
    images.length ? form : h('p', {class: 'alert'}, 'There is no image yet: upload one first.'));
}

/**
 * input is an <input> with id and name (the name is the id).
 * @param {string} id @param {string} type @param {Record<string, any>} [more]
 */
function input(id, type, more) {
  return /** @type {HTMLInputElement} */ (h('input', {id: id, name: id, type, ...more}));
}

/** @param {Element} el @param {boolean} bad */
function setInvalid(el, bad) {
  if (bad) el.setAttribute('aria-invalid', 'true');
  else el.removeAttribute('aria-invalid');
}

/**
 * controlFor finds the control of an API field name ("waves[1].gate.success_percent"); a
 * window's problem may name its part in the message instead ("cron: ...").
 * @param {HTMLFormElement} form @param {string} f @param {string} msg
 * @returns {HTMLElement|null}
 */
function controlFor(form, f, msg) {
  const rowOf = (/** @type {string} */ sel, /** @type {number} */ n) =>
    /** @type {HTMLElement|undefined} */ (form.querySelectorAll(sel)[n])?.dataset.row;
  let m;
  if ((m = /^waves\[(\d+)\]\.?(.*)$/.exec(f))) {
    const i = rowOf('li.wave-row', Number(m[1]));
    if (i === undefined) return null;
    const part = m[2].startsWith('gate') ? 'gate' : m[2].startsWith('soak') ? 'soak' : 'percent';
    return form.querySelector('#w-' + part + '-' + i);
  }
  if ((m = /^schedule\.windows\[(\d+)\]\.?(.*)$/.exec(f))) {
    const i = rowOf('li.window-row', Number(m[1]));
    if (i === undefined) return null;
    const part = m[2] || msg;
    return form.querySelector('#win-' + (part.startsWith('duration') ? 'duration' : part.startsWith('time_zone') ? 'tz' : 'cron') + '-' + i);
  }
  /** @type {Record<string, string>} */
  const ids = {name: 'c-name', image_id: 'c-image', selector: 'c-query', 'selector.query': 'c-query', 'selector.endpoints': 'c-endpoints',
    method: 'c-method', waves: 'add-wave', failure_threshold: 'c-th-percent', 'failure_threshold.percent': 'c-th-percent',
    'failure_threshold.min_devices': 'c-th-min', 'failure_threshold.action': 'c-th-action', overall_threshold: 'c-ov-percent',
    'overall_threshold.percent': 'c-ov-percent', 'overall_threshold.action': 'c-ov-action', pacing: 'c-max-concurrent',
    'pacing.max_concurrent': 'c-max-concurrent', 'pacing.max_starts_per_minute': 'c-per-minute'};
  const id = ids[f];
  return id ? form.querySelector('#' + id) : null;
}

/**
 * previewWords is the live count in words.
 * @param {any} p
 */
function previewWords(p) {
  const models = (p.models || []).map((/** @type {any} */ m) => (m.model || 'model not known yet') + ': ' + m.devices).join(', ');
  const warn = [];
  if (p.not_for_image) warn.push(p.not_for_image + ' are not what the image is built for: the campaign would be refused');
  if (p.in_other_campaigns) warn.push(p.in_other_campaigns + ' are in another campaign: the campaign would be refused');
  if (p.already_up_to_date) warn.push(p.already_up_to_date + ' already run ' + p.image_version + ': no update starts for them');
  return [
    h('p', null, h('strong', {id: 'match-number'}, String(p.devices)), p.devices === 1 ? ' device matches' : ' devices match',
      models ? ' (' + models + ')' : '', p.devices ? '' : ': the campaign would be refused'),
    warn.length ? h('ul', {class: 'warnings', id: 'preview-warnings'}, warn.map((w) => h('li', null, w))) : null,
    (p.sample || []).length ? h('p', {class: 'hint'}, 'For example ' + p.sample.slice(0, 8).join(', ') + (p.devices > 8 ? ', …' : '')) : null,
  ];
}

/**
 * dryWords is what the server would select, wave by wave.
 * @param {any} out
 */
function dryWords(out) {
  const ws = out.waves || [];
  const eps = out.endpoints || [];
  return h('section', {class: 'dry', 'aria-labelledby': 'h-dry'},
    h('h2', {id: 'h-dry'}, 'Dry run'),
    h('p', {id: 'dry-summary'}, h('strong', null, String(out.devices)), ' devices in ' + ws.length + (ws.length === 1 ? ' wave' : ' waves') + ': ',
      ws.map((/** @type {any} */ w) => 'wave ' + w.wave + ' ' + w.size).join(', ') + '. Nothing is created until you press “Create and start”.'),
    eps.length ? h('details', null, h('summary', null, 'The devices, in start order' + (eps.length < out.devices ? ' (the first ' + eps.length + ')' : '')),
      h('p', {class: 'endpoint-list'}, eps.join(', '))) : null);
}
