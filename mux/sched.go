package mux

import (
	"github.com/braidmux/braid/frame"
)

// DefaultQuantum is the DRR quantum NewScheduler uses when given 0: the
// bytes a stream of weight 1 may send per turn.
const DefaultQuantum = 16 << 10

// MaxQuantum is the largest quantum NewScheduler accepts (larger values
// are capped): the largest frame body a peer may allow. It keeps
// quantum × Weight arithmetic far from overflow.
const MaxQuantum = frame.MaxMaxFrameSize

// Where a Stream is linked.
const (
	onNone   uint8 = iota
	onRing         // the DRR ring: pending data and positive credit
	onFinQ         // the empty-FIN queue: no data, FIN pending
	onFrameQ       // the prepaid-frame queue (EnqueueFrame)
)

// Stream is the scheduler's per-stream state; the session embeds one per
// stream. The zero value is ready to use once ID is set. A Stream belongs
// to at most one Scheduler at a time.
//
// A Stream is not safe for concurrent use; it is read and changed only
// under the same lock as its Scheduler.
type Stream struct {
	// ID is the stream id written into the stream's DATA frames. It must
	// not change while the stream is queued.
	ID uint32
	// Weight is the stream's relative share of bandwidth among backlogged
	// streams; 0 means 1. A change takes effect at the stream's next turn.
	Weight uint32

	pending    []byte // payload enqueued and not yet put in a batch
	framed     []byte // a prepaid frame's payload (EnqueueFrame)
	frameFlags frame.Flags
	fin        bool  // FIN to send with the last pending byte, or alone
	credit     int64 // stream send credit
	deficit    int64 // DRR deficit; negative is debt carried to the next turn
	next, prev *Stream
	list       uint8 // onNone, onRing or onFinQ
}

// Pending returns the payload bytes enqueued on st and not yet put in a
// batch.
func (st *Stream) Pending() int { return len(st.pending) + len(st.framed) }

// Credit returns the stream send credit the scheduler believes st has:
// everything granted with AddCredit minus the payload bytes put in
// batches.
func (st *Stream) Credit() int64 { return st.credit }

// Queued reports whether st has pending data or a pending FIN, that is,
// whether the scheduler holds a reference to it and Enqueue would panic.
// Such a stream is in the scheduler's ring, or in its FIN queue, unless it
// is waiting for stream credit.
func (st *Stream) Queued() bool { return len(st.pending) > 0 || st.fin || len(st.framed) > 0 }

// quantum is the number of bytes st's turn adds to its deficit.
func (st *Stream) quantum(q int64) int64 {
	if st.Weight > 1 {
		return q * int64(st.Weight)
	}
	return q
}

// list is an intrusive circular doubly-linked list of Streams; head is the
// front, head.prev the tail.
type list struct {
	head *Stream
	n    int
}

// pushBack links st at the tail, just before head.
func (l *list) pushBack(st *Stream) {
	if l.head == nil {
		st.next, st.prev = st, st
		l.head = st
	} else {
		st.next, st.prev = l.head, l.head.prev
		l.head.prev.next = st
		l.head.prev = st
	}
	l.n++
}

// remove unlinks st; if st was the head, its successor becomes the head.
func (l *list) remove(st *Stream) {
	if st.next == st {
		l.head = nil
	} else {
		st.prev.next = st.next
		st.next.prev = st.prev
		if l.head == st {
			l.head = st.next
		}
	}
	st.next, st.prev = nil, nil
	l.n--
}

// Scheduler decides which frames go on the wire next: control frames
// first, then empty FIN frames, then DATA frames by deficit round-robin
// across streams with data and credit. See the package documentation.
//
// A Scheduler is not safe for concurrent use: the session calls every
// method with its own lock held.
type Scheduler struct {
	quantum int64
	ctl     []byte // encoded control frames, in push order
	ctlN    int    // frames in ctl
	ring    list   // DRR ring; ring.head is the stream whose turn it is
	frameq  list   // streams with a prepaid frame, FIFO
	inTurn  bool   // ring.head's current turn has started (quantum added)
	finq    list   // streams with only a FIN to send, FIFO
}

// NewScheduler returns a Scheduler with the given DRR quantum in bytes
// (DefaultQuantum if quantum <= 0; at most MaxQuantum). A quantum at least as large as the
// max payload passed to Fill keeps DATA frames full-sized; a smaller one
// gives finer interleaving at the cost of smaller frames.
func NewScheduler(quantum int) *Scheduler {
	if quantum <= 0 {
		quantum = DefaultQuantum
	}
	quantum = min(quantum, MaxQuantum)
	return &Scheduler{quantum: int64(quantum)}
}

// Enqueue hands p to be sent on st. p is aliased, not copied: the caller
// keeps it alive and unmodified until the batches containing it have been
// written. If fin is set, FlagFIN is set on the frame carrying the last
// byte of p, or, when p is empty, an empty FIN frame is sent (it needs no
// credit). Enqueue with an empty p and fin unset does nothing.
//
// Enqueue panics if st already has pending data or a pending FIN
// (st.Queued()).
func (s *Scheduler) Enqueue(st *Stream, p []byte, fin bool) {
	if st.Queued() {
		panic("mux: Enqueue on a stream that already has pending data or FIN")
	}
	if len(p) == 0 {
		if fin {
			st.fin = true
			st.list = onFinQ
			s.finq.pushBack(st)
		}
		return
	}
	st.pending = p
	st.fin = fin
	if st.credit > 0 {
		s.link(st)
	}
}

// EnqueueFrame hands p to be sent on st as exactly one DATA frame with
// the given flags (for example FlagCompressed), never cut. The caller has
// already paid for it: it takes no stream or session credit from the
// scheduler, and the caller keeps its own books. p is aliased as with
// Enqueue, must not be empty, and must be no longer than the maxPayload
// given to Fill. Prepaid frames go out after control frames and empty
// FINs, in the order they were enqueued, ahead of DRR data; a stream has
// at most one at a time.
//
// EnqueueFrame panics if st is already Queued or p is empty.
func (s *Scheduler) EnqueueFrame(st *Stream, p []byte, flags frame.Flags) {
	if st.Queued() || len(p) == 0 {
		panic("mux: EnqueueFrame on a queued stream, or with an empty payload")
	}
	st.framed = p
	st.frameFlags = flags
	st.list = onFrameQ
	s.frameq.pushBack(st)
}

// AddCredit records that the peer granted n more bytes of send credit on
// st; it is also how the initial credit is set. A negative n takes credit
// away (for example when the session's view of the window shrinks).
func (s *Scheduler) AddCredit(st *Stream, n int64) {
	st.credit += n
	if len(st.pending) == 0 {
		return
	}
	switch {
	case st.credit > 0 && st.list == onNone:
		s.link(st)
	case st.credit <= 0 && st.list == onRing:
		s.unlink(st)
	}
}

// Remove drops st's pending data and pending FIN and unlinks it from the
// scheduler, for a stream that was reset or closed. It returns the number
// of pending payload bytes dropped. Bytes already put in a batch are not
// affected. st's credit is kept.
func (s *Scheduler) Remove(st *Stream) int {
	n := len(st.pending) + len(st.framed)
	s.unlink(st)
	st.pending = nil
	st.framed = nil
	st.fin = false
	return n
}

// link puts st, which has pending data and credit, at the tail of the
// ring: it gets its turn after every stream already there.
func (s *Scheduler) link(st *Stream) {
	st.list = onRing
	s.ring.pushBack(st)
}

// unlink takes st out of whichever list it is on. A stream leaving the
// ring forfeits the rest of its turn but keeps its debt.
func (s *Scheduler) unlink(st *Stream) {
	switch st.list {
	case onRing:
		if s.ring.head == st {
			s.inTurn = false
		}
		s.ring.remove(st)
		st.deficit = min(st.deficit, 0)
	case onFinQ:
		s.finq.remove(st)
	case onFrameQ:
		s.frameq.remove(st)
	}
	st.list = onNone
}

// PushControl encodes f (with f.Append) at the end of the control queue.
// f is not retained. Control frames go out, in push order, at the start
// of the next Fill.
//
// A DATA frame pushed here overtakes any data pending in the scheduler:
// push SYN-only frames for streams that have nothing enqueued yet, and
// send a FIN with Enqueue(st, nil, true) rather than here unless st has
// nothing pending. When a stream is reset, also Remove it before the next
// Fill: the RESET goes out first, as every control frame does, and data
// still pending would follow it onto the wire.
func (s *Scheduler) PushControl(f *frame.Frame) {
	s.ctl = f.Append(s.ctl)
	s.ctlN++
}

// PushControlBytes queues one already-encoded frame (length prefix
// included), copying b. The rules of PushControl apply.
func (s *Scheduler) PushControlBytes(b []byte) {
	s.ctl = append(s.ctl, b...)
	s.ctlN++
}

// HasWork reports whether Fill, given sessionCredit, an empty batch and a
// positive maxBatch, would emit at least one frame.
func (s *Scheduler) HasWork(sessionCredit int64) bool {
	return s.ctlN > 0 || s.finq.n > 0 || s.frameq.n > 0 || (sessionCredit > 0 && s.ring.n > 0)
}

// Len returns the number of streams that Fill could currently send
// something for: those in the DRR ring (data and credit) plus those with
// only an empty FIN to send.
func (s *Scheduler) Len() int { return s.ring.n + s.finq.n + s.frameq.n }

// Fill appends frames to b: first every queued control frame, then every
// pending empty FIN frame, then DATA frames chosen by deficit round-robin,
// each cut to min(maxPayload, pending, stream credit, remaining session
// credit) and to the stream's turn (see the package documentation). It
// stops adding frames once b.Size() reaches maxBatch (the last frame may
// cross it; control frames are always all added) or nothing more is
// sendable. A stream with no credit, or every stream when sessionCredit
// is spent, is passed over; an empty FIN frame needs no credit.
//
// Fill returns the session credit used: the payload bytes of the DATA
// frames it added. The session then writes b.Buffers() with one WriteTo
// and calls b.Reset. maxPayload must be positive; Fill panics otherwise.
func (s *Scheduler) Fill(b *Batch, maxPayload int, sessionCredit int64, maxBatch int) (used int64) {
	if maxPayload <= 0 {
		panic("mux: Fill with maxPayload <= 0")
	}
	if s.ctlN > 0 {
		b.appendControl(s.ctl, s.ctlN)
		s.ctl = s.ctl[:0]
		s.ctlN = 0
	}
	for s.finq.n > 0 && b.size < maxBatch {
		st := s.finq.head
		s.finq.remove(st)
		st.list = onNone
		st.fin = false
		b.appendData(st, nil, true)
	}
	for s.frameq.n > 0 && b.size < maxBatch {
		st := s.frameq.head
		p := st.framed
		st.framed = nil
		b.appendFrame(st, p, st.frameFlags) // while st.list says onFrameQ
		s.frameq.remove(st)
		st.list = onNone
	}
	left := sessionCredit
	for s.ring.n > 0 && left > 0 && b.size < maxBatch {
		st := s.ring.head
		q := st.quantum(s.quantum)
		if !s.inTurn {
			// Debt is below one quantum unless Weight shrank; cap it so
			// the turn always has something to send.
			st.deficit = max(st.deficit, 1-q) + q
			s.inTurn = true
		}
		n := min(int64(maxPayload), int64(len(st.pending)), st.credit, left, st.deficit+q-1)
		p := st.pending[:n:n]
		st.pending = st.pending[n:]
		st.credit -= n
		st.deficit -= n
		left -= n
		fin := false
		if len(st.pending) == 0 {
			st.pending = nil
			fin = st.fin
			st.fin = false
		}
		b.appendData(st, p, fin)
		switch {
		case len(st.pending) == 0 || st.credit <= 0:
			s.unlink(st)
		case st.deficit <= 0:
			s.ring.head = st.next
			s.inTurn = false
		}
	}
	return sessionCredit - left
}
