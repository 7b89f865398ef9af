package session

import (
	"io"
	"net"
	"sync"
	"time"

	"github.com/braidmux/braid/flowcontrol"
	"github.com/braidmux/braid/frame"
	"github.com/braidmux/braid/mux"
)

// Stream is one logical, reliable, ordered byte stream of a Session. It
// implements net.Conn: Read, Write, Close, and the deadline methods may be
// called concurrently from several goroutines (concurrent Writes are
// serialized whole, so their bytes do not interleave; concurrent Reads
// each get a different part of the data). A Stream needs no finalizer and
// stays alive for as long as its session holds it, even if the caller
// keeps no reference (an io.Copy running on it is enough).
type Stream struct {
	sess     *Session
	send     sendHalf
	recv     recvHalf
	waits    *waits       // nil until a goroutine waits on the stream or sets a deadline
	resetErr *StreamError // why the stream was reset, by either side
	state    streamState  // the lifecycle, SPEC.md §5.3; changed only by setState
	closed   bool         // the application called Close
	incoming bool         // opened by the peer, and counted against MaxIncomingStreams (releaseIncoming)
	accepted bool         // handed to the application by AcceptStream
	unacked  bool         // opened here; the peer's application has not accepted it
}

// waits is the part of a stream that only streams in use need, allocated
// on first use so that idle streams cost less (a session may hold
// thousands).
type waits struct {
	cond     sync.Cond // on sess.mu: Reads, Writes, deadline timers wait on it
	dl       deadlines
	closeTmr *time.Timer // StreamCloseTimeout, while the peer has not closed its side
	wrote    int         // bytes of the current Write put on the connection
}

// streamState is a stream's place in SPEC.md §5.3's state machine. The
// idle state has no Stream: a stream exists from its SYN on. A closed
// stream is out of the session's table; its Stream lives on only for the
// application, whose calls report how it closed.
type streamState uint8

const (
	stateOpen             streamState = iota // both directions carry data
	stateHalfClosedLocal                     // FIN sent; the peer may still send
	stateHalfClosedRemote                    // FIN received; this side may still send
	stateClosed                              // both FINs, or RESET sent or received
)

var stateNames = [...]string{"open", "half-closed (local)", "half-closed (remote)", "closed"}

func (s streamState) String() string { return stateNames[s] }

// sendHalf is the sending direction of a stream: what Writes queue and
// the credit they spend. Credit has one book, the scheduler's (ms).
type sendHalf struct {
	ms         mux.Stream[*Stream] // queued data and FIN, send credit
	inflight   int32               // bytes of ours in a batch being written
	writing    bool                // a Write holds the write turn
	shut       bool                // CloseWrite or Close called: no more Writes
	wantFin    bool                // CloseWrite during a Write: FIN when it ends
	creditWait bool                // a compressing Write waits for session credit
	skip       uint8               // chunks to send uncompressed before trying again
	skipRun    uint8               // the last skip run (doubles while data won't shrink)
}

// recvHalf is the receiving direction: bytes that arrived and were not
// read yet, and the window that bounds them.
type recvHalf struct {
	buf recvBuf
	win flowcontrol.RecvWindow
}

// deadlines are a stream's read and write deadlines and their timers.
type deadlines struct {
	read, write time.Time
	rt, wt      *time.Timer
}

// newStream creates a stream in state open. Called with s.mu held.
func (s *Session) newStream(id uint32) *Stream {
	st := &Stream{sess: s}
	st.send.ms.ID = id
	st.send.ms.Owner = st
	st.recv.win = flowcontrol.NewRecvWindow(s.cfg.InitialStreamWindow, s.cfg.MaxStreamWindow, time.Now())
	s.sched.AddCredit(&st.send.ms, s.peer.initialWindow) // cannot fail: checked in the handshake
	return st
}

// waitUnlocking waits on the stream's condition, releasing s.mu meanwhile.
// Called with s.mu held.
func (st *Stream) waitUnlocking() { st.w().cond.Wait() }

// w returns the stream's waits, allocating them on first use. Called
// with s.mu held.
func (st *Stream) w() *waits {
	if st.waits == nil {
		st.waits = &waits{}
		st.waits.cond.L = &st.sess.mu
	}
	return st.waits
}

// readExpired and writeExpired report whether a deadline has passed.
// Called with s.mu held.
func (st *Stream) readExpired() bool  { return st.waits != nil && expired(st.waits.dl.read) }
func (st *Stream) writeExpired() bool { return st.waits != nil && expired(st.waits.dl.write) }

// setState moves the stream to next. Entering closed takes the stream out
// of the session's table. Called with s.mu held.
func (st *Stream) setState(next streamState) {
	st.sess.assertLocked()
	if st.state == stateClosed {
		return
	}
	st.state = next
	if next == stateClosed {
		st.sess.forget(st)
	}
}

// finSent applies sending FIN (table 1). Called with s.mu held.
func (st *Stream) finSent() {
	switch st.state {
	case stateOpen:
		st.setState(stateHalfClosedLocal)
	case stateHalfClosedRemote:
		st.setState(stateClosed)
	}
}

// finReceived applies receiving FIN (table 2). Called with s.mu held.
func (st *Stream) finReceived() {
	switch st.state {
	case stateOpen:
		st.setState(stateHalfClosedRemote)
	case stateHalfClosedLocal:
		st.setState(stateClosed)
	}
}

// reset moves the stream to closed because of a RESET sent or received
// (err says which), dropping what is queued and buffered. Called with
// s.mu held.
func (st *Stream) reset(err *StreamError) {
	st.sess.assertLocked()
	s := st.sess
	if st.resetErr == nil {
		st.resetErr = err
	}
	s.sched.Remove(&st.send.ms)
	if n := st.recv.buf.discard(); n > 0 {
		s.consumeSession(n)
	}
	st.setState(stateClosed)
	st.notify()
}

// peerDone reports whether the peer finished sending cleanly (FIN).
func (st *Stream) peerDone() bool {
	return st.resetErr == nil && (st.state == stateHalfClosedRemote || st.state == stateClosed)
}

// ID returns the stream's ID: odd if the client side opened it, even if
// the server side did.
func (st *Stream) ID() uint32 { return st.send.ms.ID }

// Session returns the session the stream belongs to.
func (st *Stream) Session() *Session { return st.sess }

// LocalAddr returns the session connection's local address.
func (st *Stream) LocalAddr() net.Addr { return st.sess.LocalAddr() }

// RemoteAddr returns the session connection's remote address.
func (st *Stream) RemoteAddr() net.Addr { return st.sess.RemoteAddr() }

// Read reads data the peer sent. It returns io.EOF after the peer's
// CloseWrite or Close once all data is read, a *StreamError if the stream
// was reset, os.ErrDeadlineExceeded when the read deadline passes, and an
// error matching net.ErrClosed after Close or when the session ends (data
// that arrived before the session ended can still be read).
//
// Read never touches the connection: the session's reader goroutine puts
// arriving data in the stream's buffer, and Read copies it out.
func (st *Stream) Read(p []byte) (int, error) {
	s := st.sess
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		switch {
		case st.closed:
			return 0, ErrStreamClosed
		case st.recv.buf.len() > 0:
			if len(p) == 0 {
				return 0, nil
			}
			n := st.recv.buf.read(p)
			if st.recv.buf.len() > 0 {
				st.notify() // other Reads may take the rest
			}
			if s.consumed(st, n) {
				if st.waits != nil && !st.waits.dl.read.IsZero() {
					s.wake() // a Read with a deadline must not block writing
				} else {
					s.flushControlUnlocking()
				}
			}
			return n, nil
		case st.resetErr != nil:
			s.releaseIncoming(st) // the application has seen the reset
			return 0, st.resetErr
		case st.peerDone():
			return 0, io.EOF
		case s.closeErr != nil:
			return 0, s.closeErr
		case len(p) == 0:
			return 0, nil
		case st.readExpired():
			return 0, errTimeout
		}
		st.waitUnlocking()
	}
}

// consumed returns credit for n bytes the application read, and reports
// whether it queued a WINDOW_UPDATE (the caller flushes it). Called with
// s.mu held.
func (s *Session) consumed(st *Stream, n int) bool {
	s.assertLocked()
	queued := false
	if st.state == stateOpen || st.state == stateHalfClosedLocal {
		var d uint32
		if s.contended(st) {
			s.contendedAt = time.Now()
			if st.recv.win.Reserved() > 0 {
				// What the window grew to while st had the path to
				// itself would, once messages pause, let that much of
				// its data queue ahead of the next one.
				st.recv.win.Shrink(s.contendedAt, &s.budget)
			}
			d = st.recv.win.ConsumeLimited(n, uint32(contendedWindow))
		} else {
			rtt := s.tuneRTT()
			var now time.Time // read only when an update (and tuning) is due
			budget := &s.budget
			if st.recv.win.UpdateDue(n, rtt) {
				now = time.Now()
				if s.shortPath() && now.Sub(s.contendedAt) < contendSettle {
					budget = nil // no growth: see contendSettle
				}
			}
			d = st.recv.win.Consume(n, now, rtt, budget)
		}
		if d > 0 {
			s.sched.PushControl(&frame.Frame{Type: frame.WindowUpdate, StreamID: st.ID(), WindowDelta: d})
			queued = true
		}
	}
	return s.consumeSession(n) || queued
}

// contended reports whether st shares the receiving direction with
// another stream that carries messages right now: one that received at
// least two small payloads (under smallPayload) in a row, with no large
// one between, the last within contendFor. On a short path (shortPath)
// st's credit is then held to contendedWindow, so less of its data
// waits in socket buffers ahead of the messages. Streams that all move
// bulk data are not held back (a bulk stream's occasional short frame,
// cut by credit or by the scheduler's turn, does not count). Called with
// s.mu held.
func (s *Session) contended(st *Stream) bool {
	return contendedWindow > 0 && s.rxSmall != nil && s.rxSmall != st && s.rxSmallRun >= 2 &&
		s.shortPath() && time.Since(s.rxSmallAt) < contendFor
}

// contendedWindow is the credit a stream is held to while another stream
// receives messages, on short paths (shortPath); contendFor is
// how long after the last message that lasts.
var contendedWindow = 16 << 10

const contendFor = 2 * time.Millisecond

// contendSettle is how long after a stream was last held to
// contendedWindow no window of the session grows on a short path. A held
// stream's window shrinks back to its initial size (consumed); were it
// to regrow as soon as the messages pause for contendFor, the next
// message would wait behind all the data the regrown window let in, long
// enough for the hold to lapse again: on loopback, echoes behind a bulk
// stream then took milliseconds at the 99th percentile instead of
// 100 µs.
const contendSettle = 100 * time.Millisecond

// shortPathRTT is the RTT below which a path counts as short (loopback, a
// LAN): there a stream that shares the session with messages is held to
// contendedWindow (contended).
const shortPathRTT = 500 * time.Microsecond

// shortPath reports whether the path's RTT is below shortPathRTT, or not
// yet measured. Called with s.mu held.
func (s *Session) shortPath() bool { return s.minRTT < shortPathRTT }

// minTuneRTT is the least RTT window auto-tuning counts with. Below it
// RTT samples measure scheduling more than the path, and what a window
// update waits for under load is scheduling too: on two cores the
// writer, the reader and the reading goroutine take turns, so an update
// takes effect hundreds of microseconds after it is due. Windows sized
// for a measured loopback RTT of 20–50 µs (they did not tune at all
// below 500 µs) held one loopback stream to 60 % of TCP; counted at
// 1 ms they grow to what the machine can drive, and the stream reached
// TCP's rate (BENCHMARKS.md). They grow only while the reader keeps up,
// and a stream behind which another stream's messages wait is held to
// contendedWindow meanwhile (contended), so the growth does not queue
// bulk data ahead of messages.
var minTuneRTT = time.Millisecond

// tuneRTT is the RTT handed to window auto-tuning: the path's minimum,
// at least minTuneRTT; or 0 (no tuning) before the first RTT sample.
// Called with s.mu held.
func (s *Session) tuneRTT() time.Duration {
	if s.minRTT == 0 {
		return 0
	}
	return max(s.minRTT, minTuneRTT)
}

// consumeSession returns n bytes of session-window credit, and reports
// whether it queued a WINDOW_UPDATE. The session window does not tune,
// so it needs no clock. Called with s.mu held.
func (s *Session) consumeSession(n int) bool {
	if n == 0 {
		return false
	}
	if d := s.recvWin.Consume(n, time.Time{}, 0, nil); d > 0 && s.closeErr == nil {
		s.sched.PushControl(&frame.Frame{Type: frame.WindowUpdate, StreamID: 0, WindowDelta: d})
		s.wake()
		return true
	}
	return false
}

func expired(t time.Time) bool { return !t.IsZero() && !time.Now().Before(t) }

// writeErr says why a Write cannot proceed, or nil. Called with s.mu held.
func (st *Stream) writeErr() error {
	switch {
	case st.closed:
		return ErrStreamClosed
	case st.resetErr != nil:
		st.sess.releaseIncoming(st) // the application has seen the reset
		return st.resetErr
	case st.sess.closeErr != nil:
		return st.sess.closeErr
	case st.send.shut:
		return ErrWriteClosed
	}
	return nil
}

// Write sends p on the stream. It returns once all of p has been written
// to the connection or copied for the session's writer goroutine to write
// (the caller may then reuse p), or with an error and the count of bytes
// sent: os.ErrDeadlineExceeded when the write deadline passes, a
// *StreamError after a reset, ErrWriteClosed after CloseWrite, an error
// matching net.ErrClosed after Close or when the session ends. Write
// blocks while the peer's flow-control window is full.
//
// Without a write deadline, a Write under 16 KiB sends p without copying
// it, often from the calling goroutine; a larger one is copied (in a
// resumable session, Dial or Listener, to its replay buffer, which sends
// it again after a resume) so that the writer goroutine can write several
// Writes at once while the caller prepares the next. With a deadline,
// Write sends a copy through the session's writer goroutine, so that it
// returns at the deadline whatever the connection does (a peer that stops
// reading can leave a connection write stuck until
// Config.ConnectionWriteTimeout): the count returned then includes the
// bytes already handed to the connection, which still go out.
func (st *Stream) Write(p []byte) (int, error) {
	s := st.sess
	s.mu.Lock()
	defer s.mu.Unlock()
	for st.send.writing { // another Write holds the turn
		if err := st.writeErr(); err != nil {
			return 0, err
		}
		if st.writeExpired() {
			return 0, errTimeout
		}
		st.waitUnlocking()
	}
	if err := st.writeErr(); err != nil {
		return 0, err
	}
	if st.writeExpired() {
		return 0, errTimeout
	}
	if len(p) == 0 {
		return 0, nil
	}
	st.send.writing = true
	var n int
	var err error
	if s.enc != nil && len(p) >= minCompress {
		n, err = st.writeCompressedUnlocking(p)
	} else {
		n, err = st.transmitUnlocking(p, nil)
	}
	st.send.writing = false
	if st.send.wantFin {
		st.send.wantFin = false
		st.queueFin()
	}
	st.notify() // the next writer's turn
	return n, err
}

// transmitUnlocking queues p, or a prepaid frame standing for all of p (a
// compressed form whose credit the caller has taken), and waits until it
// is on the connection, the write deadline passes, or the stream or
// session ends. It returns how many bytes of p were sent. Called with
// s.mu held by the goroutine holding the write turn; releases it while
// waiting and while writing to the connection.
//
// A Write with a deadline is guarded: it must return at its deadline
// even while the connection write that holds its bytes is stuck (a peer
// that stops reading). So it queues a copy of p, in pieces of at most
// maxGuardedCopy, leaves the writing to the writer goroutine, and at the
// deadline returns without waiting for a write in progress: the bytes in
// it count as written (they go out), the rest is dropped.
func (st *Stream) transmitUnlocking(p []byte, framed []byte) (int, error) {
	st.sess.assertLocked()
	s := st.sess
	ms := &st.send.ms
	guarded := st.waits != nil && !st.waits.dl.write.IsZero()
	if guarded && framed == nil && len(p) > maxGuardedCopy {
		sent := 0
		for sent < len(p) {
			n, err := st.transmitUnlocking(p[sent:sent+min(maxGuardedCopy, len(p)-sent)], nil)
			sent += n
			if err != nil {
				return sent, err
			}
		}
		return sent, nil
	}
	for st.send.inflight > 0 { // an earlier guarded Write's bytes are still being written
		if err := st.writeErr(); err != nil {
			return 0, err
		}
		if st.writeExpired() {
			return 0, errTimeout
		}
		st.waitUnlocking()
	}
	st.w().wrote = 0 // from here on st.waits is not nil
	var cp *[]byte   // guarded: the copy that is sent
	data := p
	switch {
	case framed != nil:
		s.sched.EnqueueFrame(ms, framed, frame.FlagCompressed)
	case guarded:
		cp = frame.GetBuffer(len(p))
		copy(*cp, p)
		data = *cp
		s.sched.Enqueue(ms, data, false)
	default:
		s.sched.Enqueue(ms, p, false)
	}
	// A resumable session copies every batch to its replay buffer and
	// writes it from there, so a Write's bytes are free before the
	// connection write: a large one leaves both to the filler and writer
	// goroutines (writeLoop), and returns once its bytes are copied. A
	// plain session does the same through its pipeline (startPipeline),
	// which runs while such a Write waits (pipe.bulk).
	handOff := guarded || (s.res != nil && len(data) >= handOffMin)
	var pipe *resumer // a plain session's pipeline copying this Write
	if r := s.res; handOff && !guarded && r.plain {
		pipe = r
		pipe.bulk++
	}
	if handOff {
		s.wake()
	} else {
		s.writeDirectUnlocking()
	}
	var blockedAt time.Time
	var err error
	for ms.Pending() > 0 || st.send.inflight > 0 {
		if err = st.writeErr(); err == nil && st.writeExpired() {
			err = errTimeout
		}
		if err != nil {
			break
		}
		canSend := framed != nil || (ms.Credit() > 0 && s.sendWin.Available() > 0)
		if !handOff && directWrites && s.idle() && !s.closing && s.sched.HasWork(s.dataRoom()) {
			// The connection is idle and something can be sent (ours,
			// or frames queued while we wrote): write it ourselves
			// rather than wait for the writer goroutine to be scheduled.
			s.writeBatchUnlocking()
			continue
		}
		if ms.Pending() > 0 && !canSend && blockedAt.IsZero() {
			blockedAt = time.Now() // waiting for credit
		}
		st.waitUnlocking()
	}
	if pipe != nil {
		if pipe.bulk--; pipe.bulk == 0 {
			// The filler stops; the writer goroutine sends what is
			// queued (a RESET, say) from here on: it may have passed it
			// over while this Write waited.
			s.wake()
		}
	}
	if !blockedAt.IsZero() {
		s.stats.blockedNanos.Add(int64(time.Since(blockedAt)))
	}
	inBatches := len(data) - ms.Pending() // bytes already handed to a connection write
	if framed != nil {
		inBatches = len(framed) - ms.Pending()
	}
	if err != nil {
		s.sched.Remove(ms)
	}
	if guarded && err != nil && st.send.inflight > 0 {
		// Our bytes are in a write that has not finished: it reads the
		// copy (or the compressed frame), not p, so return now. The
		// copy stays with that write (it is not pooled again).
		if framed != nil {
			if inBatches > 0 {
				s.stats.dataSent.Add(uint64(len(p)))
				return len(p), err
			}
			return 0, err
		}
		return inBatches, err
	}
	for st.send.inflight > 0 { // the writer still reads p: wait for it
		st.waitUnlocking()
	}
	frame.PutBuffer(cp)
	n := st.waits.wrote
	if framed != nil {
		if n > 0 {
			n = len(p) // the one frame went out whole
			s.stats.dataSent.Add(uint64(n))
		} else {
			// Dropped unsent: give the prepaid credit back.
			s.sched.ReturnCredit(ms, len(p))
			s.sendWin.Return(len(p))
		}
	}
	if n < len(p) && err == nil {
		// The stream or session ended and dropped what was queued.
		if err = st.writeErr(); err == nil {
			err = io.ErrShortWrite
		}
	}
	return n, err
}

// maxGuardedCopy is the most of a Write with a deadline that is copied
// and queued at once (see transmitUnlocking).
const maxGuardedCopy = 256 << 10

// handOffMin: a Write of at least this many bytes leaves copying and
// writing to the filler and writer goroutines (a resumable session's, or
// a plain one's pipeline); smaller ones (a message) write themselves when
// the connection is idle.
const handOffMin = 16 << 10

// writeCompressedUnlocking sends p in chunks of at most one frame, each
// compressed on this goroutine when that makes it at least 1/16 smaller,
// raw otherwise. After a chunk that did not shrink, the next few are sent
// raw without trying (up to maxSkip, doubling), so incompressible data
// costs little CPU. Called with s.mu held and the write turn; releases
// s.mu while compressing, waiting and writing.
func (st *Stream) writeCompressedUnlocking(p []byte) (int, error) {
	s := st.sess
	ms := &st.send.ms
	// A compressed chunk needs credit for its whole uncompressed size at
	// once; keep it well below the windows so that is always reachable.
	chunkMax := min(s.peer.maxPayload, int(s.peer.initialWindow)/2, int(s.peer.sessionWindow)/4)
	sent := 0
	for sent < len(p) {
		chunk := p[sent : sent+min(chunkMax, len(p)-sent)]
		if len(chunk) < minCompress || st.send.skip > 0 {
			st.send.skip = max(st.send.skip, 1) - 1
			n, err := st.transmitUnlocking(chunk, nil)
			sent += n
			if err != nil {
				return sent, err
			}
			continue
		}
		s.mu.Unlock()
		cbuf := compressChunk(s.enc, chunk)
		s.mu.Lock()
		if cbuf == nil {
			st.send.skipRun = min(max(2*st.send.skipRun, 1), maxSkip)
			st.send.skip = st.send.skipRun
			continue // sent raw by the next iteration
		}
		st.send.skipRun = 0
		// Wait for credit for the whole chunk, then take it.
		var err error
		for {
			if err = st.writeErr(); err == nil && st.writeExpired() {
				err = errTimeout
			}
			if err != nil || (ms.Credit() >= int64(len(chunk)) && s.dataRoom() >= int64(len(chunk))) {
				break
			}
			st.send.creditWait = true
			st.waitUnlocking()
			st.send.creditWait = false
		}
		if err != nil {
			frame.PutBuffer(cbuf)
			return sent, err
		}
		s.sched.TakeCredit(ms, len(chunk)) // cannot fail: checked above
		s.sendWin.Take(len(chunk))
		n, err := st.transmitUnlocking(chunk, *cbuf)
		if st.send.inflight == 0 {
			frame.PutBuffer(cbuf) // else a write still reads it (a guarded Write timed out)
		}
		sent += n
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// queueFin queues the FIN behind the stream's data. Called with s.mu held
// and no Write in progress.
func (st *Stream) queueFin() {
	st.sess.assertLocked()
	s := st.sess
	if st.resetErr != nil || s.closeErr != nil || st.state == stateHalfClosedLocal || st.state == stateClosed {
		return
	}
	s.sched.Enqueue(&st.send.ms, nil, true)
	s.wake()
}

// CloseWrite half-closes the stream: the peer reads io.EOF after the data
// already written, and may still write back. Later Writes fail with
// ErrWriteClosed. It does not wait for the FIN to be sent.
func (st *Stream) CloseWrite() error {
	s := st.sess
	s.mu.Lock()
	defer s.mu.Unlock()
	return st.closeWrite()
}

func (st *Stream) closeWrite() error {
	if st.send.shut {
		return nil
	}
	st.send.shut = true
	st.notify()
	if st.resetErr != nil {
		return st.resetErr
	}
	if err := st.sess.closeErr; err != nil {
		return err
	}
	if st.send.writing {
		st.send.wantFin = true
	} else {
		st.queueFin()
	}
	return nil
}

// Close closes the stream: it sends FIN after the data already written
// (as CloseWrite does), fails this side's blocked and later Reads and
// Writes with ErrStreamClosed, and discards data that is unread or
// arrives later. The stream is gone once the peer has closed its side
// too, or after Config.StreamCloseTimeout if it never does. Close never
// blocks on the network and is idempotent.
func (st *Stream) Close() error {
	s := st.sess
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.closed {
		return nil
	}
	st.closed = true
	if st.state == stateClosed {
		s.releaseIncoming(st) // reset by the peer while held: let go now
	}
	st.closeWrite()
	if n := st.recv.buf.discard(); n > 0 {
		s.consumed(st, n)
		s.wake()
	}
	st.notify()
	if st.state != stateClosed && s.cfg.StreamCloseTimeout > 0 && s.closeErr == nil {
		// The peer has not closed its side yet; give it a while. The
		// timer is stopped when the stream closes (forget).
		st.w().closeTmr = time.AfterFunc(s.cfg.StreamCloseTimeout, st.closeTimedOut)
	}
	return nil
}

// closeTimedOut resets a stream closed here whose peer never closed its
// side within Config.StreamCloseTimeout.
func (st *Stream) closeTimedOut() {
	s := st.sess
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.state == stateClosed || s.closeErr != nil {
		return
	}
	s.log.Debug("braid: stream close timed out; resetting", "stream", st.ID())
	s.sched.PushControl(&frame.Frame{Type: frame.Reset, StreamID: st.ID(), ErrorCode: frame.Cancel})
	s.wake()
	st.reset(&StreamError{Code: uint32(frame.Cancel)})
}

// Reset aborts the stream in both directions: unsent and unread data is
// dropped, the peer's calls on the stream fail with a *StreamError
// carrying code, and so do this side's. Codes from 0x100 up are free for
// applications (see frame.ErrorCode for the protocol's own). Resetting a
// stream that is already closed or reset does nothing.
func (st *Stream) Reset(code uint32) error {
	s := st.sess
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.state == stateClosed {
		s.releaseIncoming(st)
		return nil
	}
	if s.closeErr == nil {
		s.sched.PushControl(&frame.Frame{Type: frame.Reset, StreamID: st.ID(), ErrorCode: frame.ErrorCode(code)})
		s.wake()
	}
	st.reset(&StreamError{Code: code})
	return nil
}

// sessionClosed wakes everything blocked on the stream when the session
// ends. Called with s.mu held.
func (st *Stream) sessionClosed() {
	if st.send.ms.Pending() > 0 {
		// Data of a Write that now fails: it must not be sent after
		// the Write returns. A FIN alone stays queued, so a Close
		// flushes the FINs of streams closed just before it.
		st.sess.sched.Remove(&st.send.ms)
	}
	st.stopTimers()
	st.notify()
}

// stopTimers stops the stream's timers once nothing can wait on it any
// more (it is closed, or its session ended): a pending timer would keep
// the stream, and through it the session, reachable until it fires.
// Called with s.mu held.
func (st *Stream) stopTimers() {
	w := st.waits
	if w == nil {
		return
	}
	if w.closeTmr != nil {
		w.closeTmr.Stop()
		w.closeTmr = nil
	}
	if w.dl.rt != nil {
		w.dl.rt.Stop()
	}
	if w.dl.wt != nil {
		w.dl.wt.Stop()
	}
}

// notify wakes the goroutines waiting on st. Called with s.mu held.
func (st *Stream) notify() {
	if st.waits != nil {
		st.waits.cond.Broadcast()
	}
}

// SetDeadline sets both the read and write deadlines; see net.Conn. A
// call blocked in Read or Write notices a changed deadline at once.
func (st *Stream) SetDeadline(t time.Time) error {
	st.setDeadline(t, true, true)
	return nil
}

// SetReadDeadline sets the deadline for Read calls, current and future.
// The zero time means no deadline.
func (st *Stream) SetReadDeadline(t time.Time) error {
	st.setDeadline(t, true, false)
	return nil
}

// SetWriteDeadline sets the deadline for Write calls, current and future.
// The zero time means no deadline.
func (st *Stream) SetWriteDeadline(t time.Time) error {
	st.setDeadline(t, false, true)
	return nil
}

func (st *Stream) setDeadline(t time.Time, read, write bool) {
	s := st.sess
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.waits == nil && t.IsZero() {
		return
	}
	dl := &st.w().dl
	if st.state == stateClosed || s.closeErr != nil {
		// Nothing can wait on the stream any more: calls return at once,
		// and a timer would only keep the stream reachable.
		if read {
			dl.read = t
		}
		if write {
			dl.write = t
		}
		return
	}
	if read {
		dl.read = t
		dl.rt = st.arm(dl.rt, t)
	}
	if write {
		dl.write = t
		dl.wt = st.arm(dl.wt, t)
	}
	st.notify() // blocked calls re-check the deadline
}

// arm (re)starts timer to wake the stream's waiters at t.
func (st *Stream) arm(timer *time.Timer, t time.Time) *time.Timer {
	if t.IsZero() {
		if timer != nil {
			timer.Stop()
		}
		return timer
	}
	d := time.Until(t)
	if timer == nil {
		return time.AfterFunc(d, st.wakeAll)
	}
	timer.Reset(d)
	return timer
}

func (st *Stream) wakeAll() {
	st.sess.mu.Lock()
	st.notify()
	st.sess.mu.Unlock()
}
