//go:build race

package transport

// raceEnabled: the race detector allocates in the runtime's I/O and drops sync.Pool items at
// random, so allocation counts do not hold under it.
const raceEnabled = true
