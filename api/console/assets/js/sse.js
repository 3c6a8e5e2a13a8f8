// Server-sent events over fetch. EventSource cannot send an Authorization header and the API's
// event streams need the bearer token, so the stream is read and parsed here.

import {API, session} from './api.js';

/**
 * @typedef {{event: string, data: string}} SSEvent
 * @typedef {{signal: AbortSignal, onEvent: (e: SSEvent) => void, onState?: (state: 'open'|'retrying'|'closed', detail?: string) => void}} StreamOptions
 */

/**
 * stream reads the event stream at path (below /api/v1) until signal aborts. A dropped stream is
 * opened again after 1, 2, 4 ... 30 s; 401, 403 and 404 end it for good ("closed").
 * @param {string} path
 * @param {StreamOptions} opts
 */
export async function stream(path, {signal, onEvent, onState = () => {}}) {
  let wait = 1000;
  while (!signal.aborted) {
    try {
      const res = await fetch(API + path, {signal, cache: 'no-store',
        headers: {Accept: 'text/event-stream', Authorization: 'Bearer ' + session.token}});
      if ([401, 403, 404].includes(res.status)) {
        onState('closed', 'status ' + res.status);
        if (res.status === 401) window.dispatchEvent(new CustomEvent('lwota:unauthorized'));
        return;
      }
      if (!res.ok || !res.body) throw new Error('status ' + res.status);
      onState('open');
      wait = 1000;
      await parse(res.body, onEvent);
    } catch (e) {
      if (signal.aborted) return;
      onState('retrying', e instanceof Error ? e.message : String(e));
    }
    if (signal.aborted) return;
    onState('retrying', 'the stream ended');
    await sleep(wait, signal);
    wait = Math.min(wait * 2, 30000);
  }
}

/**
 * parse splits a text/event-stream body into events (WHATWG HTML, "Server-sent events").
 * @param {ReadableStream<Uint8Array>} body
 * @param {(e: SSEvent) => void} onEvent
 */
export async function parse(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let event = '';
  let data = [];
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    buf += value;
    let m;
    while ((m = /\r\n|\r|\n/.exec(buf)) !== null) {
      // A lone "\r" at the end of the buffer may be the first half of "\r\n": wait for more.
      if (m[0] === '\r' && m.index === buf.length - 1) break;
      const line = buf.slice(0, m.index);
      buf = buf.slice(m.index + m[0].length);
      if (line === '') {
        if (data.length) onEvent({event: event || 'message', data: data.join('\n')});
        event = '';
        data = [];
        continue;
      }
      if (line.startsWith(':')) continue; // comment: keepalive
      const i = line.indexOf(':');
      const name = i < 0 ? line : line.slice(0, i);
      let val = i < 0 ? '' : line.slice(i + 1);
      if (val.startsWith(' ')) val = val.slice(1);
      if (name === 'event') event = val;
      else if (name === 'data') data.push(val);
    }
  }
}

/**
 * @param {number} ms
 * @param {AbortSignal} signal
 */
function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(undefined); }, {once: true});
  });
}
