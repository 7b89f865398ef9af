package flowcontrol

import "fmt"

// SendWindow is the credit this side may still spend sending on one stream
// (or on the whole session). The zero value has no credit.
//
// A SendWindow is not safe for concurrent use: the caller serializes all
// method calls (the session holds the stream's lock). It is a plain value
// of two offsets; copying it copies the state.
//
// Invariant: Sent() <= Limit() and Available() <= MaxWindow.
type SendWindow struct {
	sent  uint64 // bytes taken so far
	limit uint64 // offset the peer allows us to send up to
}

// NewSendWindow returns a SendWindow holding initial bytes of credit, the
// window the peer announced. It panics if initial exceeds MaxWindow; the
// caller must reject such a peer setting as a protocol error first.
func NewSendWindow(initial uint32) SendWindow {
	if initial > MaxWindow {
		panic(fmt.Sprintf("flowcontrol: initial send window %d exceeds MaxWindow", initial))
	}
	return SendWindow{limit: uint64(initial)}
}

// Available returns the credit left: how many bytes may be sent now. It is
// never negative.
func (w *SendWindow) Available() int64 { return int64(w.limit - w.sent) }

// Take spends n bytes of credit. It panics if n is negative or more than
// Available: the caller must never send beyond its credit.
func (w *SendWindow) Take(n int) {
	if n < 0 || uint64(n) > w.limit-w.sent {
		panic(fmt.Sprintf("flowcontrol: Take(%d) with %d bytes of credit", n, w.limit-w.sent))
	}
	w.sent += uint64(n)
}

// Add applies a WINDOW_UPDATE from the peer, raising the credit by delta.
// If the credit would exceed MaxWindow it returns ErrWindowOverflow and
// leaves the window unchanged. A delta of 0 is accepted and changes
// nothing; whether it is a protocol error is the session's decision.
func (w *SendWindow) Add(delta uint32) error {
	if w.limit-w.sent+uint64(delta) > MaxWindow {
		return ErrWindowOverflow
	}
	w.limit += uint64(delta)
	return nil
}

// Return gives back n bytes taken with Take that were never sent (a
// frame dropped from the queue): the send offset moves back by n. It
// panics if n is negative or more than Sent. The peer counts only bytes
// that reached it, so after Return both sides agree on the credit again;
// it cannot fail the way Add can.
func (w *SendWindow) Return(n int) {
	if n < 0 || uint64(n) > w.sent {
		panic(fmt.Sprintf("flowcontrol: Return(%d) with %d bytes sent", n, w.sent))
	}
	w.sent -= uint64(n)
}

// Sent returns the total bytes taken so far: the send offset.
func (w *SendWindow) Sent() uint64 { return w.sent }

// Limit returns the offset the peer has allowed sending up to: the initial
// window plus every delta added. Available() == Limit() - Sent().
func (w *SendWindow) Limit() uint64 { return w.limit }
