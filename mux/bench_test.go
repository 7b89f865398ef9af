package mux

import (
	"fmt"
	"testing"

	"github.com/braidmux/braid/frame"
)

// BenchmarkFill measures the cost of scheduling one DATA frame (ns/op and
// allocs/op are per frame) with many backlogged streams. The quantum
// equals the max payload, so every frame comes from a different stream
// and the ring is walked end to end. "frames=1" runs one Fill per frame;
// "batch=256KiB" fills batches of 16 frames, as a write loop would. Both
// include building Buffers and re-enqueueing drained streams.
func BenchmarkFill(b *testing.B) {
	for _, n := range []int{10, 1000, 100000} {
		b.Run(fmt.Sprintf("streams=%d/frames=1", n), func(b *testing.B) { benchFill(b, n, n, 1) })
		b.Run(fmt.Sprintf("streams=%d/batch=256KiB", n), func(b *testing.B) { benchFill(b, n, n, 256<<10) })
	}
	// Streams without credit cost nothing: 100 000 open, 10 can send.
	b.Run("streams=100000/ready=10/batch=256KiB", func(b *testing.B) { benchFill(b, 100000, 10, 256<<10) })
}

func benchFill(b *testing.B, open, ready, maxBatch int) {
	const maxPayload = 16 << 10
	s := newSched(maxPayload)
	backlog := make([]byte, 1<<20)
	sts := make([]tStream, open)
	for i := range sts {
		st := &sts[i]
		st.ID = uint32(2*i + 1)
		if i < ready {
			grant(b, s, st, MaxCredit)
		}
		s.Enqueue(st, backlog, false)
	}
	var batch tBatch
	frames := 0
	fill := func() {
		s.Fill(&batch, maxPayload, 1<<62, maxBatch)
		frames += len(batch.Sent())
		_ = batch.Buffers()
		for _, e := range batch.Sent() {
			if e.Stream.Credit() < MaxCredit/2 { // the peer's WINDOW_UPDATE
				grant(b, s, e.Stream, uint32(MaxCredit-e.Stream.Credit()))
			}
			if !e.Stream.Queued() {
				s.Enqueue(e.Stream, backlog, false)
			}
		}
		batch.Reset()
	}
	for range 2 * ready { // warm up: every stream's turn, buffers grown
		fill()
	}
	b.ReportAllocs()
	b.ResetTimer()
	frames = 0
	for frames < b.N {
		fill()
	}
}

// BenchmarkControl measures queueing and emitting one control frame.
func BenchmarkControl(b *testing.B) {
	s := newSched(0)
	var batch tBatch
	f := frame.Frame{Type: frame.WindowUpdate, StreamID: 12345, WindowDelta: 1 << 20}
	b.ReportAllocs()
	for b.Loop() {
		s.PushControl(&f)
		s.Fill(&batch, 16<<10, 1<<30, 64<<10)
		_ = batch.Buffers()
		batch.Reset()
	}
}
