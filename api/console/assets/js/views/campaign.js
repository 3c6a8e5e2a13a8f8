// One campaign, live: counters, devices per state over time (the whole campaign from its
// history, then extended live), the waves and their gates, what Resume will do, who did what,
// failure reasons ranked, the devices, and the actions the signed-in role may take.

import {call, errorText, query, seg} from '../api.js';
import {h, facts, field, pressGuard, redraw, replace, table} from '../dom.js';
import {share, stateChart, stackBar} from '../chart.js';
import {stream} from '../sse.js';
import {stateClass} from './campaigns.js';
import {ago, CAMPAIGN_COUNTS, campaignState, GATES, jobState, percent, time} from '../words.js';

/**
 * Samples of each campaign's counts for the chart: its history from the server when the page
 * opens, then what this tab sees live. Kept across page changes.
 * @type {Map<string, {t: number, counts: Record<string, number>}[]>}
 */
const samples = new Map();
const MAX_SAMPLES = 2000;
/** Server clock minus this tab's, per campaign, so that live samples follow the history's. */
const skew = new Map();

/** What each action of a campaign's history is, in words. */
const EVENT_ACTIONS = {create: 'created', start: 'started', pause: 'paused', resume: 'resumed', approve: 'approved the next wave',
  abort: 'aborted', retry: 'retried the failed devices', wave: 'next wave', gate: 'gate', threshold: 'threshold', complete: 'completed',
  end: 'schedule ended', fail: 'failed'};

/** Device states of the campaign's device list, in words. */
const DEVICE_STATES = {pending: 'pending', in_progress: 'in progress', succeeded: 'updated',
  already_up_to_date: 'already up to date', failed: 'failed', cancelled: 'cancelled'};

/**
 * @typedef {{name: string, id?: string, label: string, when: (c: any) => boolean, danger?: boolean,
 *   ask?: (c: any) => {title: string, ok: string, body?: any[]}, body?: (c: any, fd: FormData|null, who: any) => any}} Action
 */

/** @type {Action[]} */
const ACTIONS = [
  {name: 'start', label: 'Start', when: (c) => ['draft', 'scheduled'].includes(c.state),
    ask: (c) => ({title: 'Start ' + c.name + '?', ok: 'Start campaign', body: [h('p', null, 'Devices start updating to ' + c.image_version + ' wave by wave.')]})},
  {name: 'pause', label: 'Pause', when: (c) => ['running', 'waiting-for-approval'].includes(c.state),
    body: (c, fd, who) => ({reason: 'paused in the web console by ' + who.name})},
  {name: 'resume', label: 'Resume', when: (c) => c.state === 'paused'},
  // A threshold that paused the campaign pauses it again unless it is raised as it resumes
  // (resume_effect says so): the same action with new thresholds.
  {name: 'resume', id: 'resume-raise', label: 'Resume with new thresholds…', when: (c) => c.state === 'paused',
    ask: (c) => ({title: 'Resume ' + c.name + ' with new thresholds?', ok: 'Resume', body: [
      c.resume_effect ? h('p', null, 'As it is: ' + c.resume_effect + '.') : null,
      h('p', null, 'Failed devices per wave, as a share of the finished ones:'),
      field('Per wave: failed %', h('input', {id: 'resume-th-percent', name: 'percent', type: 'number', min: 0, max: 100, step: 'any', required: true,
        value: c.failure_threshold?.percent ?? ''})),
      field('after at least (devices)', h('input', {id: 'resume-th-min', name: 'min_devices', type: 'number', min: 0, step: 1,
        value: c.failure_threshold?.min_devices ?? 0})),
      field('then', h('select', {id: 'resume-th-action', name: 'action'},
        ['pause', 'abort'].map((v) => h('option', {value: v, selected: (c.failure_threshold?.action || 'pause') === v}, v)))),
    ]}),
    body: (c, fd) => ({failure_threshold: {percent: Number(fd?.get('percent') || 0), min_devices: Number(fd?.get('min_devices') || 0),
      action: String(fd?.get('action') || 'pause')}})},
  {name: 'approve', label: 'Approve next wave', when: (c) => c.state === 'waiting-for-approval',
    ask: (c) => ({title: 'Approve the next wave of ' + c.name + '?', ok: 'Approve',
      body: [h('p', null, 'The gate of wave ' + c.wave + ' opens and the next wave starts.')]})},
  {name: 'retry', label: 'Retry failed devices', when: (c) => (c.progress?.counts?.failed || 0) > 0 && !['draft', 'aborted'].includes(c.state),
    ask: (c) => ({title: 'Retry the failed devices of ' + c.name + '?', ok: 'Retry failed',
      body: [h('p', null, (c.progress?.counts?.failed || 0) + ' devices get a new update job.')]})},
  {name: 'abort', label: 'Abort…', danger: true, when: (c) => !['completed', 'aborted', 'failed'].includes(c.state),
    ask: (c) => ({title: 'Abort ' + c.name + '?', ok: 'Abort campaign', body: [
      h('p', null, 'No device starts updating any more. This cannot be undone.'),
      field('Reason', h('input', {id: 'abort-reason', name: 'reason', type: 'text', required: true, maxlength: 1024})),
      h('fieldset', null, h('legend', null, 'Devices already updating'),
        h('label', {class: 'radio'}, h('input', {type: 'radio', name: 'mode', value: 'soft', checked: true}), ' let them finish (soft)'),
        h('label', {class: 'radio'}, h('input', {type: 'radio', name: 'mode', value: 'hard'}), ' cancel them (hard)')),
    ]}),
    body: (c, fd) => ({reason: String(fd?.get('reason') || ''), mode: String(fd?.get('mode') || 'soft')})},
];

/** @param {import('../main.js').Ctx} ctx */
export async function render(ctx) {
  const id = ctx.params[0];
  let c = await call('/campaigns/' + seg(id), {signal: ctx.signal});
  const el = {
    title: h('h1', {tabindex: '-1'}),
    state: h('div', {class: 'campaign-state', id: 'campaign-state'}),
    actions: h('div', {class: 'buttons campaign-actions', id: 'campaign-actions', role: 'group', 'aria-label': 'Campaign actions'}),
    actionError: h('p', {class: 'alert', role: 'alert', hidden: true}),
    live: h('p', {class: 'live', id: 'live'}, 'Connecting…'),
    counters: h('div', {id: 'counters'}),
    chart: h('div', {id: 'chart'}),
    waves: h('div', {id: 'waves'}),
    reasons: h('div', {id: 'failure-reasons'}),
    settings: h('div', {id: 'settings'}),
    events: h('div', {id: 'campaign-events'}, h('p', {class: 'loading'}, 'Loading…')),
  };
  const devices = deviceList(ctx, id);

  function drawChart() {
    replace(el.chart, stateChart(samples.get(c.id) || [], CAMPAIGN_COUNTS, c.progress?.total || 0, el.chart.clientWidth - 18));
  }

  // The whole campaign so far, from the server: a page opened late still draws it all.
  let eventsAt = '';
  let eventsBusy = false;
  let eventsTimer = 0;
  ctx.signal.addEventListener('abort', () => clearTimeout(eventsTimer), {once: true});
  async function loadHistory(/** @type {boolean} */ withSamples) {
    if (eventsBusy) return;
    eventsBusy = true;
    try {
      const hist = await call('/campaigns/' + seg(id) + '/history', {signal: ctx.signal});
      if (withSamples) seed(id, hist);
      replace(el.events, events(hist));
      if (withSamples) drawChart();
    } catch (e) {
      if (ctx.signal.aborted) return;
      replace(el.events, h('p', {class: 'alert'}, 'The history cannot be read: ' + errorText(e)));
    } finally {
      eventsBusy = false;
    }
  }

  function update(/** @type {any} */ next) {
    const prev = c;
    c = next;
    // A change of the campaign (an action, a wave, a threshold) may be a new line of its
    // history: read it at once on a new state, else at most every 5 s (a running campaign's
    // ticks change it often).
    if (c.updated_at !== eventsAt) {
      const first = !eventsAt;
      eventsAt = c.updated_at;
      if (!first && prev.state !== c.state) {
        clearTimeout(eventsTimer);
        eventsTimer = 0;
        loadHistory(false);
      } else if (!first && !eventsTimer) {
        eventsTimer = window.setTimeout(() => { eventsTimer = 0; loadHistory(false); }, 5000);
      }
    }
    sample(c);
    replace(el.title, c.name || c.id, ' ', h('span', {class: 'badge ' + stateClass(c.state)}, campaignState(c.state)));
    replace(el.state, stateLine(c));
    // The buttons stay the same elements while the same actions apply: a progress event must not
    // swallow a click on Pause.
    const acts = ctx.who.can('driveCampaigns') ? ACTIONS.filter((a) => a.when(c)) : [];
    const key = acts.map((a) => a.id || a.name).join(' ');
    if (key !== el.actions.dataset.actions) {
      el.actions.dataset.actions = key;
      redraw(el.actions, () => replace(el.actions, acts.map((a) => actionButton(a))));
    }
    el.actions.hidden = !acts.length;
    replace(el.counters, counters(c));
    drawChart();
    replace(el.waves, waves(c));
    replace(el.reasons, reasons(c));
    replace(el.settings, settings(c));
    devices.changed(prev, c);
  }

  /** @param {Action} a */
  function actionButton(a) {
    return h('button', {type: 'button', id: 'action-' + (a.id || a.name), class: a.danger ? 'danger' : '', onclick: async () => {
      el.actionError.hidden = true;
      let fd = null;
      if (a.ask) {
        fd = await ctx.confirm({...a.ask(c), danger: a.danger});
        if (!fd) return;
      }
      try {
        const body = a.body ? a.body(c, fd, ctx.who) : undefined;
        const next = await call('/campaigns/' + seg(id) + '/' + a.name, {method: 'POST', body: body === undefined ? {} : body});
        if (next && next.id) update(next);
        ctx.announce('Campaign ' + campaignState(c.state) + '.');
        el.actions.querySelector('button')?.focus();
      } catch (e) {
        el.actionError.textContent = errorText(e);
        el.actionError.hidden = false;
      }
    }}, a.label);
  }

  update(c);
  replace(ctx.main, 
    h('nav', {class: 'crumbs', 'aria-label': 'Breadcrumb'}, h('a', {href: '#/campaigns'}, 'Campaigns'), ' / ', h('span', {'aria-current': 'page'}, c.name || id)),
    el.title, el.state, el.actions, el.actionError,
    h('section', {'aria-labelledby': 'h-progress'}, h('h2', {id: 'h-progress'}, 'Progress'), el.live, el.counters),
    h('section', {'aria-labelledby': 'h-chart'}, h('h2', {id: 'h-chart'}, 'Devices per state over time'), el.chart),
    h('section', {'aria-labelledby': 'h-waves'}, h('h2', {id: 'h-waves'}, 'Waves'), el.waves),
    h('section', {'aria-labelledby': 'h-reasons'}, h('h2', {id: 'h-reasons'}, 'Failure reasons'), el.reasons),
    h('section', {'aria-labelledby': 'h-events'}, h('h2', {id: 'h-events'}, 'Who did what'), el.events),
    h('section', {'aria-labelledby': 'h-devices'}, h('h2', {id: 'h-devices'}, 'Devices'), devices.el),
    h('section', {'aria-labelledby': 'h-settings'}, h('h2', {id: 'h-settings'}, 'Settings'), el.settings));
  devices.load();
  drawChart(); // now that it is on the page, for its real width
  await loadHistory(true);
  let resized = 0;
  window.addEventListener('resize', () => {
    clearTimeout(resized);
    resized = window.setTimeout(drawChart, 200);
  }, {signal: ctx.signal});

  // Live progress: the campaign's event stream; polling only when the stream is refused.
  let polling = false;
  const poll = async () => {
    if (ctx.signal.aborted) return;
    try {
      update(await call('/campaigns/' + seg(id), {signal: ctx.signal}));
    } catch { /* the next poll tries again */ }
    window.setTimeout(poll, 3000);
  };
  stream('/campaigns/' + seg(id) + '/events', {
    signal: ctx.signal,
    onEvent: (ev) => {
      let data = null;
      try { data = JSON.parse(ev.data); } catch { return; }
      if (data && data.id === id && data.progress) {
        update(data);
      } else if (ev.event === 'state') {
        call('/campaigns/' + seg(id), {signal: ctx.signal}).then(update).catch(() => {});
      }
    },
    onState: (state, detail) => {
      el.live.textContent = state === 'open' ? 'Live: updates as devices progress.' : state === 'retrying' ? 'Reconnecting… (' + detail + ')' : 'Refreshing every 3 s.';
      el.live.className = 'live ' + state;
      if (state === 'closed' && !polling) {
        polling = true;
        window.setTimeout(poll, 3000);
      }
    },
  });
}

/**
 * seed replaces the campaign's samples with its history, keeping the live ones seen after it.
 * @param {string} id @param {any} hist
 */
function seed(id, hist) {
  const pts = (hist.samples || []).map((/** @type {any} */ p) => ({t: Date.parse(p.at), counts: {...p.counts}}));
  if (!pts.length) return;
  const end = pts[pts.length - 1].t;
  skew.set(id, Date.parse(hist.to) - Date.now());
  const live = (samples.get(id) || []).filter((p) => p.t > end);
  samples.set(id, pts.concat(live).slice(-MAX_SAMPLES));
}

/** @param {any} c */
function sample(c) {
  const counts = c.progress?.counts;
  if (!counts) return;
  let list = samples.get(c.id);
  if (!list) samples.set(c.id, list = []);
  const now = Date.now() + (skew.get(c.id) || 0);
  const last = list[list.length - 1];
  const same = last && CAMPAIGN_COUNTS.every(([k]) => (last.counts[k] || 0) === (counts[k] || 0));
  // An unchanged count still moves the chart's right edge forward, once a few seconds.
  if (same && now - last.t < 5000) return;
  list.push({t: now, counts: {...counts}});
  if (list.length > MAX_SAMPLES) list.splice(0, list.length - MAX_SAMPLES);
}

/** @param {any} c */
function stateLine(c) {
  const lines = [];
  if (c.reason) lines.push(h('p', {class: 'reason state-' + c.state, id: 'campaign-reason'}, h('span', {class: 'label'}, stateWhy(c.state)), c.reason));
  if (c.resume_effect) {
    lines.push(h('p', {class: 'gate', id: 'resume-effect'}, h('span', {class: 'label'}, 'If you resume: '), c.resume_effect));
  }
  // A gate held by a threshold is the pause's own reason, shown above and on the wave.
  const gate = (c.progress?.waves || []).find((w) => ['blocked', 'awaiting-approval', 'soaking'].includes(w.gate));
  if (gate) {
    lines.push(h('p', {class: 'gate', id: 'campaign-gate'}, h('span', {class: 'label'}, 'Gate of wave ' + gate.wave + ': '),
      GATES[gate.gate] || gate.gate, gate.gate_reason ? ' — ' + gate.gate_reason : ''));
  }
  lines.push(h('p', {class: 'meta'}, 'Image ', h('strong', null, c.image_version || c.image_id), c.wave ? ' · wave ' + c.wave + ' of ' + (c.waves || []).length : '',
    c.started_at ? ' · started ' + ago(c.started_at) : '', c.ended_at ? ' · ended ' + ago(c.ended_at) : ''));
  return lines;
}

/** @param {string} state */
function stateWhy(state) {
  return state === 'paused' ? 'Paused: ' : state === 'waiting-for-approval' ? 'Waiting: ' : state === 'failed' ? 'Failed: ' :
    state === 'aborted' ? 'Aborted: ' : 'Note: ';
}

/** @param {any} c */
function counters(c) {
  const p = c.progress || {};
  const n = p.counts || {};
  const done = (n.succeeded || 0) + (n.already_up_to_date || 0);
  return [
    h('dl', {class: 'counters'},
      h('div', {'data-count': 'total'}, h('dt', null, 'devices'), h('dd', null, String(p.total || 0))),
      CAMPAIGN_COUNTS.map(([k, w]) => h('div', {'data-count': k, class: 'count-' + k}, h('dt', null, w), h('dd', null, String(n[k] || 0))))),
    h('p', {class: 'overall'}, h('progress', {max: p.total || 1, value: done, 'aria-label': 'devices updated'}), ' ',
      percent(p.total ? done / p.total : 0) + ' done',
      p.success_rate !== undefined ? ' · success ' + percent(p.success_rate) : '',
      p.failure_rate !== undefined ? ' · failure ' + percent(p.failure_rate) : '',
      p.throughput_per_minute ? ' · ' + (Math.round(p.throughput_per_minute * 10) / 10) + ' devices/min' : '',
      p.eta ? ' · done ' + ago(p.eta) + ' (' + time(p.eta) + ')' : ''),
  ];
}

/** @param {any} c */
function waves(c) {
  const ws = c.progress?.waves || [];
  if (!ws.length) return h('p', null, 'No wave has started yet.');
  return h('ol', {class: 'waves'}, ws.map((/** @type {any} */ w) => h('li', {class: w.wave === c.wave ? 'current' : ''},
    h('div', {class: 'wave-head'},
      h('strong', null, 'Wave ' + w.wave), ' · ' + w.size + ' devices · gate ',
      h('span', {class: 'badge ' + (w.gate === 'open' ? 'ok' : w.gate === 'blocked' || w.gate === 'held' ? 'bad' : w.gate === 'running' ? 'busy' : 'warn')}, GATES[w.gate] || w.gate || '—'),
      w.started_at ? ' · started ' + ago(w.started_at) : ''),
    stackBar(w.counts || {}, CAMPAIGN_COUNTS, w.size || 0, 'Wave ' + w.wave),
    h('p', {class: 'wave-counts'}, CAMPAIGN_COUNTS.filter(([k]) => (w.counts || {})[k]).map(([k, word]) => word + ' ' + w.counts[k]).join(' · ') || 'not started'),
    w.gate_reason ? h('p', {class: 'gate-reason'}, w.gate_reason) : null)));
}

/**
 * events is who started, paused, approved, resumed… the campaign, when and why, newest first.
 * @param {any} hist
 */
function events(hist) {
  const evs = [...(hist.events || [])].reverse();
  if (!evs.length) return h('p', null, 'Nothing yet.');
  return table('Who did what', ['When', 'Who', 'What', 'State', 'Why'], evs.map((/** @type {any} */ e) => [
    h('time', {datetime: e.at, title: time(e.at)}, time(e.at)),
    e.actor === 'lwota' ? h('span', {class: 'meta'}, 'lwota (by itself)') : h('strong', null, e.actor),
    EVENT_ACTIONS[/** @type {keyof typeof EVENT_ACTIONS} */ (e.action)] || e.action,
    e.from && e.from !== e.to ? campaignState(e.from) + ' → ' + campaignState(e.to) : campaignState(e.to),
    e.reason || '',
  ]), {id: 'campaign-event-list'});
}

/** @param {any} c */
function reasons(c) {
  const rs = [...(c.failure_reasons || [])].sort((a, b) => b.count - a.count);
  if (!rs.length) return h('p', null, 'No device has failed.');
  const most = rs[0].count || 1;
  return h('ol', {class: 'reasons'}, rs.map((r) => h('li', null,
    h('span', {class: 'reason-text'}, r.reason),
    share(r.count, most, 'failed', r.count + ' devices'),
    h('span', {class: 'reason-count'}, r.count + (r.count === 1 ? ' device' : ' devices')))));
}

/** @param {any} c */
function settings(c) {
  const sel = c.selector || {};
  const th = (/** @type {any} */ t) => !t ? '' : [t.percent ? t.percent + ' %' : '', t.count ? t.count + ' devices' : '',
    t.min_devices ? 'after ' + t.min_devices + ' devices' : '', t.action ? '→ ' + t.action : ''].filter(Boolean).join(', ');
  const pacing = c.pacing || {};
  return facts([
    ['Id', c.id],
    ['Image', c.image_id],
    ['Devices', sel.query ? h('code', null, sel.query) : sel.endpoints ? sel.endpoints.length + ' listed endpoints' : ''],
    ['Method', c.method || ''],
    ['Waves', (c.waves || []).map((/** @type {any} */ w, /** @type {number} */ i) => (i + 1) + ': ' +
      (w.percent ? w.percent + ' %' : w.count ? w.count + ' devices' : 'the rest') +
      (w.gate?.success_percent ? ', gate ' + w.gate.success_percent + ' % success' : '') + (w.gate?.manual ? ', manual approval' : '') +
      (w.soak ? ', soak ' + w.soak : '')).join('; ')],
    ['Spread by label', c.spread_by || ''],
    ['Failure threshold per wave', th(c.failure_threshold)],
    ['Overall failure threshold', th(c.overall_threshold)],
    ['Pacing', [pacing.max_concurrent ? pacing.max_concurrent + ' at a time' : '', pacing.max_starts_per_minute ? pacing.max_starts_per_minute + ' starts/min' : '']
      .filter(Boolean).join(', ')],
    ['Schedule', c.schedule ? [c.schedule.start_at ? 'from ' + time(c.schedule.start_at) : '', c.schedule.end_at ? 'until ' + time(c.schedule.end_at) : '',
      (c.schedule.windows || []).map((/** @type {any} */ w) => w.cron + ' for ' + w.duration + (w.time_zone ? ' (' + w.time_zone + ')' : '')).join(', ')].filter(Boolean).join(' ') : ''],
    ['Created', c.created_at ? time(c.created_at) + (c.created_by ? ' by ' + c.created_by : '') : ''],
    ['Last change', time(c.updated_at)],
  ]);
}

/**
 * deviceList is the campaign's devices in one state, a page at a time; it reloads itself when
 * that state's count changes (at most every 3 s).
 * @param {import('../main.js').Ctx} ctx @param {string} id
 */
function deviceList(ctx, id) {
  let state = ctx.query.get('devices') || '';
  let cursor = '';
  let lastLoad = 0;
  let pending = 0;
  const select = /** @type {HTMLSelectElement} */ (h('select', {id: 'f-device-state', name: 'state'},
    Object.entries(DEVICE_STATES).map(([v, w]) => h('option', {value: v}, w))));
  const body = h('div', {id: 'campaign-devices'});
  const pressing = pressGuard(body);
  const el = h('div', null, h('form', {class: 'search', 'aria-label': 'Campaign devices', onsubmit: (/** @type {Event} */ e) => e.preventDefault()},
    field('Devices that are', select)), body);
  select.addEventListener('change', () => { state = select.value; cursor = ''; load(); });

  async function load() {
    lastLoad = Date.now();
    try {
      const l = await call('/campaigns/' + seg(id) + '/devices' + query({state, limit: 50, after: cursor}), {signal: ctx.signal});
      const ds = /** @type {any[]} */ (l.devices || []);
      while (pressing()) await new Promise((r) => setTimeout(r, 200));
      redraw(body, () => replace(body, ds.length ? table('Devices ' + DEVICE_STATES[state], ['Endpoint', 'Wave', 'State', 'Reason', 'Attempts', 'Started', 'Ended'],
        ds.map((d) => [
          h('a', {href: d.job_id ? '#/devices/' + seg(d.endpoint) + '/updates/' + seg(d.job_id) : '#/devices/' + seg(d.endpoint)}, d.endpoint),
          String(d.wave || ''),
          DEVICE_STATES[d.state] + (d.job_state && d.state === 'in_progress' ? ': ' + jobState(d.job_state) : ''),
          d.reason || '',
          String(d.attempts ?? ''),
          time(d.started_at),
          time(d.ended_at),
        ]), {id: 'campaign-device-list'}) : h('p', null, 'No device is ' + DEVICE_STATES[state] + '.'),
      l.next ? h('button', {type: 'button', id: 'devices-next', onclick: () => { cursor = l.next; load(); }}, 'Next page') : null,
      cursor ? h('button', {type: 'button', id: 'devices-first', onclick: () => { cursor = ''; load(); }}, 'First page') : null));
    } catch (e) {
      if (!ctx.signal.aborted) replace(body, h('p', {class: 'alert'}, errorText(e)));
    }
  }
  return {
    el,
    load,
    /** changed sees a new campaign state and reloads the list when its state's count moved. @param {any} prev @param {any} c */
    changed(prev, c) {
      const n = c.progress?.counts || {};
      if (!state) {
        // First look: the failures, if any, else the devices on their way.
        state = n.failed ? 'failed' : n.in_progress ? 'in_progress' : 'pending';
        select.value = state;
        return;
      }
      if (prev === c || (prev.progress?.counts || {})[state] === n[state]) return;
      clearTimeout(pending);
      pending = window.setTimeout(() => { if (!ctx.signal.aborted) load(); }, Math.max(0, 3000 - (Date.now() - lastLoad)));
    },
  };
}
