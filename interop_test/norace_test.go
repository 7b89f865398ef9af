//go:build !race

package interop_test

// raceEnabled reports whether the race detector is on; heavy cases use
// smaller sizes under it.
const raceEnabled = false
