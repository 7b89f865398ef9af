package flowcontrol

import (
	"testing"
	"time"
)

// BenchmarkReceiveConsume is the receive path per DATA frame: account
// 16 KiB, the application reads it, and a WINDOW_UPDATE is computed
// (a quarter of the time) with auto-tuning on.
func BenchmarkReceiveConsume(b *testing.B) {
	budget := NewBudget(1 << 30)
	w := NewRecvWindow(256<<10, 16<<20, t0)
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Receive(16 << 10); err != nil {
			b.Fatal(err)
		}
		now = now.Add(time.Microsecond)
		w.Consume(16<<10, now, 50*time.Millisecond, &budget)
	}
}

// BenchmarkCycle is one frame end to end: the sender takes credit, the
// receiver accepts and consumes the bytes, and any update is applied to
// the sender.
func BenchmarkCycle(b *testing.B) {
	budget := NewBudget(1 << 30)
	r := NewRecvWindow(256<<10, 16<<20, t0)
	s := NewSendWindow(256 << 10)
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		n := int(min(s.Available(), 16<<10))
		s.Take(n)
		if err := r.Receive(n); err != nil {
			b.Fatal(err)
		}
		now = now.Add(time.Microsecond)
		if d := r.Consume(n, now, 50*time.Millisecond, &budget); d > 0 {
			if err := s.Add(d); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkSendTakeAdd is the send path: spend credit, receive an update.
func BenchmarkSendTakeAdd(b *testing.B) {
	s := NewSendWindow(256 << 10)
	b.ReportAllocs()
	for b.Loop() {
		s.Take(16 << 10)
		if err := s.Add(16 << 10); err != nil {
			b.Fatal(err)
		}
	}
}
