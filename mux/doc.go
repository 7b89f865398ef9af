// Package mux is braid's write scheduler: it decides which frame goes on
// the wire next.
//
// A Scheduler holds two kinds of work. Control frames (WINDOW_UPDATE,
// PING, RESET, GOAWAY, and SYN-only DATA frames the session sends to open
// a stream) are queued as encoded bytes with PushControl or
// PushControlBytes. Stream data is handed over per stream with Enqueue,
// or as one whole prepaid frame with EnqueueFrame; the payload slice is
// aliased, never copied.
//
// Scheduler, Stream, Batch and Sent take a type parameter T: the type of
// Stream.Owner, which the caller sets to its own stream so that a Sent
// entry leads back to it. The scheduler never looks at Owner.
//
// Fill builds one Batch, suitable for a single vectored write
// (net.Buffers): first every queued control frame, then every pending
// empty FIN frame, then every prepaid frame, then DATA frames chosen by
// deficit round-robin (DRR) over the streams that have both data and
// credit. A control frame is
// therefore never queued behind more data than the one batch that is being
// written when it is pushed; the session bounds that with Fill's maxBatch.
//
// # Deficit round-robin
//
// Streams with pending data and positive stream credit sit in a ring.
// When a stream's turn starts its deficit grows by its quantum (the
// Scheduler's quantum times the stream's Weight) and the stream sends
// frames while the deficit is positive; each DATA frame is cut to
//
//	min(maxPayload, pending, stream credit, session credit left, deficit+quantum-1)
//
// (a stream alone in the ring is not held to its deficit: it gets frames
// of maxPayload), and subtracted from the deficit. A frame may overdraw
// the deficit; the
// debt (always less than one quantum) carries into the stream's next turn,
// so over many turns every backlogged stream gets bytes in proportion to
// its weight, and every turn sends at least one frame. A quantum at least
// as large as maxPayload keeps frames full-sized. A stream whose data runs
// out, or whose credit drops to zero, leaves the ring (keeping any debt)
// and rejoins at the tail when it has both again. A turn interrupted
// because the batch is full or the session credit is spent resumes at the
// next Fill.
//
// Every operation is O(1), and Fill does O(1) work per frame it emits,
// however many streams are open: streams without credit are not in the
// ring, and empty FIN frames wait in their own queue. In steady state,
// once a Batch's buffers have grown to the batch size, nothing allocates.
//
// # Credit
//
// A Stream's send credit is kept by the scheduler and nowhere else. It
// grows with AddCredit (the initial window and every WINDOW_UPDATE; a
// grant that would raise it above MaxCredit, 2^31-1, is refused with
// ErrCreditOverflow) and with ReturnCredit (credit given back for a
// prepaid frame dropped unsent, saturating at MaxCredit). It shrinks
// when Fill puts round-robin DATA in a batch and when TakeCredit prepays
// a frame for EnqueueFrame. It is never negative and never above
// MaxCredit. Session credit is the caller's: it passes what is available
// to Fill and HasWork, and Fill returns how much it used.
//
// # Ownership
//
// A Batch owns the bytes of frame headers and control frames; payloads in
// Batch.Buffers alias the slices given to Enqueue. The caller keeps each
// such slice alive and unmodified until every batch containing part of it
// has been written (Batch.Sent tells which bytes went into a batch).
//
// # Concurrency
//
// Nothing in this package is safe for concurrent use. The session calls
// every method of a Scheduler, its Streams and its Batches with its own
// lock held (or from a single goroutine). The package starts no
// goroutines, takes no locks, does no I/O and reads no clock.
package mux
