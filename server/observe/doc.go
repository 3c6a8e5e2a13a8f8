// Package observe keeps the server's observations on devices: it routes notifications by token,
// stores the latest value per path, and re-establishes observations when a device registers again.
package observe
