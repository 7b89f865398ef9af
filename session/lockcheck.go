//go:build !braiddebug

package session

// assertLocked checks that s.mu is held in builds with -tags braiddebug
// (lockcheck_debug.go); here it does nothing and costs nothing.
func (s *Session) assertLocked() {}
