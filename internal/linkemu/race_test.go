//go:build race

package linkemu_test

const raceEnabled = true
