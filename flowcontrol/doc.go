// Package flowcontrol is braid's flow-control arithmetic: the credit a
// sender may still spend (SendWindow), the receive window of one stream or
// of the whole session (RecvWindow), and the session-wide Budget that pays
// for receive windows growing beyond their initial size.
//
// The package is pure: no goroutines, no locks, no I/O and no clock. The
// caller (package session) serializes access to each value and passes the
// current time and round-trip time in. Every type is a small value type
// meant to be embedded in a larger struct; none allocates.
//
// # Model
//
// Both directions are tracked as byte offsets from the start of the stream,
// as uint64, so that a resumed session can exchange them later:
//
//	sender:   Sent() <= Limit()                      credit = Limit() - Sent()
//	receiver: Consumed() <= Received() <= Granted() <= Consumed() + Window()
//
// Granted is the offset the receiver has allowed the peer to send up to:
// the initial window plus every WINDOW_UPDATE delta it has issued. A peer
// that sends past it violates flow control (RecvWindow.Receive returns
// ErrFlowControl). Because the sender only learns of a grant after the
// receiver issued it, the sender's Limit never exceeds the receiver's
// Granted, and its credit never exceeds MaxWindow.
//
// # Window updates
//
// The receiver issues a WINDOW_UPDATE once the bytes consumed but not yet
// re-advertised reach 1/UpdateDivisor of the window (1/ShortPathUpdateDivisor
// when no round-trip time is given: a path too short to tune on, where
// fewer updates matter more than credit in flight). The delta brings the
// peer's credit, counted from what the application has consumed, back up
// to the full (possibly grown) window.
//
// # Auto-tuning
//
// A receive window starts at its initial size and doubles, up to its
// maximum, when the application drains it quickly compared to the round
// trip time. The rule follows quic-go: an epoch starts when the window is
// created and after each decision. At a window update, once more than half
// a window has been consumed in the current epoch, the window doubles if
//
//	now - epochStart < TuneRTTs * rtt * consumedInEpoch / window
//
// that is, if the reader is consuming faster than window/(TuneRTTs*rtt),
// which means the window, not the reader, limits throughput — provided
// the reader is also keeping up: if more than window/UpdateDivisor bytes
// are still unread after the consume, the reader is draining a backlog in
// bursts, it is the bottleneck itself, and the window does not grow
// (growing it would only queue more data in front of other streams).
// Then a new epoch starts. The growth (the window minus its initial size) is reserved
// from a Budget shared by the session, all or nothing; if the Budget cannot
// pay, the window keeps its size. Windows shrink only when the caller
// says so (RecvWindow.Shrink, back to the initial size; credit already
// granted stays granted). RecvWindow.Close gives the growth back.
//
// # Errors and panics
//
// Errors are for network input: a peer sending beyond its credit
// (ErrFlowControl) or granting credit beyond MaxWindow (ErrWindowOverflow).
// Panics are for caller bugs: spending more credit than available,
// consuming more than was received, releasing more budget than reserved,
// or constructing a window with out-of-range sizes. Each method documents
// which.
package flowcontrol
