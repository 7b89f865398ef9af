//go:build braiddebug

package session

// assertLocked panics unless s.mu is held (by some goroutine: a
// sync.Mutex has no owner, so a lock held by another goroutine passes).
// Built with -tags braiddebug; CI runs the package's tests that way.
func (s *Session) assertLocked() {
	if s.mu.TryLock() {
		s.mu.Unlock()
		panic("braid: session lock not held where it must be")
	}
}
