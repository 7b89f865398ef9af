package session

import (
	"io"
	"net"
	"sync"
	"time"
	"unsafe"

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
	ms   mux.Stream // first field: see streamOf
	sess *Session
	cond sync.Cond // on sess.mu; readers, writers, deadline timers
	dl   *deadlines
	rbuf recvBuf

	recvWin flowcontrol.RecvWindow
	sendWin flowcontrol.SendWindow

	rwait   []byte // a blocked Read's buffer, for the reader to fill directly
	direct  int    // bytes the reader put into rwait, for that Read to return
	filling bool   // the reader is filling a Read's buffer right now

	rdWaiting int32 // goroutines in waitInput
	rdQueued  bool  // in sess.rdQueue

	inflight   int  // bytes of ours in a batch being written
	wrote      int  // bytes of the current Write put on the connection
	skip       int  // chunks to send uncompressed before trying again
	skipRun    int  // the last skip run (doubles while data won't shrink)
	creditWait bool // a compressing Write waits for session credit
	resetErr   error
	incoming   bool // opened by the peer
	unacked    bool // opened here; the peer's application has not accepted it
	writing    bool // a Write holds the write turn
	wantFin    bool // CloseWrite during a Write: FIN when it ends
	writeDone  bool // CloseWrite or Close called
	finSent    bool
	remoteFin  bool
	closed     bool // Close called
	removed    bool // gone from sess.streams
}

// deadlines is allocated the first time a deadline is set, so idle
// streams don't pay for it.
type deadlines struct {
	read, write time.Time
	rt, wt      *time.Timer
}

// streamOf returns the Stream that embeds ms.
func streamOf(ms *mux.Stream) *Stream { return (*Stream)(unsafe.Pointer(ms)) }

var _ [0]struct{} = [unsafe.Offsetof(Stream{}.ms)]struct{}{} // ms must stay first

// newStream creates a stream's state. Called with s.mu held.
func (s *Session) newStream(id uint32) *Stream {
	st := &Stream{sess: s}
	st.ms.ID = id
	st.cond.L = &s.mu
	st.recvWin = flowcontrol.NewRecvWindow(s.cfg.InitialStreamWindow, s.cfg.MaxStreamWindow, time.Now())
	st.sendWin = flowcontrol.NewSendWindow(s.peer.initialWindow)
	s.sched.AddCredit(&st.ms, int64(s.peer.initialWindow))
	return st
}

// ID returns the stream's ID: odd if the client side opened it, even if
// the server side did.
func (st *Stream) ID() uint32 { return st.ms.ID }

// Session returns the session the stream belongs to.
func (st *Stream) Session() *Session { return st.sess }

// LocalAddr returns the session connection's local address.
func (st *Stream) LocalAddr() net.Addr { return st.sess.conn.LocalAddr() }

// RemoteAddr returns the session connection's remote address.
func (st *Stream) RemoteAddr() net.Addr { return st.sess.conn.RemoteAddr() }

// Read reads data the peer sent. It returns io.EOF after the peer's
// CloseWrite or Close once all data is read, a *StreamError if the stream
// was reset, os.ErrDeadlineExceeded when the read deadline passes, and an
// error matching net.ErrClosed after Close or when the session ends (data
// that arrived before the session ended can still be read).
func (st *Stream) Read(p []byte) (int, error) {
	s := st.sess
	s.mu.Lock()
	defer s.mu.Unlock()
	// offered: p is offered to the holder of the read token as st.rwait,
	// to fill directly. Once it takes p (st.rwait = nil, st.filling), this
	// Read must return what was put there, and nothing else.
	offered := false
	holding := false // this Read holds the read token
	defer func() {
		if offered && st.rwait != nil {
			st.rwait = nil
		}
		if holding {
			s.releaseRead()
		} else {
			st.doneWaiting()
		}
	}()
	for {
		if offered && st.filling && st.rwait == nil {
			st.cond.Wait() // another goroutine is writing into p: wait for it
			continue
		}
		if offered && st.direct > 0 {
			n := st.direct
			st.direct = 0
			offered = false
			if s.consumed(st, n) {
				holding = st.dropRead(holding)
				s.flushControl()
			}
			return n, nil
		}
		switch {
		case st.closed:
			return 0, ErrStreamClosed
		case st.rbuf.len() > 0:
			if len(p) == 0 {
				return 0, nil
			}
			if offered {
				// Withdraw p before anything below can release s.mu
				// (flushControl may write): nobody may fill a buffer
				// this Read is about to return.
				st.rwait = nil
				offered = false
			}
			n := st.rbuf.read(p)
			if s.consumed(st, n) {
				holding = st.dropRead(holding)
				s.flushControl()
			}
			if st.rbuf.len() > 0 {
				st.cond.Broadcast() // other readers may take the rest
			}
			return n, nil
		case st.resetErr != nil:
			return 0, st.resetErr
		case st.remoteFin:
			return 0, io.EOF
		case s.closeErr != nil:
			return 0, s.closeErr
		case len(p) == 0:
			return 0, nil
		case st.dl != nil && expired(st.dl.read):
			return 0, errTimeout
		}
		if !offered && st.rwait == nil && !st.filling && st.direct == 0 {
			st.rwait = p // the token's holder may fill p directly
			offered = true
		}
		if holding || s.takeRead(st) {
			holding = true
			s.readOne()
			continue
		}
		st.waitInput()
	}
}

// consumed returns credit for n bytes the application read, and reports
// whether it queued a WINDOW_UPDATE (the caller flushes it). Called with
// s.mu held.
func (s *Session) consumed(st *Stream, n int) bool {
	queued := false
	if !st.remoteFin && !st.removed {
		rtt := s.tuneRTT()
		var now time.Time // read only when an update (and tuning) is due
		if st.recvWin.UpdateDue(n, rtt) {
			now = time.Now()
		}
		if d := st.recvWin.Consume(n, now, rtt, &s.budget); d > 0 {
			s.sched.PushControl(&frame.Frame{Type: frame.WindowUpdate, StreamID: st.ms.ID, WindowDelta: d})
			queued = true
		}
	}
	return s.consumeSession(n) || queued
}

// flushControl sends queued control frames. If the connection is idle
// and no stream has data ready, the calling goroutine writes them itself
// (a window update then reaches the sender without waiting for the
// writer goroutine to be scheduled); otherwise it wakes the writer.
// Called with s.mu held.
func (s *Session) flushControl() {
	if directWrites && !s.connBusy && !s.closing && s.sched.Len() == 0 {
		s.writeBatch()
		return
	}
	s.wake()
}

// minTuneRTT is the shortest path RTT for which stream windows
// auto-tune. Below it (loopback, a LAN) the initial window already covers
// the bandwidth-delay product of any link the machine can drive, and RTT
// samples are dominated by scheduling noise and by the sender's own
// queue, which would make windows grow without need and queue data in
// front of other streams (measured: echo p99 behind a bulk stream on
// loopback 150-200 µs with 256 KiB windows, 350-800 µs with tuned ones,
// at the same throughput; see BENCHMARKS.md).
const minTuneRTT = 500 * time.Microsecond

// tuneRTT is the RTT handed to window auto-tuning: the path's minimum,
// or 0 (no tuning) when it is below minTuneRTT. Called with s.mu held.
func (s *Session) tuneRTT() time.Duration {
	if s.minRTT < minTuneRTT {
		return 0
	}
	return s.minRTT
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
		return st.resetErr
	case st.sess.closeErr != nil:
		return st.sess.closeErr
	case st.writeDone:
		return ErrWriteClosed
	}
	return nil
}

// Write sends p on the stream. It returns once all of p has been written
// to the connection (the caller may then reuse p), or with an error and
// the count of bytes sent: os.ErrDeadlineExceeded when the write deadline
// passes, a *StreamError after a reset, ErrWriteClosed after CloseWrite,
// an error matching net.ErrClosed after Close or when the session ends.
// Write blocks while the peer's flow-control window is full.
func (st *Stream) Write(p []byte) (int, error) {
	s := st.sess
	s.mu.Lock()
	defer s.mu.Unlock()
	for st.writing { // another Write holds the turn
		if err := st.writeErr(); err != nil {
			return 0, err
		}
		if st.dl != nil && expired(st.dl.write) {
			return 0, errTimeout
		}
		st.cond.Wait()
	}
	if err := st.writeErr(); err != nil {
		return 0, err
	}
	if st.dl != nil && expired(st.dl.write) {
		return 0, errTimeout
	}
	if len(p) == 0 {
		return 0, nil
	}
	st.writing = true
	var n int
	var err error
	if s.enc != nil && len(p) >= minCompress {
		n, err = st.writeCompressed(p)
	} else {
		n, err = st.transmit(p, nil)
	}
	st.writing = false
	if st.wantFin {
		st.wantFin = false
		st.queueFin()
	}
	st.cond.Broadcast() // the next writer's turn
	return n, err
}

// transmit queues p, or a prepaid frame standing for all of p (a
// compressed form whose credit the caller has taken), and waits until it
// is on the connection, the write deadline passes, or the stream or
// session ends. It returns how many bytes of p were sent. Called with
// s.mu held by the goroutine holding the write turn.
func (st *Stream) transmit(p []byte, framed []byte) (int, error) {
	s := st.sess
	st.wrote = 0
	if framed != nil {
		s.sched.EnqueueFrame(&st.ms, framed, frame.FlagCompressed)
	} else {
		s.sched.Enqueue(&st.ms, p, false)
	}
	s.writeDirect()
	var blockedAt time.Time
	var err error
	holding := false // this Write holds the read token
	for st.ms.Pending() > 0 || st.inflight > 0 {
		if err = st.writeErr(); err == nil && st.dl != nil && expired(st.dl.write) {
			err = errTimeout
		}
		if err != nil {
			break
		}
		if framed == nil && st.ms.Pending() > 0 && st.ms.Credit() > 0 && s.sendWin.Available() > 0 && directWrites && !s.connBusy && !s.closing {
			holding = st.dropRead(holding)
			s.writeBatch() // credit arrived and the connection is idle
			continue
		}
		if framed != nil || st.ms.Pending() == 0 || (st.ms.Credit() > 0 && s.sendWin.Available() > 0) {
			holding = st.dropRead(holding) // nobody may wait holding it
			st.cond.Wait()                 // for the writer
			continue
		}
		// Waiting for credit, which only a frame from the peer brings.
		if blockedAt.IsZero() {
			blockedAt = time.Now()
		}
		if holding || (st.inflight == 0 && s.takeRead(st)) {
			holding = true
			s.readOne()
			continue
		}
		st.waitInput()
	}
	if holding {
		s.releaseRead()
	} else {
		st.doneWaiting()
	}
	if !blockedAt.IsZero() {
		s.stats.blockedNanos.Add(int64(time.Since(blockedAt)))
	}
	if err != nil {
		s.sched.Remove(&st.ms)
	}
	for st.inflight > 0 { // the writer still reads p: wait for it
		st.cond.Wait()
	}
	n := st.wrote
	if framed != nil {
		if n > 0 {
			n = len(p) // the one frame went out whole
			s.stats.dataSent.Add(uint64(n))
		} else {
			// Dropped unsent: give the prepaid credit back. A Write
			// waiting for session credit may be reading the connection
			// for it: make it look again.
			st.sendWin.Add(uint32(len(p)))
			s.sendWin.Add(uint32(len(p)))
			s.sched.AddCredit(&st.ms, int64(len(p)))
			s.interruptRead()
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

// writeCompressed sends p in chunks of at most one frame, each
// compressed on this goroutine when that makes it at least 1/16 smaller,
// raw otherwise. After a chunk that did not shrink, the next few are sent
// raw without trying (up to maxSkip, doubling), so incompressible data
// costs little CPU. Called with s.mu held and the write turn.
func (st *Stream) writeCompressed(p []byte) (int, error) {
	s := st.sess
	// A compressed chunk needs credit for its whole uncompressed size at
	// once; keep it well below the windows so that is always reachable.
	chunkMax := min(s.peer.maxPayload, int(s.peer.initialWindow)/2, int(s.peer.sessionWindow)/4)
	sent := 0
	for sent < len(p) {
		chunk := p[sent : sent+min(chunkMax, len(p)-sent)]
		if len(chunk) < minCompress || st.skip > 0 {
			st.skip = max(st.skip-1, 0)
			n, err := st.transmit(chunk, nil)
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
			st.skipRun = min(max(2*st.skipRun, 1), maxSkip)
			st.skip = st.skipRun
			continue // sent raw by the next iteration
		}
		st.skipRun = 0
		// Wait for credit for the whole chunk, then take it.
		var err error
		holding := false // this Write holds the read token
		for {
			if err = st.writeErr(); err == nil && st.dl != nil && expired(st.dl.write) {
				err = errTimeout
			}
			if err != nil || (st.sendWin.Available() >= int64(len(chunk)) && s.sendWin.Available() >= int64(len(chunk))) {
				break
			}
			if holding || s.takeRead(st) {
				holding = true
				s.readOne()
				continue
			}
			st.creditWait = true
			st.waitInput()
			st.creditWait = false
		}
		if holding {
			s.releaseRead()
			holding = false
		} else {
			st.doneWaiting()
		}
		if err != nil {
			frame.PutBuffer(cbuf)
			return sent, err
		}
		st.sendWin.Take(len(chunk))
		s.sendWin.Take(len(chunk))
		s.sched.AddCredit(&st.ms, -int64(len(chunk)))
		n, err := st.transmit(chunk, *cbuf)
		frame.PutBuffer(cbuf)
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
	s := st.sess
	if st.resetErr != nil || s.closeErr != nil || st.finSent {
		return
	}
	s.sched.Enqueue(&st.ms, nil, true)
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
	if st.writeDone {
		return nil
	}
	st.writeDone = true
	st.notify()
	if st.resetErr != nil {
		return st.resetErr
	}
	if err := st.sess.closeErr; err != nil {
		return err
	}
	if st.writing {
		st.wantFin = true
	} else {
		st.queueFin()
	}
	return nil
}

// Close closes the stream: it sends FIN after the data already written
// (as CloseWrite does), fails this side's blocked and later Reads and
// Writes with ErrStreamClosed, and discards data that is unread or
// arrives later. The stream is gone once the peer has closed its side
// too. Close never blocks on the network and is idempotent.
func (st *Stream) Close() error {
	s := st.sess
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.closed {
		return nil
	}
	st.closed = true
	st.closeWrite()
	if n := st.rbuf.discard(); n > 0 {
		if s.consumed(st, n) {
			s.wake()
		}
	}
	st.maybeRemove()
	st.notify()
	if !st.removed && s.cfg.StreamCloseTimeout > 0 && s.closeErr == nil {
		// The peer has not closed its side yet; give it a while.
		time.AfterFunc(s.cfg.StreamCloseTimeout, st.closeTimedOut)
	}
	return nil
}

// closeTimedOut resets a stream closed here whose peer never closed its
// side within Config.StreamCloseTimeout.
func (st *Stream) closeTimedOut() {
	s := st.sess
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.removed || st.resetErr != nil || s.closeErr != nil {
		return
	}
	s.log.Debug("braid: stream close timed out; resetting", "stream", st.ms.ID)
	st.resetErr = &StreamError{Code: uint32(frame.Cancel)}
	s.sched.PushControl(&frame.Frame{Type: frame.Reset, StreamID: st.ms.ID, ErrorCode: frame.Cancel})
	s.wake()
	st.abort()
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
	if st.resetErr != nil || st.removed {
		return nil
	}
	st.resetErr = &StreamError{Code: code}
	if s.closeErr == nil {
		s.sched.PushControl(&frame.Frame{Type: frame.Reset, StreamID: st.ms.ID, ErrorCode: frame.ErrorCode(code)})
		s.wake()
	}
	st.abort()
	return nil
}

// abort drops the stream's queued and buffered data after a reset and
// forgets the stream. Called with s.mu held.
func (st *Stream) abort() {
	s := st.sess
	s.sched.Remove(&st.ms)
	if n := st.rbuf.discard(); n > 0 {
		if s.consumeSession(n) {
			s.wake()
		}
	}
	st.remove()
	st.notify()
}

// maybeRemove forgets the stream once both directions are finished.
// Called with s.mu held.
func (st *Stream) maybeRemove() {
	if st.finSent && st.remoteFin {
		st.remove()
	}
}

// remove takes the stream out of the session's table. Called with s.mu
// held.
func (st *Stream) remove() {
	if st.removed {
		return
	}
	s := st.sess
	st.removed = true
	s.acked(st)
	delete(s.streams, st.ms.ID)
	if st.incoming {
		s.numIncoming--
	}
	st.recvWin.Close(&s.budget)
	s.maybeFinishGoAway()
}

// sessionClosed wakes everything blocked on the stream when the session
// ends. Called with s.mu held.
func (st *Stream) sessionClosed() {
	st.sess.sched.Remove(&st.ms)
	st.cond.Broadcast()
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
	if st.dl == nil {
		if t.IsZero() {
			return
		}
		st.dl = &deadlines{}
	}
	if read {
		st.dl.read = t
		st.dl.rt = st.arm(st.dl.rt, t)
	}
	if write {
		st.dl.write = t
		st.dl.wt = st.arm(st.dl.wt, t)
	}
	// Blocked calls re-check the deadline. One blocked reading the
	// connection needs no interrupt: the timer, re-armed above, fires at
	// the new deadline (at once if it has passed) and interrupts it then.
	st.cond.Broadcast()
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
