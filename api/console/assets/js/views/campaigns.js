// The campaign list: every rollout, newest first, with how far it got.

import {call, query, seg, APIError} from '../api.js';
import {h, field, replace, table} from '../dom.js';
import {ago, CAMPAIGN_STATES, campaignState, time} from '../words.js';

/** @param {import('../main.js').Ctx} ctx */
export async function render(ctx) {
  const state = ctx.query.get('state') || '';
  const select = h('select', {id: 'f-state', name: 'state'},
    h('option', {value: ''}, 'any'),
    Object.entries(CAMPAIGN_STATES).map(([v, w]) => h('option', {value: v, selected: v === state}, w)));
  select.addEventListener('change', () => ctx.go('#/campaigns' + query({state: /** @type {HTMLSelectElement} */ (select).value})));
  let list;
  try {
    list = await call('/campaigns' + query({state}), {signal: ctx.signal});
  } catch (e) {
    if (e instanceof APIError && (e.status === 404 || e.status === 405)) {
      replace(ctx.main, h('h1', {tabindex: '-1'}, 'Campaigns'), h('p', null, 'This lwota runs no campaigns.'));
      return;
    }
    throw e;
  }
  const cs = /** @type {any[]} */ (list.campaigns || []);
  const rows = cs.map((c) => {
    const p = c.progress || {};
    const n = p.counts || {};
    const done = (n.succeeded || 0) + (n.already_up_to_date || 0);
    return [
      h('a', {href: '#/campaigns/' + seg(c.id)}, c.name || c.id),
      h('span', {class: 'badge ' + stateClass(c.state)}, campaignState(c.state)),
      c.image_version || '—',
      h('span', {class: 'progress-cell'}, h('progress', {max: p.total || 1, value: done, 'aria-label': 'updated'}), ' ', done + ' of ' + (p.total || 0)),
      String(n.failed || 0),
      c.wave ? String(c.wave) + ' of ' + (c.waves || []).length : '—',
      c.created_by || '',
      h('time', {datetime: c.created_at, title: time(c.created_at)}, ago(c.created_at)),
    ];
  });
  replace(ctx.main,
    h('h1', {tabindex: '-1'}, 'Campaigns'),
    ctx.who.can('driveCampaigns') ? h('p', null, h('a', {href: '#/campaigns/new', class: 'button primary', id: 'new-campaign'}, 'New campaign')) : null,
    h('form', {class: 'search', role: 'search', 'aria-label': 'Filter campaigns', onsubmit: (/** @type {Event} */ e) => e.preventDefault()},
      field('State', select)),
    cs.length ? table('Campaigns', ['Name', 'State', 'Version', 'Updated', 'Failed', 'Wave', 'Created by', 'Created'], rows, {id: 'campaign-list'}) :
      h('p', {class: 'count'}, state ? 'No campaign is ' + campaignState(state) + '.' : 'No campaign yet.'));
}

/** @param {string} s */
export function stateClass(s) {
  return s === 'completed' ? 'ok' : s === 'running' ? 'busy' : s === 'failed' || s === 'aborted' ? 'bad' :
    s === 'paused' || s === 'waiting-for-approval' ? 'warn' : 'off';
}
