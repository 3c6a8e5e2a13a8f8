// Small DOM helpers. Every text goes in as a text node, never as HTML, so nothing a device or a
// user typed can turn into markup. No inline style either: the Content-Security-Policy forbids it.

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * h builds an HTML element: h('a', {href: '#/x', class: 'button'}, 'text', childNode, [more]).
 * Attributes set to null, undefined or false are left out; true sets an empty attribute;
 * on<event> attributes with a function value become listeners.
 * @param {string} tag
 * @param {Record<string, any>|null} [attrs]
 * @param {...any} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/**
 * s builds an SVG element, like h.
 * @param {string} tag
 * @param {Record<string, any>|null} [attrs]
 * @param {...any} children
 * @returns {SVGElement}
 */
export function s(tag, attrs, ...children) {
  const el = /** @type {SVGElement} */ (document.createElementNS(SVG_NS, tag));
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else {
      el.setAttribute(k === 'className' ? 'class' : k, v === true ? '' : String(v));
    }
  }
}

/**
 * append adds children (nodes, strings, numbers, nested arrays; null and false are skipped).
 * @param {Element} el
 * @param {any[]} children
 */
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

/**
 * replace empties el and puts children in.
 * @param {Element} el
 * @param {...any} children
 */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/**
 * table builds a list table. Every cell carries its column's name in data-label, which the
 * narrow-screen layout shows in front of the value.
 * @param {string} caption
 * @param {string[]} columns
 * @param {any[][]} rows cells: nodes or text
 * @param {Record<string, any>} [attrs]
 */
export function table(caption, columns, rows, attrs) {
  return h('div', {class: 'table-wrap'},
    h('table', {class: 'list', ...attrs},
      h('caption', {class: 'visually-hidden'}, caption),
      h('thead', null, h('tr', null, columns.map((c) => h('th', {scope: 'col'}, c)))),
      h('tbody', null, rows.map((r) => h('tr', null, r.map((cell, i) => h('td', {'data-label': columns[i]}, cell)))))));
}

/**
 * facts builds a description list from [term, value] pairs; pairs whose value is empty are left out.
 * @param {[string, any][]} pairs
 */
export function facts(pairs) {
  return h('dl', {class: 'facts'}, pairs.filter(([, v]) => v !== '' && v !== null && v !== undefined)
    .map(([k, v]) => h('div', null, h('dt', null, k), h('dd', null, v))));
}

/**
 * field is a labelled form control.
 * @param {string} label
 * @param {HTMLElement} control it needs an id
 * @param {string} [hint]
 */
export function field(label, control, hint) {
  const hintEl = hint ? h('span', {class: 'hint', id: control.id + '-hint'}, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', {class: 'field'}, h('label', {for: control.id}, label), control, hintEl);
}

/**
 * pressGuard tells whether the user is pressing something inside el right now. A click is a
 * press and a release on the same element: re-drawing el in between would swallow it, so live
 * views wait while this is true.
 * @param {HTMLElement} el
 * @returns {() => boolean}
 */
export function pressGuard(el) {
  let until = 0;
  el.addEventListener('pointerdown', () => { until = Date.now() + 2000; }, true);
  el.addEventListener('click', () => { until = 0; }, true);
  el.addEventListener('pointercancel', () => { until = 0; }, true);
  return () => Date.now() < until;
}

/**
 * redraw runs draw, which replaces what el holds, and gives the focus back to the element with
 * the same id when the focus was inside el: a keyboard user keeps their place in a live view.
 * @param {HTMLElement} el
 * @param {() => void} draw
 */
export function redraw(el, draw) {
  const active = document.activeElement;
  const id = active && el.contains(active) ? active.id : '';
  draw();
  if (id) document.getElementById(id)?.focus();
}

/**
 * idCopy shows an id in code with a button that copies it. The clipboard API needs a secure
 * context (HTTPS or localhost); elsewhere the button selects the id for the user to copy.
 * @param {string} id
 */
export function idCopy(id) {
  const code = h('code', {class: 'id'}, id);
  const button = h('button', {type: 'button', class: 'copy', 'aria-label': 'Copy id ' + id, title: 'Copy id'}, 'Copy');
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(id);
      button.textContent = 'Copied';
    } catch {
      const range = document.createRange();
      range.selectNodeContents(code);
      const sel = window.getSelection();
      sel?.removeAllRanges();
      sel?.addRange(range);
      button.textContent = 'Selected';
    }
    setTimeout(() => { button.textContent = 'Copy'; }, 1500);
  });
  return h('span', {class: 'nowrap'}, code, ' ', button);
}
