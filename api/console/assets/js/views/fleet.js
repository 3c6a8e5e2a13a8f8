// The fleet at a glance: devices known and online, how many run each firmware version on each
// model (each row a link to those devices), updates in progress and the last day's failures by
// reason. One API call: GET /fleet.

import {call, query} from '../api.js';
import {h, replace, table} from '../dom.js';
import {jobState, percent, time} from '../words.js';

/** @param {import('../main.js').Ctx} ctx */
export async function render(ctx) {
  const f = await call('/fleet', {signal: ctx.signal});
  const d = f.devices;
  const versions = /** @type {any[]} */ (f.versions || []);
  const states = Object.entries(f.updates.by_state || {}).sort((a, b) => b[1] - a[1]);
  const failures = /** @type {any[]} */ (f.failures.by_reason || []);
  const card = (/** @type {string} */ cls, /** @type {string} */ term, /** @type {any} */ value, /** @type {string} */ id) =>
    h('div', {class: cls}, h('dt', null, term), h('dd', {id}, value));

  replace(ctx.main,
    h('h1', {tabindex: '-1'}, 'Fleet'),
    h('dl', {class: 'counters', id: 'fleet-summary'},
      card('count-pending', 'Devices known', String(d.known), 'fleet-known'),
      card('count-succeeded', 'Online', [String(d.online), d.known ? h('span', {class: 'share'}, ' (' + percent(d.online_share) + ')') : null], 'fleet-online'),
      card('count-in_progress', 'Updates in progress', String(f.updates.in_progress), 'fleet-in-progress'),
      card('count-failed', 'Failed in 24 h', String(f.failures.total), 'fleet-failed')),
    h('section', {'aria-labelledby': 'versions-h'}, h('h2', {id: 'versions-h'}, 'Firmware versions'),
      versions.length ? table('Devices per firmware version and model', ['Firmware', 'Model', 'Devices', 'Online'], versions.map((v) => [
        h('a', {href: '#/devices' + query({firmware: v.firmware_version, model: v.model})}, v.firmware_version || 'unknown'),
        v.model || '—', String(v.devices), String(v.online)]), {id: 'fleet-versions'}) :
        h('p', {class: 'meta', id: 'fleet-versions'}, 'No device has registered yet.'),
      f.more_versions ? h('p', {class: 'meta'}, 'Smaller groups are left out.') : null),
    h('section', {'aria-labelledby': 'updates-h'}, h('h2', {id: 'updates-h'}, 'Updates in progress'),
      states.length ? table('Updates in progress by state', ['State', 'Devices'], states.map(([s, n]) => [jobState(s), String(n)]), {id: 'fleet-updates'}) :
        h('p', {class: 'meta', id: 'fleet-updates'}, 'None.')),
    h('section', {'aria-labelledby': 'failures-h'}, h('h2', {id: 'failures-h'}, 'Failures in the last 24 hours'),
      h('p', {class: 'meta'}, 'Since ', h('time', {datetime: f.failures.since}, time(f.failures.since)), '.'),
      failures.length ? table('Failed updates by reason', ['Device result', 'Reason', 'Updates'], failures.map((x) => [
        x.device_result ? x.device_result + ': ' + (x.result_text || '') : '—', x.reason || '—', String(x.jobs)]), {id: 'fleet-failures'}) :
        h('p', {class: 'meta', id: 'fleet-failures'}, 'No update failed.'),
      f.failures.more ? h('p', {class: 'meta'}, 'Smaller groups are left out.') : null));
}
