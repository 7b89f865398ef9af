package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/braidmux/braid/session"
)

// counters are the soak's results, updated by every stream.
type counters struct {
	sessions, zstdSessions, cutSessions  atomic.Int64
	resumes                              atomic.Int64 // with -resume: connections resumed
	streams, bulkStreams, bytesVerified  atomic.Int64
	corruptions, errors                  atomic.Int64
	resetsSent, resetsSeen, serverResets atomic.Int64
	aborted                              atomic.Int64 // streams ended by their session's end

	mu       sync.Mutex
	messages []string // the first few failures, for the report
}

func (c *counters) completed(bulk bool, n int64) {
	c.streams.Add(1)
	if bulk {
		c.bulkStreams.Add(1)
	}
	c.bytesVerified.Add(n)
}

func (c *counters) note(msg string) {
	c.mu.Lock()
	if len(c.messages) < 20 {
		c.messages = append(c.messages, msg)
	}
	c.mu.Unlock()
	fmt.Println("soak:", msg)
}

func (c *counters) corruption(msg string) {
	c.corruptions.Add(1)
	c.note("CORRUPTION: " + msg)
}

func (c *counters) unexpected(msg string) {
	c.errors.Add(1)
	c.note("unexpected: " + msg)
}

// clientError records a client stream's failure: explained if its session
// has ended, unexpected otherwise.
func (c *counters) clientError(err error, cli *session.Session) {
	if sessionOver(err, cli) {
		c.aborted.Add(1)
		return
	}
	c.unexpected("client stream: " + describe(err))
}

// serverError records a server stream's failure: a reset the client asked
// for, the session's end, or unexpected.
func (c *counters) serverError(err error, srv *session.Session, closing *closingFlag) {
	var se *session.StreamError
	switch {
	case errors.As(err, &se) && se.Remote && se.Code == codeClientReset:
		c.serverResets.Add(1)
	case sessionOver(err, srv), closing.get():
	default:
		c.unexpected("server stream: " + describe(err))
	}
}

func (c *counters) line() string {
	return fmt.Sprintf("sessions %d (zstd %d, cut %d), streams %d (bulk %d), verified %s, corruptions %d, resets %d, aborted %d, errors %d",
		c.sessions.Load(), c.zstdSessions.Load(), c.cutSessions.Load(), c.streams.Load(), c.bulkStreams.Load(),
		mib(uint64(c.bytesVerified.Load())), c.corruptions.Load(), c.resetsSent.Load()+c.resetsSeen.Load(), c.aborted.Load(), c.errors.Load())
}

func (c *counters) report(m *memWatch) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("sessions:           %d (%d with zstd, %d ended by a cut, %d cuts resumed)", c.sessions.Load(), c.zstdSessions.Load(), c.cutSessions.Load(), c.resumes.Load())
	p("streams completed:  %d (%d bulk), every one SHA-256-checked", c.streams.Load(), c.bulkStreams.Load())
	p("bytes verified:     %s", mib(uint64(c.bytesVerified.Load())))
	p("corruptions:        %d", c.corruptions.Load())
	p("resets seen:        %d (client reset %d, the server saw %d of them; server reset %d, the client saw them)",
		c.resetsSent.Load()+c.resetsSeen.Load(), c.resetsSent.Load(), c.serverResets.Load(), c.resetsSeen.Load())
	p("streams cut short:  %d (their session ended)", c.aborted.Load())
	p("unexpected errors:  %d", c.errors.Load())
	m.mu.Lock()
	p("peak heap:          %s (HeapAlloc, sampled every second)", mib(m.peak))
	p("heap, first minute: peak %s", mib(m.firstMinute))
	p("heap, last minute:  peak %s", mib(m.lastMinute()))
	m.mu.Unlock()
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC() // and the pools' victim caches
	runtime.ReadMemStats(&ms)
	p("heap at end:        %s after GC", mib(ms.HeapAlloc))
	c.mu.Lock()
	for _, msg := range c.messages {
		p("  %s", msg)
	}
	c.mu.Unlock()
	return b.String()
}

func mib(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	default:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
}

// memWatch samples the heap every second and prints a line every minute.
type memWatch struct {
	start time.Time

	mu          sync.Mutex
	peak        uint64
	firstMinute uint64
	recent      []heapSample // the last minute's samples
}

type heapSample struct {
	at   time.Time
	heap uint64
}

func newMemWatch(start time.Time) *memWatch { return &memWatch{start: start} }

func (m *memWatch) sample(now time.Time) uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h := ms.HeapAlloc
	m.mu.Lock()
	defer m.mu.Unlock()
	m.peak = max(m.peak, h)
	if now.Sub(m.start) <= time.Minute {
		m.firstMinute = max(m.firstMinute, h)
	}
	m.recent = append(m.recent, heapSample{now, h})
	i := 0
	for i < len(m.recent) && now.Sub(m.recent[i].at) > time.Minute {
		i++
	}
	m.recent = append(m.recent[:0], m.recent[i:]...)
	return h
}

// lastMinute is the peak of the last minute's samples. Called with m.mu
// held.
func (m *memWatch) lastMinute() uint64 {
	var h uint64
	for _, s := range m.recent {
		h = max(h, s.heap)
	}
	return h
}

func (m *memWatch) run(ctx context.Context, c *counters) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	next := m.start.Add(time.Minute)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			h := m.sample(now)
			if !now.Before(next) {
				next = next.Add(time.Minute)
				m.mu.Lock()
				peak := m.peak
				m.mu.Unlock()
				fmt.Printf("[%v] %s; heap %s (peak %s), goroutines %d\n",
					now.Sub(m.start).Round(time.Second), c.line(), mib(h), mib(peak), runtime.NumGoroutine())
			}
		}
	}
}
