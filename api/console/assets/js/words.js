// Plain words for codes and numbers: what support staff read instead of LwM2M resource values.

/** Update Result (/5/0/5) codes 0..11 of the Firmware Update object, in plain words. */
export const UPDATE_RESULTS = [
  'no result yet',                                           // 0 initial value
  'the firmware was updated successfully',                   // 1
  'not enough flash memory for the new firmware',            // 2
  'the device ran out of RAM while downloading',             // 3
  'the connection was lost while downloading',               // 4
  'the downloaded firmware failed its integrity check',      // 5
  'the device does not support this package type',           // 6
  'the download address (URI) was invalid',                  // 7
  'installing the firmware failed',                          // 8
  'the device does not support the download protocol',       // 9
  'the update was cancelled',                                // 10
  'the device postponed the update',                         // 11
];

/**
 * updateResult is an Update Result code in words.
 * @param {number|undefined|null} code
 */
export function updateResult(code) {
  if (code === undefined || code === null) return '';
  return UPDATE_RESULTS[code] ?? 'unknown result code ' + code;
}

/** Firmware Update State (/5/0/3) values 0..3 in words. */
export const DEVICE_STATES = ['idle', 'downloading', 'downloaded, waiting to install', 'installing'];

/** @param {number|undefined|null} code */
export function deviceState(code) {
  if (code === undefined || code === null) return '';
  return DEVICE_STATES[code] ?? 'unknown state ' + code;
}

/** Job states in words. */
export const JOB_STATES = {
  queued: 'waiting to start',
  waiting: 'waiting for the device to come online',
  delivering: 'sending the firmware',
  downloaded: 'firmware downloaded',
  updating: 'installing (the device reboots)',
  verifying: 'checking the new version',
  succeeded: 'updated',
  failed: 'failed',
  cancelled: 'cancelled',
};

/** @param {string} s */
export const jobState = (s) => JOB_STATES[s] || s;

/** @param {string} s */
export const jobActive = (s) => !['succeeded', 'failed', 'cancelled'].includes(s);

/** Campaign device states, in the order the chart stacks them, with their words. */
export const CAMPAIGN_COUNTS = [
  ['succeeded', 'updated'],
  ['already_up_to_date', 'already up to date'],
  ['in_progress', 'in progress'],
  ['pending', 'pending'],
  ['failed', 'failed'],
  ['cancelled', 'cancelled'],
];

/** Campaign states in words. */
export const CAMPAIGN_STATES = {
  draft: 'draft',
  scheduled: 'scheduled',
  running: 'running',
  paused: 'paused',
  'waiting-for-approval': 'waiting for approval',
  completed: 'completed',
  aborted: 'aborted',
  failed: 'failed',
};

/** @param {string} s */
export const campaignState = (s) => CAMPAIGN_STATES[s] || s;

/** Wave gate states in words. */
export const GATES = {
  running: 'running',
  blocked: 'blocked',
  soaking: 'soaking',
  'awaiting-approval': 'awaiting approval',
  open: 'open',
  held: 'held by a failure threshold',
};

/** Well-known LwM2M objects by id. */
export const OBJECTS = {
  0: 'Security', 1: 'Server', 2: 'Access Control', 3: 'Device', 4: 'Connectivity Monitoring',
  5: 'Firmware Update', 6: 'Location', 7: 'Connectivity Statistics', 9: 'Software Management',
  10: 'Cellular Connectivity', 11: 'APN Connection Profile', 21: 'LwM2M OSCORE',
};

/** Bindings in words. */
const BINDINGS = {U: 'UDP', T: 'TCP', S: 'SMS', N: 'Non-IP', Q: 'queue mode'};

/** @param {string} b */
export function binding(b) {
  if (!b) return '';
  return b + ' (' + [...b].map((c) => BINDINGS[c] || c).join(', ') + ')';
}

/**
 * bytes is n in B, KiB, MiB or GiB.
 * @param {number} n
 */
export function bytes(n) {
  if (n === undefined || n === null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? String(v) : v.toFixed(v < 10 ? 1 : 0)) + ' ' + units[i];
}

/** @param {number} f a fraction 0..1 */
export const percent = (f) => (f === undefined || f === null ? '' : (Math.round(f * 1000) / 10) + ' %');

/**
 * time is an RFC 3339 time as the browser's locale writes it; "" for none.
 * @param {string|undefined} t
 */
export function time(t) {
  if (!t || t.startsWith('0001-')) return '';
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return t;
  return d.toLocaleString(undefined, {dateStyle: 'medium', timeStyle: 'medium'});
}

/**
 * ago is how long ago t was: "12 s ago", "3 min ago", "5 h ago", "2 days ago".
 * @param {string|undefined} t
 * @param {number} [now]
 */
export function ago(t, now = Date.now()) {
  if (!t || t.startsWith('0001-')) return '';
  const s = Math.round((now - new Date(t).getTime()) / 1000);
  if (Number.isNaN(s)) return '';
  const abs = Math.abs(s);
  const w = abs < 90 ? abs + ' s' : abs < 5400 ? Math.round(abs / 60) + ' min' : abs < 129600 ? Math.round(abs / 3600) + ' h' : Math.round(abs / 86400) + ' days';
  return s >= 0 ? w + ' ago' : 'in ' + w;
}

/**
 * seconds is a duration in seconds in words: "1 h 30 min", "90 s".
 * @param {number} n
 */
export function seconds(n) {
  if (!n && n !== 0) return '';
  if (n < 120) return n + ' s';
  if (n < 7200) return Math.round(n / 60) + ' min';
  if (n < 172800) return (Math.round(n / 360) / 10) + ' h';
  return Math.round(n / 86400) + ' days';
}
