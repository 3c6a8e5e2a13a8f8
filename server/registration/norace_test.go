//go:build !race

package registration_test

const raceEnabled = false
