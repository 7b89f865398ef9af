package flowcontrol

import "errors"

// MaxWindow is the largest credit any window may hold and the largest
// window size: 2^31-1 bytes, the protocol limit. A sender whose credit
// would exceed it has been sent a bad WINDOW_UPDATE.
const MaxWindow = 1<<31 - 1

// UpdateDivisor sets when a receiver issues a WINDOW_UPDATE: once the bytes
// consumed but not yet re-advertised reach 1/UpdateDivisor of the window
// (a quarter). Smaller fractions mean more, smaller updates; larger ones
// leave the sender with less credit in flight.
const UpdateDivisor = 4

// ShortPathUpdateDivisor replaces UpdateDivisor when the round-trip time
// passed to Consume is 0 (unknown, or too short to tune by): updates go
// out at half the window. On such a path the window covers the
// bandwidth-delay product many times over, so credit in flight matters
// less than the cost of each update, a write for the receiver and a wake
// for the sender (measured on loopback with 256 KiB windows: one stream
// 20 % faster, and less queueing in front of other streams).
const ShortPathUpdateDivisor = 2

// TuneRTTs is the auto-tuning factor: a window doubles when the reader
// consumed it at a rate higher than window/(TuneRTTs*rtt), i.e. when the
// window's worth of data was drained in fewer than TuneRTTs round trips.
const TuneRTTs = 4

// Sentinel errors; they are returned for network input, never for caller
// bugs. Match them with errors.Is.
var (
	// ErrFlowControl: the peer sent more payload than the credit granted.
	ErrFlowControl = errors.New("braid: peer exceeded flow-control window")
	// ErrWindowOverflow: a WINDOW_UPDATE would raise the credit above
	// MaxWindow.
	ErrWindowOverflow = errors.New("braid: window update overflows maximum window")
)
