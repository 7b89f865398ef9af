package flowcontrol

import (
	"fmt"
	"math/bits"
	"time"
)

// RecvWindow is the receive side of one stream, or of the whole session
// (stream 0, where it bounds the bytes buffered across all streams). It
// decides when to send a WINDOW_UPDATE and how large, rejects data beyond
// the credit granted, and auto-tunes its size (see the package doc).
//
// A RecvWindow is not safe for concurrent use: the caller serializes all
// method calls, and those of the Budget it passes in. Copying a RecvWindow
// copies its state, including the growth it holds from a Budget; only one
// copy may be Closed.
//
// Invariants, checked by the panics documented on each method:
//
//	Consumed() <= Received() <= Granted() <= Consumed() + Window()
//	initial <= Window() <= max <= MaxWindow, Window() = initial + Reserved() until Close
//
// except that after Shrink, Granted() may exceed Consumed() + Window()
// (credit is never taken back) until the application has consumed enough.
type RecvWindow struct {
	received      uint64        // payload bytes the peer has sent
	consumed      uint64        // bytes the application has read
	granted       uint64        // offset the peer may send up to
	epochConsumed uint64        // consumed when the tuning epoch started
	epochStart    time.Duration // when the tuning epoch started, as since(now)
	window        uint32        // current window size
	max           uint32        // the window never grows beyond max
	reserved      uint32        // growth beyond the initial window, held from a Budget
	closed        bool          // Close was called: reserved is 0 and stays 0
}

// NewRecvWindow returns a window granting initial bytes of credit that may
// grow up to max; now starts the first tuning epoch. It panics unless
// 0 < initial <= max <= MaxWindow (sizes come from the local
// configuration, validated by the caller). Set max == initial for a window
// that never grows.
func NewRecvWindow(initial, max uint32, now time.Time) RecvWindow {
	if initial == 0 || initial > max || max > MaxWindow {
		panic(fmt.Sprintf("flowcontrol: bad receive window sizes: initial %d, max %d", initial, max))
	}
	return RecvWindow{
		granted:    uint64(initial),
		epochStart: since(now),
		window:     initial,
		max:        max,
	}
}

// Receive records n payload bytes arriving from the peer. If n is more
// than Credit it returns an error wrapping ErrFlowControl and leaves the
// window unchanged; the session should treat it as a protocol violation.
// Receiving exactly Credit bytes is allowed. It panics if n is negative.
func (w *RecvWindow) Receive(n int) error {
	if n < 0 {
		panic(fmt.Sprintf("flowcontrol: Receive(%d)", n))
	}
	if credit := w.granted - w.received; uint64(n) > credit {
		return fmt.Errorf("%w: received %d bytes with %d bytes of credit at offset %d",
			ErrFlowControl, n, credit, w.received)
	}
	w.received += uint64(n)
	return nil
}

// Consume records that the application has read (or the session has
// discarded) n buffered bytes, and returns the delta of a WINDOW_UPDATE to
// send now, or 0 if none is due.
//
// An update is due once the bytes consumed but not yet re-advertised reach
// Window()/UpdateDivisor (Window()/ShortPathUpdateDivisor if rtt <= 0). Before computing it, Consume applies the
// auto-tuning rule (package doc), which may double the window, paying for
// the growth from b. rtt is the current round-trip estimate; rtt <= 0 means
// unknown, and then the window does not grow. b may be nil: no growth.
// After Close, the window no longer grows. now must not go backwards
// between calls; if it does, the window does not grow.
//
// Consume panics if n is negative or more than Buffered.
func (w *RecvWindow) Consume(n int, now time.Time, rtt time.Duration, b *Budget) uint32 {
	if n < 0 || uint64(n) > w.received-w.consumed {
		panic(fmt.Sprintf("flowcontrol: Consume(%d) with %d bytes buffered", n, w.received-w.consumed))
	}
	w.consumed += uint64(n)
	pending := w.pending()
	if pending == 0 || pending < uint64(w.window/updateDivisor(rtt)) {
		return 0
	}
	w.tune(now, rtt, b)
	delta := w.pending() // <= window <= MaxWindow
	w.granted += delta
	return uint32(delta)
}

// pending returns the credit an update would give now: what brings the
// peer's credit, counted from consumed, back up to the window. It is 0
// while more is granted than that (after Shrink).
func (w *RecvWindow) pending() uint64 {
	if top := w.consumed + uint64(w.window); top > w.granted {
		return top - w.granted
	}
	return 0
}

// Shrink sets the window back to its initial size, returning its growth
// to b (the Budget passed to Consume), and starts a new tuning epoch at
// now: a session shrinks a stream's window when its data starts to queue
// in front of other streams' messages, so that what it regrows to is
// judged afresh. Credit already granted is not taken back: no update is
// due until the application has consumed past it. Shrink panics where
// Close does (growth held and b nil, or b the wrong Budget). After Close
// it changes nothing.
func (w *RecvWindow) Shrink(now time.Time, b *Budget) {
	if w.reserved == 0 {
		return
	}
	if b == nil {
		panic("flowcontrol: Shrink(nil) on a window holding budget")
	}
	b.Release(int64(w.reserved))
	w.window -= w.reserved
	w.reserved = 0
	w.epochStart = since(now)
	w.epochConsumed = w.consumed
}

// ConsumeLimited is Consume for a moment when the peer should have at
// most limit bytes of credit outstanding on this window (limit below
// Window(); a larger limit changes nothing): updates bring the credit
// back up to limit rather than to Window(), and are due once a
// 1/ShortPathUpdateDivisor of limit is to be re-advertised. The window
// keeps its size, so the first Consume after the limit is lifted restores
// the full credit. A session uses it to keep less of a bulk stream's data
// in flight, ahead of other streams' messages, while they are active.
// It does not tune. It panics as Consume does.
func (w *RecvWindow) ConsumeLimited(n int, limit uint32) uint32 {
	if limit >= w.window {
		return w.Consume(n, time.Time{}, 0, nil)
	}
	if n < 0 || uint64(n) > w.received-w.consumed {
		panic(fmt.Sprintf("flowcontrol: Consume(%d) with %d bytes buffered", n, w.received-w.consumed))
	}
	w.consumed += uint64(n)
	target := w.consumed + uint64(limit) // <= consumed + window: the invariant holds
	if target <= w.granted || target-w.granted < uint64(limit/ShortPathUpdateDivisor) {
		return 0
	}
	delta := target - w.granted
	w.granted = target
	return uint32(delta)
}

// UpdateDue reports whether Consume(n, now, rtt, b) would return a window
// update, so a caller can skip reading the clock when none is due. It
// changes nothing.
func (w *RecvWindow) UpdateDue(n int, rtt time.Duration) bool {
	top := w.consumed + uint64(n) + uint64(w.window)
	return top > w.granted && top-w.granted >= uint64(w.window/updateDivisor(rtt))
}

// updateDivisor is UpdateDivisor, or ShortPathUpdateDivisor when rtt is
// not positive.
func updateDivisor(rtt time.Duration) uint32 {
	if rtt <= 0 {
		return ShortPathUpdateDivisor
	}
	return UpdateDivisor
}

// tune applies the auto-tuning rule at a window update.
func (w *RecvWindow) tune(now time.Time, rtt time.Duration, b *Budget) {
	inEpoch := w.consumed - w.epochConsumed
	if inEpoch <= uint64(w.window/2) {
		return // too little consumed to judge the rate: keep the epoch running
	}
	// Grow only if the window is what limits the flow: the reader drained
	// it fast (drainedFast) and is keeping up (little is left unread). A
	// reader that drains a backlog in bursts is the bottleneck itself;
	// a bigger window would only queue more data in front of other
	// streams.
	keepingUp := w.Buffered() <= int(w.window/UpdateDivisor)
	if rtt > 0 && b != nil && !w.closed && w.window < w.max && keepingUp && w.drainedFast(now, rtt, inEpoch) {
		grow := min(w.window, w.max-w.window) // double, capped by max
		if b.Reserve(int64(grow)) {
			w.window += grow
			w.reserved += grow
		}
	}
	w.epochStart = since(now)
	w.epochConsumed = w.consumed
}

// clockBase is the origin of since: a RecvWindow keeps an offset from it
// (8 bytes) rather than a time.Time (24), because a session holds one per
// stream.
var clockBase = time.Now()

// since returns t as an offset from clockBase, on the monotonic clock
// when t has one.
func since(t time.Time) time.Duration { return t.Sub(clockBase) }

// drainedFast reports whether now - epochStart < TuneRTTs*rtt*inEpoch/window,
// computed exactly as elapsed*window < TuneRTTs*rtt*inEpoch in 128 bits.
func (w *RecvWindow) drainedFast(now time.Time, rtt time.Duration, inEpoch uint64) bool {
	elapsed := since(now) - w.epochStart
	if elapsed < 0 {
		return false
	}
	// inEpoch is below 2*window < 2^32 (the epoch is judged at the first
	// update after half a window), so TuneRTTs*inEpoch does not overflow.
	lhsHi, lhsLo := bits.Mul64(uint64(elapsed), uint64(w.window))
	rhsHi, rhsLo := bits.Mul64(uint64(rtt), TuneRTTs*inEpoch)
	return lhsHi < rhsHi || lhsHi == rhsHi && lhsLo < rhsLo
}

// Window returns the current window size: the credit the peer is brought
// back up to, counted from Consumed, at each update.
func (w *RecvWindow) Window() uint32 { return w.window }

// Buffered returns the bytes received but not yet consumed:
// Received() - Consumed(). It never exceeds Window(), or after Shrink
// the window before it.
func (w *RecvWindow) Buffered() int { return int(w.received - w.consumed) }

// Credit returns the bytes the peer may still send: Granted() - Received().
// It is never negative.
func (w *RecvWindow) Credit() int64 { return int64(w.granted - w.received) }

// Received returns the total payload bytes received: the receive offset.
func (w *RecvWindow) Received() uint64 { return w.received }

// Consumed returns the total bytes consumed: the read offset.
func (w *RecvWindow) Consumed() uint64 { return w.consumed }

// Granted returns the offset the peer has been allowed to send up to: the
// initial window plus every delta Consume returned.
func (w *RecvWindow) Granted() uint64 { return w.granted }

// Reserved returns the bytes of growth this window holds from a Budget:
// Window() minus the initial window, or 0 after Close.
func (w *RecvWindow) Reserved() uint32 { return w.reserved }

// Close releases the growth this window reserved back to b, which must be
// the Budget passed to Consume. It is idempotent: only the first call
// releases anything. After Close the window keeps its size and accounting
// (Receive and Consume still work) but no longer grows. Close panics if
// growth is held and b is nil, or if b holds less than was reserved (a
// different Budget).
func (w *RecvWindow) Close(b *Budget) {
	if w.reserved > 0 { // 0 after the first Close: idempotent
		if b == nil {
			panic("flowcontrol: Close(nil) on a window holding budget")
		}
		b.Release(int64(w.reserved))
	}
	w.reserved = 0
	w.closed = true
}
