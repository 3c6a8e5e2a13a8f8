// Package audit is lwota's audit log: who did what to which target, when, from where and with
// what outcome. The API records every mutating call; update jobs and campaigns record their state
// changes through the same Recorder.
package audit
