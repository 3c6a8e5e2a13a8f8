// A device's bootstrap sessions (LwM2M Bootstrap Server), for the device page: when it last
// bootstrapped, whether that worked, each step with the device's answer, and why one failed.

import {call, query, seg, APIError} from '../api.js';
import {h, replace, table} from '../dom.js';
import {time} from '../words.js';

/**
 * bootstrapHistory returns the section and fills it once loaded; it stays empty on a server
 * without a Bootstrap Server (404) or for a role that may not read it.
 * @param {import('../main.js').Ctx} ctx @param {string} ep
 */
export function bootstrapHistory(ctx, ep) {
  const section = h('section', {'aria-labelledby': 'h-bootstrap'});
  call('/bootstrap/devices/' + seg(ep) + '/sessions' + query({limit: 10}), {signal: ctx.signal}).then((l) => {
    const sessions = l.sessions || [];
    replace(section, h('h2', {id: 'h-bootstrap'}, 'Bootstrap history'),
      sessions.length ? sessions.map(sessionCard) : h('p', null, 'This device has not bootstrapped.'));
  }).catch((e) => {
    if (e instanceof APIError && (e.status === 404 || e.status === 403)) return;
    replace(section, h('h2', {id: 'h-bootstrap'}, 'Bootstrap history'), h('p', {class: 'alert', role: 'alert'}, String(e.message || e)));
  });
  return section;
}

/** @param {any} s one session */
function sessionCard(s) {
  const head = [h('time', {datetime: s.started_at}, time(s.started_at)), ' — ', s.outcome];
  if (s.rotated) head.push(' (new DM key ' + (s.dm_identity || '') + ')');
  return h('div', {class: 'job'},
    h('h3', null, ...head),
    s.reason ? h('p', {class: 'alert'}, s.reason) : null,
    table('Steps of the bootstrap', ['Time', 'Step', 'Path', 'Answer', 'Note'],
      (s.steps || []).map((/** @type {any} */ st) => [
        h('time', {datetime: st.at}, time(st.at)), st.op, st.path || '', st.code || '—', st.detail || '',
      ]), {class: 'list history'}));
}
