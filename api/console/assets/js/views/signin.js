// Sign-in with an API token. The token is checked with GET /whoami and then kept in this tab's
// session storage only.

import {call, session, APIError} from '../api.js';
import {h, field} from '../dom.js';

/**
 * @param {{main: HTMLElement, notice: string, onSignedIn: (w: {name: string, role: string}) => void}} o
 */
export function render({main, notice, onSignedIn}) {
  const input = /** @type {HTMLInputElement} */ (h('input', {id: 'token', name: 'token', type: 'password', required: true,
    autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off'}));
  const error = h('p', {class: 'alert', id: 'signin-error', role: 'alert', hidden: true});
  const button = h('button', {type: 'submit', class: 'primary'}, 'Sign in');
  const form = h('form', {class: 'signin-form', novalidate: true},
    field('API token', input, 'A token made with "lwota token create", or the admin token lwota printed on its first start.'),
    error, button);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    if (!token) {
      show('Paste an API token.');
      return;
    }
    button.setAttribute('disabled', '');
    try {
      const w = await call('/whoami', {token});
      session.set(token);
      onSignedIn(w);
    } catch (e) {
      show(e instanceof APIError && e.status === 401 ? 'This token is unknown or has been revoked.' :
        e instanceof Error ? e.message : String(e));
    } finally {
      button.removeAttribute('disabled');
    }
  });
  /** @param {string} msg */
  function show(msg) {
    error.textContent = msg;
    error.hidden = false;
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  }
  main.append(h('section', {class: 'signin'},
    h('h1', {tabindex: '-1'}, 'Sign in to lwota'),
    notice ? h('p', {class: 'notice', role: 'status'}, notice) : null,
    h('p', null, 'The console shows what your token\'s role may see and do. The token stays in this browser tab only: closing the tab signs you out.'),
    form));
  input.focus();
}
