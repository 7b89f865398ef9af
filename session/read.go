package session

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"time"

	"github.com/braidmux/braid/frame"
)

// Reading the connection: the read token.
//
// One goroutine at a time reads the connection: the holder of the read
// token. A goroutine that would otherwise sleep until a frame arrives — a
// Read waiting for data, a Write waiting for flow-control credit — takes
// the token if it is free and reads frames itself, applying each (data
// for other streams lands in their buffers, or straight in their blocked
// Reads' buffers, and wakes them). When its own wait is over it returns
// the token, waking the next goroutine queued for it. In the common cases
// (one stream's Read waiting, a Write waiting for a window update) the
// goroutine that needs the frame is the one the kernel wakes, as with a
// plain TCP connection: no hand-off from a reader goroutine to the
// application, which on a loaded machine costs more than reading the
// frame.
//
// The session's reader goroutine reads when no application goroutine
// does: at once when something waits for a frame without reading itself
// (AcceptStream, Ping, OpenStream waiting for backlog room), and
// otherwise once the token has been free for readIdleDelay, so PINGs,
// GOAWAY and data for streams nobody is reading yet are taken in even
// when the application is busy elsewhere. It gives the token to an
// application goroutine that queues for it after the frame in hand.
//
// An application goroutine blocked in a connection read has to notice
// when its own wait ends for another reason (its deadline passes, its
// stream is closed or reset, the session ends): interruptRead moves the
// connection's read deadline into the past, which makes that read fail at
// once with a timeout. frame.Reader loses nothing to a timeout, a payload
// read part way is kept in rx for the next holder, and the deadline is
// cleared before anyone reads again.
//
// Connections whose read deadlines cannot be set keep to the reader
// goroutine alone.

// shareReads lets application goroutines take the read token (turned off
// only by benchmarks, to compare).
var shareReads = true

// readIdleDelay is how long the read token may stay free before the
// reader goroutine takes it, when nobody is waiting for a frame. Frames
// nobody waits for (a PING, data for a stream no Read is waiting on) can
// wait this long; a Read or Write that comes for a frame reads the
// connection itself at once. While application goroutines keep taking
// the token, the timer fires once per readIdleDelay and does nothing
// (a short goroutine taking the session lock), so a busy session pays
// for 200 such checks a second, not one per frame.
const readIdleDelay = 5 * time.Millisecond

// aLongTimeAgo is a read deadline that makes a blocked read return.
var aLongTimeAgo = time.Unix(1, 0)

// rxState is a DATA payload whose reading an interrupt cut short: the rest
// goes into buf, which holds bytes [0, off) of it so far.
type rxState struct {
	buf   *[]byte
	off   int
	id    uint32
	flags frame.Flags
}

// readLoop is the reader goroutine: it reads while no application
// goroutine does (see above), and exits when the session ends.
func (s *Session) readLoop() {
	defer s.wg.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		for s.rdBusy || !(s.rdWant || s.closeErr != nil || !s.rdShare) {
			s.mu.Unlock()
			<-s.rdKick
			s.mu.Lock()
		}
		s.rdBusy, s.rdApp, s.rdOwner, s.rdWant = true, false, nil, false
		for s.closeErr == nil {
			if s.rdShare && s.readerQueued() {
				s.releaseRead()
				break
			}
			s.readOne()
		}
		if s.closeErr != nil {
			// The token stays taken: nobody reads the connection again.
			s.rdBusy = true
			frame.PutBuffer(s.rx.buf)
			s.rx = rxState{}
			s.rd.Close()
			return
		}
	}
}

// takeRead gives the read token to an application goroutine waiting on
// st (nil for one not tied to a stream), if the token is free. Called
// with s.mu held.
func (s *Session) takeRead(st *Stream) bool {
	if !s.rdShare || s.rdBusy || s.closeErr != nil {
		return false
	}
	s.rdBusy, s.rdApp, s.rdOwner, s.rdNext = true, true, st, nil
	s.rdTakes++
	return true
}

// releaseRead gives up the read token and passes it on (handOn). Called
// with s.mu held by the holder.
func (s *Session) releaseRead() {
	s.rdBusy, s.rdApp, s.rdOwner = false, false, nil
	if s.rdStop {
		s.rdStop = false
		s.conn.SetReadDeadline(time.Time{})
	}
	s.handOn()
}

// handOn passes on the free read token: to the goroutines of the first
// stream queued for it (rdNext; if none of them takes it, doneWaiting
// passes it on again), else to the reader goroutine if something waits
// for a frame, else to the reader goroutine once the token has stayed free
// for readIdleDelay. Called with s.mu held.
func (s *Session) handOn() {
	switch {
	case s.closeErr != nil || !s.rdShare:
		s.kickReader()
	case s.readerQueued():
		st := s.rdQueue[s.rdHead]
		s.rdNext = st
		st.cond.Broadcast()
	case s.rdNeed > 0:
		s.kickReader()
	case !s.rdArmed:
		s.armReadIdle()
	}
}

// armReadIdle starts the rdIdle timer. Called with s.mu held.
func (s *Session) armReadIdle() {
	s.rdArmed = true
	s.rdArmTakes = s.rdTakes
	if s.rdIdle == nil {
		s.rdIdle = time.AfterFunc(readIdleDelay, s.readIdle)
	} else {
		s.rdIdle.Reset(readIdleDelay)
	}
}

// doneWaiting is called when a goroutine of st that may have been woken to
// take the read token stops waiting without taking it; the last one to
// leave passes the token on. Called with s.mu held.
func (st *Stream) doneWaiting() {
	s := st.sess
	if s.rdNext == st && st.rdWaiting == 0 {
		s.rdNext = nil
		if !s.rdBusy {
			s.handOn()
		}
	}
}

// dropRead gives up the read token if holding, before the caller writes
// to the connection: a write can block until the peer reads, and the peer
// may be waiting for this side to read (a goroutine must never block on
// both). It returns the new value of holding. Called with s.mu held.
func (st *Stream) dropRead(holding bool) bool {
	if holding {
		st.sess.releaseRead()
	}
	return false
}

// readerQueued reports whether a goroutine is queued for the read token,
// dropping queue entries whose goroutines have stopped waiting. Called
// with s.mu held.
func (s *Session) readerQueued() bool {
	for s.rdHead < len(s.rdQueue) {
		st := s.rdQueue[s.rdHead]
		if st.rdWaiting > 0 {
			return true
		}
		st.rdQueued = false
		s.rdQueue[s.rdHead] = nil
		s.rdHead++
	}
	s.rdQueue = s.rdQueue[:0]
	s.rdHead = 0
	return false
}

// waitInput waits on st.cond for a frame (data, credit), queued for the
// read token. Called with s.mu held.
func (st *Stream) waitInput() {
	s := st.sess
	if !s.rdShare {
		st.cond.Wait()
		return
	}
	st.rdWaiting++
	if !st.rdQueued {
		st.rdQueued = true
		s.rdQueue = append(s.rdQueue, st)
	}
	st.cond.Wait()
	st.rdWaiting--
}

// kickReader asks the reader goroutine to take the read token when it is
// free. Called with s.mu held.
func (s *Session) kickReader() {
	s.rdWant = true
	select {
	case s.rdKick <- struct{}{}:
	default:
	}
}

// needFrame notes a goroutine that is about to wait for a frame without
// reading the connection itself; the reader goroutine reads for it. The
// caller calls s.rdNeed-- when done waiting. Called with s.mu held.
func (s *Session) needFrame() {
	s.rdNeed++
	if !s.rdBusy {
		s.kickReader()
	}
}

// readIdle runs on the rdIdle timer: if the read token has stayed free
// since the timer was armed, the reader goroutine takes it.
func (s *Session) readIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rdArmed = false
	switch {
	case s.rdBusy || s.closeErr != nil:
		// The next release arms the timer again.
	case s.rdTakes != s.rdArmTakes:
		// Application goroutines are reading now and then; the token
		// is free only between their reads. Look again later.
		s.armReadIdle()
	default:
		s.kickReader()
	}
}

// interruptRead makes an application goroutine that holds the read token
// stop reading and look at its state again. Called with s.mu held.
func (s *Session) interruptRead() {
	if s.rdApp && !s.rdStop {
		s.rdStop = true
		s.conn.SetReadDeadline(aLongTimeAgo)
	}
}

// notify wakes the goroutines waiting on st, including one blocked
// reading the connection for it. Called with s.mu held.
func (st *Stream) notify() {
	st.cond.Broadcast()
	if st.sess.rdOwner == st {
		st.sess.interruptRead()
	}
}

// readOne reads one frame and applies it, or reads on in a payload an
// interrupt cut short. Called by the holder of the read token with s.mu
// held, which it releases while reading. Read errors end the session; an
// interrupt just returns.
func (s *Session) readOne() {
	s.readFrame()
	if s.rdWoke != wokeNone {
		urgent := s.rdWoke == wokeUrgent
		s.rdWoke = wokeNone
		if next := s.rd.NextLen(); yieldAfterFrame && urgent && s.closeErr == nil && (next < 0 || next >= directMin) {
			// A goroutine this frame woke is waiting for a message and
			// is next in line on this P. Yield so it runs now rather
			// than after this goroutine's next read call, or the bulk
			// frame buffered next: on a busy machine a bulk stream's
			// goroutine can otherwise keep the P for hundreds of
			// microseconds (measured: echo p99 behind bulk 230 µs
			// without the yield, 150 µs with it). Small frames already
			// buffered are applied first (open+echo+close: 30 % more
			// streams/s than yielding after each), and frames of bulk
			// transfers don't yield at all (64 streams: 10 % faster).
			s.mu.Unlock()
			runtime.Gosched()
			s.mu.Lock()
		}
	}
}

// readFrame is readOne without the yield.
func (s *Session) readFrame() {
	if s.rx.buf != nil {
		s.readRest()
		return
	}
	s.mu.Unlock()
	f, plen, err := s.rd.ReadFrameHeader(directMin)
	s.mu.Lock()
	if err != nil {
		s.readFailed(err)
		return
	}
	s.stats.framesRecv.Add(1)
	if plen > 0 {
		s.readPayload(f, plen)
		return
	}
	s.stats.bytesRecv.Store(s.rd.BytesRead())
	if s.closeErr == nil {
		s.handle(f)
	}
}

// readFailed handles an error from reading the connection: the timeout
// of an interrupt is cleared, anything else ends the session. Called with
// s.mu held by the holder of the read token.
func (s *Session) readFailed(err error) {
	var ne net.Error
	if s.rdStop && errors.As(err, &ne) && ne.Timeout() {
		s.rdStop = false
		s.conn.SetReadDeadline(time.Time{})
		return
	}
	switch {
	case s.closeErr != nil:
	case errors.Is(err, frame.ErrFrameTooLarge):
		s.fail(frame.FrameSizeError, err.Error())
	case errors.Is(err, frame.ErrMalformed):
		s.fail(frame.ProtocolError, err.Error())
	case errors.Is(err, io.EOF):
		s.shutdown(errors.New("connection closed by peer"), false)
	default:
		s.shutdown(fmt.Errorf("reading from connection: %w", err), false)
	}
}

// bigReadAhead is the read-ahead (frame.Reader.SetReadAhead) while
// payloads go to other goroutines' buffers: one read call then takes in
// several frames, which costs a copy per payload but saves a system call
// per frame (measured: 64 streams 15 % faster). While the reading
// goroutine takes its own stream's payloads, read-ahead is minimal, so
// they go from the socket straight into its buffer (one stream: 5-8 %
// faster than with big read-ahead).
const bigReadAhead = 64 << 10

// directMin is the smallest DATA payload read apart from its header:
// straight into a blocked Read's buffer when there is one (no copy at all
// in user space), or into a buffer of its own that the stream keeps.
// Smaller payloads are read with their frame and copied.
const directMin = smallPayload

// readPayload reads the payload of the DATA frame f, whose header has
// been read, and applies the frame. If the stream's reader is blocked in
// Read with room for the whole payload and nothing buffered before it,
// the payload goes straight into the Read's buffer. Otherwise it goes
// into a pooled buffer handed to handleData. Called with s.mu held by the
// holder of the read token.
func (s *Session) readPayload(f *frame.Frame, plen int) {
	st := s.streams[f.StreamID]
	if st == nil || s.closeErr != nil || f.Flags&(frame.FlagCompressed|frame.FlagSYN) != 0 ||
		len(st.rwait) < plen || st.rbuf.len() != 0 || st.resetErr != nil || st.remoteFin || st.closed ||
		int64(plen) > st.recvWin.Credit() || int64(plen) > s.recvWin.Credit() {
		s.rx = rxState{buf: frame.GetBuffer(plen), id: f.StreamID, flags: f.Flags}
		s.rd.SetReadAhead(bigReadAhead)
		s.readRest()
		return
	}
	offer := st.rwait
	dst := offer[:plen]
	st.rwait = nil
	st.filling = true
	if st == s.rdOwner {
		s.rd.SetReadAhead(0)
	} else {
		s.rd.SetReadAhead(bigReadAhead)
	}
	s.mu.Unlock()
	n, err := s.rd.ReadPayload(dst)
	s.mu.Lock()
	st.filling = false
	if n > 0 {
		s.recvWin.Receive(n) // cannot fail: checked above
		st.recvWin.Receive(n)
		s.stats.dataRecv.Add(uint64(n))
		st.direct = n
	} else if err != nil && !st.closed {
		st.rwait = offer // nothing arrived: the Read may be offered again
	}
	switch {
	case err != nil && n < plen:
		// The rest of the payload goes through a buffer.
		s.rx = rxState{buf: frame.GetBuffer(plen - n), id: f.StreamID, flags: f.Flags}
	case f.Flags.Has(frame.FlagFIN):
		st.remoteFin = true
		st.maybeRemove()
	}
	s.stats.bytesRecv.Store(s.rd.BytesRead())
	st.cond.Broadcast()
	s.woke(st, false)
	if err != nil {
		s.readFailed(err)
	}
}

// woke notes that the frame being applied woke goroutines of st (nil: an
// AcceptStream), urgently if the frame looks like a message someone waits
// for (a small payload, a new stream) rather than part of a bulk
// transfer. readOne then yields. Called with s.mu held by the holder of
// the read token.
func (s *Session) woke(st *Stream, urgent bool) {
	if st != nil && st == s.rdOwner {
		return
	}
	if urgent {
		s.rdWoke = wokeUrgent
	} else if s.rdWoke == wokeNone {
		s.rdWoke = wokeSome
	}
}

// Values of Session.rdWoke.
const (
	wokeNone   = iota
	wokeSome   // goroutines of a bulk transfer
	wokeUrgent // goroutines waiting for a message: yield to them
)

// readRest reads (the rest of) the payload described by s.rx into its
// buffer and applies the frame. Called with s.mu held by the holder of
// the read token.
func (s *Session) readRest() {
	buf, off := s.rx.buf, s.rx.off
	s.mu.Unlock()
	n, err := s.rd.ReadPayload((*buf)[off:])
	s.mu.Lock()
	s.rx.off += n
	s.stats.bytesRecv.Store(s.rd.BytesRead())
	if err != nil {
		s.readFailed(err) // an interrupt leaves s.rx for the next holder
		return
	}
	f := frame.Frame{Type: frame.Data, StreamID: s.rx.id, Flags: s.rx.flags, Payload: *buf}
	s.rx = rxState{}
	if s.closeErr == nil {
		s.handleData(&f, buf)
	} else {
		frame.PutBuffer(buf)
	}
}
