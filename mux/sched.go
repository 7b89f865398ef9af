package mux

import (
	"errors"

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

// MaxCredit is the most stream send credit a Stream can hold: 2^31-1,
// the largest window the protocol allows.
const MaxCredit = 1<<31 - 1

// ErrCreditOverflow is returned by AddCredit when a grant would raise a
// stream's credit above MaxCredit. For a WINDOW_UPDATE from the peer it
// is a protocol error.
var ErrCreditOverflow = errors.New("mux: stream credit would exceed 2^31-1")

// Stream is the scheduler's per-stream state. Owner is the caller's own
// stream (the session's *Stream) so that a Sent entry leads back to it
// without a lookup. The zero value is ready to use once ID (and Owner)
// are set. A Stream belongs to at most one Scheduler at a time.
//
// The Stream's send credit is kept here and nowhere else: it changes only
// through the Scheduler's AddCredit, TakeCredit and ReturnCredit and
// through Fill, and it always stays within [0, MaxCredit].
//
// A Stream is not safe for concurrent use; it is read and changed only
// under the same lock as its Scheduler.
type Stream[T any] struct {
	// ID is the stream id written into the stream's DATA frames. It must
	// not change while the stream is queued.
	ID uint32
	// Weight is the stream's relative share of bandwidth among backlogged
	// streams; 0 means 1. A change takes effect at the stream's next turn.
	Weight uint32
	// Owner is whatever the caller attaches to the stream; the scheduler
	// never looks at it.
	Owner T

	pending    []byte // payload enqueued and not yet put in a batch; a prepaid frame's (EnqueueFrame) while list is onFrameQ
	frameFlags uint16 // the prepaid frame's flags (frame.Flags below 2^16)
	fin        bool   // FIN to send with the last pending byte, or alone
	list       uint8  // onNone, onRing, onFinQ or onFrameQ
	credit     int32  // stream send credit, in [0, MaxCredit]; int32 keeps Stream small
	deficit    int64  // DRR deficit; negative is debt carried to the next turn
	next, prev *Stream[T]
}

// Pending returns the payload bytes enqueued on st and not yet put in a
// batch.
func (st *Stream[T]) Pending() int { return len(st.pending) }

// Credit returns st's stream send credit: everything granted with
// AddCredit and given back with ReturnCredit, minus what TakeCredit took
// and the payload bytes Fill put in batches (prepaid frames excepted). It
// is always within [0, MaxCredit].
func (st *Stream[T]) Credit() int64 { return int64(st.credit) }

// Queued reports whether st has pending data, a pending prepaid frame or
// a pending FIN, that is, whether the scheduler holds a reference to it
// and Enqueue would panic. Such a stream is in the scheduler's ring, its
// FIN queue or its prepaid-frame queue, unless it has data and is waiting
// for stream credit.
func (st *Stream[T]) Queued() bool { return len(st.pending) > 0 || st.fin }

// quantum is the number of bytes st's turn adds to its deficit.
func (st *Stream[T]) quantum(q int64) int64 {
	if st.Weight > 1 {
		return q * int64(st.Weight)
	}
	return q
}

// list is an intrusive circular doubly-linked list of Streams; head is the
// front, head.prev the tail.
type list[T any] struct {
	head *Stream[T]
	n    int
}

// pushBack links st at the tail, just before head.
func (l *list[T]) pushBack(st *Stream[T]) {
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
func (l *list[T]) remove(st *Stream[T]) {
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
type Scheduler[T any] struct {
	quantum int64
	ctl     []byte  // encoded control frames, in push order
	ctlN    int     // frames in ctl
	ring    list[T] // DRR ring; ring.head is the stream whose turn it is
	frameq  list[T] // streams with a prepaid frame, FIFO
	inTurn  bool    // ring.head's current turn has started (quantum added)
	finq    list[T] // streams with only a FIN to send, FIFO
}

// NewScheduler returns a Scheduler with the given DRR quantum in bytes
// (DefaultQuantum if quantum <= 0; at most MaxQuantum). A quantum at least as large as the
// max payload passed to Fill keeps DATA frames full-sized; a smaller one
// gives finer interleaving at the cost of smaller frames.
func NewScheduler[T any](quantum int) *Scheduler[T] {
	if quantum <= 0 {
		quantum = DefaultQuantum
	}
	quantum = min(quantum, MaxQuantum)
	return &Scheduler[T]{quantum: int64(quantum)}
}

// Enqueue hands p to be sent on st. p is aliased, not copied: the caller
// keeps it alive and unmodified until the batches containing it have been
// written. If fin is set, FlagFIN is set on the frame carrying the last
// byte of p, or, when p is empty, an empty FIN frame is sent (it needs no
// credit). Enqueue with an empty p and fin unset does nothing.
//
// Enqueue panics if st already has pending data or a pending FIN
// (st.Queued()).
func (s *Scheduler[T]) Enqueue(st *Stream[T], p []byte, fin bool) {
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
// the given flags (for example FlagCompressed), never cut. The frame is
// prepaid: the caller takes its stream credit beforehand with TakeCredit
// (and gives it back with ReturnCredit if the frame is removed unsent),
// and keeps the session credit's books itself; Fill takes no credit for
// it and marks its Sent entry Prepaid. p is aliased as with
// Enqueue, must not be empty, and must be no longer than the maxPayload
// given to Fill. Prepaid frames go out after control frames and empty
// FINs, in the order they were enqueued, ahead of DRR data; a stream has
// at most one at a time.
//
// EnqueueFrame panics if st is already Queued, p is empty, or flags do
// not fit in 16 bits (every flag the protocol defines does).
func (s *Scheduler[T]) EnqueueFrame(st *Stream[T], p []byte, flags frame.Flags) {
	if st.Queued() || len(p) == 0 || flags > 0xffff {
		panic("mux: EnqueueFrame on a queued stream, with an empty payload, or flags beyond 16 bits")
	}
	st.pending = p
	st.frameFlags = uint16(flags)
	st.list = onFrameQ
	s.frameq.pushBack(st)
}

// AddCredit records that the peer granted n more bytes of send credit on
// st (a WINDOW_UPDATE); it is also how the initial window is set. If the
// credit would exceed MaxCredit, AddCredit changes nothing and returns
// ErrCreditOverflow. A stream with pending data that gains credit joins
// the tail of the DRR ring.
func (s *Scheduler[T]) AddCredit(st *Stream[T], n uint32) error {
	if int64(st.credit)+int64(n) > MaxCredit {
		return ErrCreditOverflow
	}
	st.credit += int32(n)
	s.relink(st)
	return nil
}

// TakeCredit takes n bytes of st's credit if at least n is available and
// reports whether it did; otherwise, and for a negative n, it changes
// nothing and returns false. It is for a writer that pays for a frame
// before queueing it with EnqueueFrame. A stream left without credit
// leaves the DRR ring.
func (s *Scheduler[T]) TakeCredit(st *Stream[T], n int) bool {
	if n < 0 || int64(n) > int64(st.credit) {
		return false
	}
	st.credit -= int32(n)
	if st.credit == 0 && st.list == onRing {
		s.unlink(st)
	}
	return true
}

// ReturnCredit gives back n bytes of credit that TakeCredit took, for a
// frame that was dropped unsent. It saturates at MaxCredit (a WINDOW_UPDATE
// may have refilled the window meanwhile) and does nothing for n <= 0; it
// never fails.
func (s *Scheduler[T]) ReturnCredit(st *Stream[T], n int) {
	if n <= 0 {
		return
	}
	st.credit = int32(min(int64(st.credit)+int64(min(n, MaxCredit)), MaxCredit))
	s.relink(st)
}

// relink puts st in the DRR ring if it has pending data and credit but
// is waiting outside it.
func (s *Scheduler[T]) relink(st *Stream[T]) {
	if st.list == onNone && len(st.pending) > 0 && st.credit > 0 {
		s.link(st)
	}
}

// Remove drops st's pending data, pending prepaid frame and pending FIN,
// unlinks it from the scheduler and returns the number of payload bytes
// dropped. The session calls it when it sends or receives a RESET for st
// (and when the stream is otherwise finished): data and a FIN that were
// still queued must not follow the RESET onto the wire, and are never
// sent. Frames already put in a batch are not affected. st's credit is
// kept as it is: credit taken with TakeCredit for a dropped prepaid frame
// is the caller's to give back with ReturnCredit, if it still cares.
func (s *Scheduler[T]) Remove(st *Stream[T]) int {
	n := len(st.pending)
	s.unlink(st)
	st.pending = nil
	st.fin = false
	return n
}

// link puts st, which has pending data and credit, at the tail of the
// ring: it gets its turn after every stream already there.
func (s *Scheduler[T]) link(st *Stream[T]) {
	st.list = onRing
	s.ring.pushBack(st)
}

// unlink takes st out of whichever list it is on. A stream leaving the
// ring forfeits the rest of its turn but keeps its debt.
func (s *Scheduler[T]) unlink(st *Stream[T]) {
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
func (s *Scheduler[T]) PushControl(f *frame.Frame) {
	s.ctl = f.Append(s.ctl)
	s.ctlN++
}

// PushControlBytes queues one already-encoded frame (length prefix
// included), copying b. The rules of PushControl apply.
func (s *Scheduler[T]) PushControlBytes(b []byte) {
	s.ctl = append(s.ctl, b...)
	s.ctlN++
}

// ControlBytes returns the bytes of control frames queued (PushControl)
// and not yet taken by Fill.
func (s *Scheduler[T]) ControlBytes() int { return len(s.ctl) }

// HasWork reports whether Fill, given sessionCredit, an empty batch and a
// positive maxBatch, would emit at least one frame.
func (s *Scheduler[T]) HasWork(sessionCredit int64) bool {
	return s.ctlN > 0 || s.finq.n > 0 || s.frameq.n > 0 || (sessionCredit > 0 && s.ring.n > 0)
}

// Len returns the number of streams that Fill could currently send
// something for: those in the DRR ring (data and credit) plus those with
// only an empty FIN to send.
func (s *Scheduler[T]) Len() int { return s.ring.n + s.finq.n + s.frameq.n }

// Fill appends frames to b: first every queued control frame, then every
// pending empty FIN frame, then every prepaid frame (EnqueueFrame), then
// DATA frames chosen by deficit round-robin, each cut to min(maxPayload,
// pending, stream credit, remaining session credit) and to the stream's
// turn (see the package documentation). Each such DATA frame's payload is
// taken from its stream's credit. Fill stops adding frames once b.Size()
// reaches maxBatch (the last frame may cross it; control frames are
// always all added) or nothing more is sendable. A stream with no credit,
// or every stream when sessionCredit is spent, is passed over; empty FIN
// frames and prepaid frames need no credit.
//
// Fill returns the session credit used: the payload bytes of the
// round-robin DATA frames it added (prepaid frames not included). The
// session then writes b.Buffers() with one WriteTo and calls b.Reset.
// maxPayload must be positive; Fill panics otherwise.
func (s *Scheduler[T]) Fill(b *Batch[T], maxPayload int, sessionCredit int64, maxBatch int) (used int64) {
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
		p := st.pending
		st.pending = nil
		b.appendFrame(st, p, frame.Flags(st.frameFlags)) // while st.list says onFrameQ
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
		n := min(int64(maxPayload), int64(len(st.pending)), int64(st.credit), left)
		if s.ring.n > 1 {
			// Sharing the ring: at most the deficit, so turns stay fair.
			// A stream alone gets whole frames (a quarter of the frames,
			// and of the receiver's read calls, at the default sizes).
			n = min(n, st.deficit+q-1)
		}
		p := st.pending[:n:n]
		st.pending = st.pending[n:]
		st.credit -= int32(n)
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
