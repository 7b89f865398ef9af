package mux

import (
	"net"

	"github.com/braidmux/braid/frame"
)

// Sent records one DATA frame put in a Batch: N payload bytes of Stream,
// and whether the frame carries FlagFIN. The session uses it to wake
// blocked writers and to keep its flow-control books.
type Sent[T any] struct {
	Stream  *Stream[T]
	N       int
	Fin     bool
	Prepaid bool // an EnqueueFrame frame: credit prepaid with TakeCredit, Fill took none
}

// Batch is a set of frames for one vectored write, filled by
// Scheduler.Fill. Its zero value is ready to use; reuse it across writes
// (Reset in between) so its buffers stop growing and nothing allocates.
//
// The Batch owns the header and control-frame bytes in an arena of its
// own; payloads are referenced from the slices given to
// Scheduler.Enqueue, not copied.
//
// A Batch is not safe for concurrent use. While its Buffers are being
// written it must not be filled or reset.
type Batch[T any] struct {
	arena  []byte      // control frames and DATA headers, in wire order
	segs   []segment   // payloads, each after the arena bytes before it
	bufs   net.Buffers // backing array for Buffers
	sent   []Sent[T]
	size   int
	frames int
}

// segment is one payload slice, preceded on the wire by the arena bytes
// from the previous segment's arenaEnd up to its own. Offsets rather than
// slices of arena keep it valid while the arena grows.
type segment struct {
	arenaEnd int
	payload  []byte
}

// appendControl adds n encoded control frames.
func (b *Batch[T]) appendControl(p []byte, n int) {
	b.arena = append(b.arena, p...)
	b.size += len(p)
	b.frames += n
}

// appendData adds one DATA frame for st carrying p (aliased).
func (b *Batch[T]) appendData(st *Stream[T], p []byte, fin bool) {
	var flags frame.Flags
	if fin {
		flags = frame.FlagFIN
	}
	b.appendFrame(st, p, flags)
}

// appendFrame adds one DATA frame for st with flags, carrying p (aliased).
func (b *Batch[T]) appendFrame(st *Stream[T], p []byte, flags frame.Flags) {
	fin := flags.Has(frame.FlagFIN)
	before := len(b.arena)
	b.arena = frame.AppendDataHeader(b.arena, st.ID, flags, len(p))
	if len(p) > 0 {
		b.segs = append(b.segs, segment{arenaEnd: len(b.arena), payload: p})
	}
	b.size += len(b.arena) - before + len(p)
	b.frames++
	b.sent = append(b.sent, Sent[T]{Stream: st, N: len(p), Fin: fin, Prepaid: st.list == onFrameQ})
}

// Buffers returns the batch's bytes in wire order: runs of header and
// control bytes from the arena interleaved with payload slices. Write it
// with one WriteTo. It is valid until the batch is next filled or Reset.
//
// The returned net.Buffers is a copy of a slice header over the Batch's
// own backing array, so WriteTo consuming it does no harm; each call
// rebuilds that array, which invalidates earlier results.
func (b *Batch[T]) Buffers() net.Buffers {
	bufs := b.bufs[:0]
	start := 0
	for _, sg := range b.segs {
		if sg.arenaEnd > start {
			bufs = append(bufs, b.arena[start:sg.arenaEnd:sg.arenaEnd])
			start = sg.arenaEnd
		}
		bufs = append(bufs, sg.payload)
	}
	if len(b.arena) > start {
		bufs = append(bufs, b.arena[start:len(b.arena):len(b.arena)])
	}
	b.bufs = bufs
	return bufs
}

// Sent returns one entry per DATA frame in the batch (payload or FIN), in
// wire order. It is valid until Reset.
func (b *Batch[T]) Sent() []Sent[T] { return b.sent }

// Size returns the total number of bytes in the batch.
func (b *Batch[T]) Size() int { return b.size }

// Frames returns the number of frames in the batch, control frames
// included.
func (b *Batch[T]) Frames() int { return b.frames }

// Reset empties the batch for reuse, keeping its buffers. It drops the
// batch's references to payloads and streams so they can be collected.
func (b *Batch[T]) Reset() {
	clear(b.segs)
	clear(b.sent)
	clear(b.bufs)
	b.arena = b.arena[:0]
	b.segs = b.segs[:0]
	b.sent = b.sent[:0]
	b.bufs = b.bufs[:0]
	b.size = 0
	b.frames = 0
}
