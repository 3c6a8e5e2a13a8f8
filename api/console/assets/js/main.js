// The console's entry point: sign-in, the hash router, the navigation and the shared dialogs.
// Every view lives in the URL fragment (#/devices?prefix=ab, #/campaigns/cmp_1), so links can be
// shared and the back button works, and lwota serves one page.

import {call, session, APIError, errorText} from './api.js';
import {h, replace} from './dom.js';
import * as signin from './views/signin.js';
import * as devices from './views/devices.js';
import * as device from './views/device.js';
import * as campaigns from './views/campaigns.js';
import * as campaign from './views/campaign.js';
import * as campaignNew from './views/campaign_new.js';
import * as images from './views/images.js';
import * as image from './views/image.js';
import * as fleet from './views/fleet.js';
import * as audit from './views/audit.js';
import * as webhooks from './views/webhooks.js';

/** What each role may do, as api.RouteRoles says; the server checks again on every call. */
const ROLES = {
  readDevices: ['admin', 'release', 'support'],
  readCampaigns: ['admin', 'release', 'support'],
  readImages: ['admin', 'release', 'ci', 'support'],
  updateDevices: ['admin', 'release'],
  driveCampaigns: ['admin', 'release'],
  editImages: ['admin', 'release'],
  deleteImages: ['admin'],
  readAudit: ['admin'],
  readWebhooks: ['admin', 'release', 'support'],
  manageWebhooks: ['admin'],
};

/**
 * @typedef {{name: string, role: string, can: (what: keyof typeof ROLES) => boolean}} Who
 * @typedef {{
 *   main: HTMLElement, params: string[], query: URLSearchParams, who: Who, signal: AbortSignal,
 *   go: (hash: string) => void, announce: (msg: string) => void,
 *   confirm: (o: {title: string, body?: any[], ok: string, danger?: boolean}) => Promise<FormData|null>,
 * }} Ctx
 */

/** @type {{re: RegExp, view: (ctx: Ctx) => Promise<void>, section: string, need: keyof typeof ROLES}[]} */
const ROUTES = [
  {re: /^\/devices$/, view: devices.render, section: 'devices', need: 'readDevices'},
  {re: /^\/devices\/([^/]+)$/, view: device.render, section: 'devices', need: 'readDevices'},
  {re: /^\/devices\/([^/]+)\/updates\/([^/]+)$/, view: device.renderJob, section: 'devices', need: 'readDevices'},
  {re: /^\/campaigns$/, view: campaigns.render, section: 'campaigns', need: 'readCampaigns'},
  {re: /^\/campaigns\/new$/, view: campaignNew.render, section: 'campaigns', need: 'driveCampaigns'},
  {re: /^\/campaigns\/([^/]+)$/, view: campaign.render, section: 'campaigns', need: 'readCampaigns'},
  {re: /^\/images$/, view: images.render, section: 'images', need: 'readImages'},
  {re: /^\/images\/([^/]+)$/, view: image.render, section: 'images', need: 'readImages'},
  {re: /^\/fleet$/, view: fleet.render, section: 'fleet', need: 'readDevices'},
  {re: /^\/audit$/, view: audit.render, section: 'audit', need: 'readAudit'},
  {re: /^\/webhooks$/, view: webhooks.render, section: 'webhooks', need: 'readWebhooks'},
];

/** @type {Who|null} */
let who = null;
/** @type {AbortController|null} */
let current = null;
let lastPath = '';
let notice = '';

const $ = (/** @type {string} */ sel) => /** @type {HTMLElement} */ (document.querySelector(sel));

/** @param {{name: string, role: string}} w @returns {Who} */
function toWho(w) {
  return {name: w.name, role: w.role, can: (what) => (ROLES[what] || []).includes(w.role)};
}

/** @param {string} hash */
function parseHash(hash) {
  const raw = hash.replace(/^#/, '') || '/';
  const i = raw.indexOf('?');
  return {path: i < 0 ? raw : raw.slice(0, i), query: new URLSearchParams(i < 0 ? '' : raw.slice(i + 1))};
}

/** @param {Who} w */
function home(w) {
  return w.can('readDevices') ? '#/devices' : '#/images';
}

/** @param {string} msg */
function announce(msg) {
  const el = $('#announce');
  el.textContent = '';
  // A fresh text node makes screen readers speak the same message twice in a row too.
  setTimeout(() => { el.textContent = msg; }, 50);
}

/** @param {Who|null} w @param {string} section */
function chrome(w, section) {
  const nav = $('#nav');
  nav.hidden = !w;
  $('#who').hidden = !w;
  if (!w) return;
  $('#who-name').textContent = w.name + ' (' + w.role + ')';
  for (const li of nav.querySelectorAll('li')) {
    const need = /** @type {keyof typeof ROLES} */ (li.getAttribute('data-need'));
    li.hidden = !w.can(need);
    const a = li.querySelector('a');
    if (a && a.dataset.section === section) a.setAttribute('aria-current', 'page');
    else if (a) a.removeAttribute('aria-current');
  }
}

/**
 * confirm asks before a consequential action. It resolves to the dialog's form fields when the
 * user confirms, and to null when they cancel (Escape included).
 * @param {{title: string, body?: any[], ok: string, danger?: boolean}} o
 * @returns {Promise<FormData|null>}
 */
function confirm(o) {
  const dlg = /** @type {HTMLDialogElement} */ ($('#confirm'));
  const form = /** @type {HTMLFormElement} */ ($('#confirm-form'));
  $('#confirm-title').textContent = o.title;
  replace($('#confirm-body'), o.body || []);
  const ok = $('#confirm-ok');
  ok.textContent = o.ok;
  ok.className = o.danger ? 'danger' : 'primary';
  dlg.returnValue = '';
  dlg.showModal();
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok' ? new FormData(form) : null), {once: true});
  });
}

async function route() {
  current?.abort();
  const ac = new AbortController();
  current = ac;
  const main = $('#main');
  const {path, query} = parseHash(location.hash);
  // Which view the page shows, once it is drawn: scripts (and the browser tests) wait for it.
  const drawn = () => { if (!ac.signal.aborted) main.dataset.route = location.hash; };

  if (!session.token) {
    chrome(null, '');
    replace(main);
    signin.render({main, notice, onSignedIn: (w) => { who = toWho(w); notice = ''; go(path === '/' ? home(who) : location.hash); }});
    document.title = 'Sign in · lwota';
    lastPath = '';
    drawn();
    return;
  }
  if (!who) {
    try {
      who = toWho(await call('/whoami', {signal: ac.signal}));
    } catch (e) {
      if (ac.signal.aborted) return;
      if (e instanceof APIError && e.status === 401) return; // the unauthorized handler signs out
      replace(main, h('h1', {tabindex: '-1'}, 'lwota is not answering'), h('p', {class: 'alert', role: 'alert'}, errorText(e)),
        h('button', {type: 'button', onclick: () => route()}, 'Try again'));
      drawn();
      return;
    }
  }
  const r = ROUTES.find((x) => x.re.test(path));
  if (!r) {
    location.replace(home(who));
    return;
  }
  chrome(who, r.section);
  const moved = path !== lastPath;
  lastPath = path;
  if (!who.can(r.need)) {
    replace(main, h('h1', {tabindex: '-1'}, 'Not for this role'),
      h('p', null, 'A ' + who.role + ' token may not see this page.'));
    drawn();
    return;
  }
  const params = /** @type {RegExpExecArray} */ (r.re.exec(path)).slice(1).map(decodeURIComponent);
  /** @type {Ctx} */
  const ctx = {main, params, query, who, signal: ac.signal, go, announce, confirm};
  // A new search on the same page redraws its form: the focus goes back where it was.
  const focusId = !moved && document.activeElement && main.contains(document.activeElement) ? document.activeElement.id : '';
  if (moved) replace(main, h('p', {class: 'loading'}, 'Loading…'));
  try {
    await r.view(ctx);
  } catch (e) {
    if (ac.signal.aborted || (e instanceof DOMException && e.name === 'AbortError')) return;
    replace(main, h('h1', {tabindex: '-1'}, 'Something went wrong'), h('p', {class: 'alert', role: 'alert'}, errorText(e)));
  }
  if (ac.signal.aborted) return;
  drawn();
  const h1 = main.querySelector('h1');
  if (h1) {
    document.title = h1.textContent + ' · lwota';
    // After a move to another page, screen readers and keyboards start at its heading.
    if (moved && document.activeElement !== h1 && !main.contains(document.activeElement)) h1.focus();
  }
  if (focusId && !main.contains(document.activeElement)) document.getElementById(focusId)?.focus();
}

/** @param {string} hash */
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function boot() {
  window.addEventListener('hashchange', () => { route(); });
  window.addEventListener('lwota:unauthorized', () => {
    if (!session.token) return;
    session.clear();
    who = null;
    notice = 'Your token is unknown or was revoked: sign in again.';
    route();
  });
  $('#sign-out').addEventListener('click', () => {
    session.clear();
    who = null;
    notice = 'Signed out.';
    location.hash = '#/';
    route();
  });
  $('#skip').addEventListener('click', (ev) => {
    ev.preventDefault(); // the fragment is the router's
    $('#main').focus();
  });
  route();
}

boot();
