package session

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test (or example) leaves a goroutine
// behind: every session's reader, writer and timers must be gone once the
// session is closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
