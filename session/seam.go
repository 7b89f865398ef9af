package session

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"runtime"
	"time"

	"github.com/braidmux/braid/frame"
	"github.com/braidmux/braid/mux"
)

// The connection seam. seam is the only type that touches the net.Conn:
// the reader goroutine reads frames through it, and whoever holds the
// right to write (Session.connBusy: the writer goroutine, or a Write that
// found the connection idle) writes batches through it. Streams never see
// the connection. It relies on nothing beyond net.Conn's documented
// contract: a Read returns data or an error, Close unblocks it. No read
// deadline is ever set (some conns close themselves when one fires), and
// a failed write deadline is not an error (the session's keepalive still
// notices a dead peer).
type seam struct {
	conn net.Conn
	door *doorRecorder // what rd reads through: keeps the first bytes, for handshake errors
	rd   *frame.Reader // the reader goroutine's alone
	w    connWriter    // the holder of Session.connBusy's alone

	first      *frame.Frame  // a first frame read before the session started (Listener), or nil
	counted    uint64        // rd.BytesRead() as of the last frame counted in the session's sequence
	readerDone chan struct{} // closed when the reader goroutine of this connection exits
}

// connWriter is the state of whoever holds the right to write to the
// connection.
type connWriter struct {
	batch    mux.Batch[*Stream]
	bufs     net.Buffers
	flat     []byte
	vectored bool
	deadline time.Time // the write deadline last set on the connection
	frames   int       // frames in the last batch released (releaseBatch)
}

func newSeam(conn net.Conn, maxFrameSize uint32) *seam {
	door := &doorRecorder{r: conn}
	rd := frame.NewReader(door, maxFrameSize)
	rd.SetReadAhead(readAhead)
	return &seam{conn: conn, door: door, rd: rd, w: connWriter{vectored: writevConn(conn)}, readerDone: make(chan struct{})}
}

// readFrame reads the next frame. A DATA payload of directMin bytes or
// more is read into a pooled buffer of its own, returned as owned (and
// aliased by f.Payload), which the caller must hand on or put back;
// anything else aliases the Reader's buffer until the next readFrame.
// Called by the reader goroutine only, without the session lock.
func (c *seam) readFrame() (f *frame.Frame, owned *[]byte, err error) {
	f, plen, err := c.rd.ReadFrameHeader(directMin)
	if err != nil || plen == 0 {
		return f, nil, err
	}
	owned = payloadBuffer(plen)
	if _, err := c.rd.ReadPayload(*owned); err != nil {
		frame.PutBuffer(owned)
		return nil, nil, err
	}
	f.Payload = *owned
	return f, owned, nil
}

// payloadBuffer returns a buffer of exactly n bytes for a payload the
// stream will keep: a pooled one when n nearly fills its power-of-two
// size class, else one of its own, so that memory held on the peer's
// behalf stays close to the payload bytes its window allows (a 2049-byte
// payload in a 4096-byte pooled buffer would double it).
func payloadBuffer(n int) *[]byte {
	if class := 1 << bits.Len(uint(n-1)); n >= class-class/8 {
		return frame.GetBuffer(n)
	}
	b := make([]byte, n)
	return &b
}

// write writes one batch with one call. Called by the holder of
// Session.connBusy, without the session lock.
func (c *seam) write() error {
	w := &c.w
	if w.vectored {
		w.bufs = w.batch.Buffers()
		_, err := w.bufs.WriteTo(c.conn)
		return err
	}
	w.flat = w.flat[:0]
	for _, b := range w.batch.Buffers() {
		w.flat = append(w.flat, b...)
	}
	_, err := c.conn.Write(w.flat)
	return err
}

// writeBufs writes bufs (slices of the replay buffer) with one vectored
// write where the conn has it, else one Write per slice (each up to a
// replay chunk). Called by the holder of Session.connBusy, without the
// session lock.
func (c *seam) writeBufs(bufs net.Buffers) error {
	if c.w.vectored {
		_, err := bufs.WriteTo(c.conn)
		return err
	}
	for _, b := range bufs {
		if _, err := c.conn.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// setWriteDeadline moves the connection's write deadline to t if it is
// not already there. Errors are ignored: a conn without deadlines still
// works, only a stuck write is then not cut short. Called by the holder
// of Session.connBusy.
func (c *seam) setWriteDeadline(t time.Time) {
	if !c.w.deadline.Equal(t) {
		c.w.deadline = t
		c.conn.SetWriteDeadline(t)
	}
}

// boundWrites makes writes to the connection end by t: a write deadline,
// and a timer that closes the connection shortly after t in case the conn
// ignores deadlines. Safe to call concurrently with a write.
func (c *seam) boundWrites(t time.Time) {
	c.conn.SetWriteDeadline(t)
	conn := c.conn
	time.AfterFunc(time.Until(t)+100*time.Millisecond, func() { conn.Close() })
}

// readAhead is how many bytes the reader asks the connection for at a
// time (frame.Reader.SetReadAhead): many small frames per read call,
// while a payload at least this large goes straight from the connection
// into its own buffer.
var readAhead = 16 << 10

// maxBatch is how many bytes the writer hands to one vectored write. A
// control frame or a small message queued during a write waits for at
// most this much (see BENCHMARKS.md for how it was chosen).
var maxBatch = 128 << 10

// directWrites lets Stream.Write write to an idle connection itself.
var directWrites = true

// directUpdates lets Stream.Read write the window update it queued.
var directUpdates = true

// yieldAfterFrame makes the reader goroutine yield after a frame that
// woke a goroutine waiting for a message (see readLoop).
var yieldAfterFrame = true

// notSentLowat is the TCP_NOTSENT_LOWAT set on TCP connections: at most
// this much unsent data waits in the kernel, in front of frames the
// scheduler would put first.
var notSentLowat = 64 << 10

// maxControlQueue bounds the control frames queued for the writer; past
// it the reader stops reading (see readLoop).
const maxControlQueue = 64 << 10

// directMin is the smallest DATA payload read into a buffer of its own;
// smaller ones are copied out of the Reader's buffer.
const directMin = smallPayload

// writevConn reports whether net.Buffers.WriteTo turns into one writev on
// c; for other conns (TLS, pipes) the writer copies a batch into one
// buffer so it becomes one Write.
func writevConn(c net.Conn) bool {
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn:
		return true
	}
	return false
}

// readLoop is the reader goroutine: the only reader of the connection. It
// reads frames and applies each under the session lock; application
// goroutines only wait for what it delivers. It never writes to the
// connection (a reader blocked writing to a peer that is itself blocked
// writing would deadlock both), so it never waits for anything but the
// connection and the lock. It exits when reading fails, which Close
// causes by closing the connection.
func (s *Session) readLoop(c *seam) {
	defer s.wg.Done()
	defer close(c.readerDone)
	for {
		var f *frame.Frame
		var owned *[]byte
		var err error
		if c.first != nil {
			f, c.first = c.first, nil
		} else {
			f, owned, err = c.readFrame()
		}
		s.mu.Lock()
		if err != nil {
			// A frame that does not decode is the peer's fault, not the
			// connection's: resuming would only resend it.
			bad := errors.Is(err, frame.ErrMalformed) || errors.Is(err, frame.ErrFrameTooLarge)
			if c != s.seam || bad || !s.connLost(c, err) {
				s.readFailed(err)
			}
			s.mu.Unlock()
			c.rd.Close()
			return
		}
		n := c.rd.BytesRead() - c.counted
		c.counted += n
		s.stats.framesRecv.Add(1)
		s.stats.bytesRecv.Add(n)
		s.receivedBytes(n)
		s.lastRx = time.Now() // any frame is a sign of life (keepalive)
		switch {
		case s.closeErr != nil && f.Type == frame.Data && f.StreamID != 0 && !f.Flags.Has(frame.FlagSYN):
			// The session has ended, but data and FINs that arrived
			// before the connection closed still reach their streams
			// (a peer's last bytes, then its FIN, then its close must
			// read as data and io.EOF).
			s.handleStreamFrame(f, owned)
		case s.closeErr != nil:
			frame.PutBuffer(owned) // draining until the connection closes
		case s.peer.maxPayload == 0:
			s.handleHello(f)
			frame.PutBuffer(owned)
		default:
			s.handle(f, owned)
		}
		for s.sched.ControlBytes() > maxControlQueue && s.closeErr == nil && c == s.seam && !s.detached() {
			// The answers this side owes (PING ACKs, RESETs of refused
			// streams) are not going out: the peer does not read. Stop
			// reading until they drain, rather than queue without bound
			// (SPEC.md §11); ConnectionWriteTimeout ends the session if
			// they never do.
			s.ctlRoom.Wait()
		}
		urgent := s.urgent
		s.urgent = false
		s.mu.Unlock()
		if urgent && yieldAfterFrame {
			// The frame woke a goroutine waiting for a message (a small
			// payload, a new stream). Unless the next frame is already
			// here and small, let it run now rather than after this
			// goroutine's next read or the bulk frame buffered next: on a
			// busy machine the reader can otherwise keep the P for
			// hundreds of microseconds.
			if next := c.rd.NextLen(); next < 0 || next >= directMin {
				runtime.Gosched()
			}
		}
	}
}

// readFailed ends the session after a failed read. Called with s.mu held.
func (s *Session) readFailed(err error) {
	switch {
	case s.closeErr != nil:
	case s.peer.maxPayload == 0:
		if s.hsErr != nil { // the handshake timer closed the connection
			return
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("peer closed the connection before its HELLO: %w", err)
		}
		err = s.handshakeError(err)
		s.hsErr = err
		s.shutdown(err, false)
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

// writeLoop is the writer goroutine: it takes batches of frames from the
// scheduler and writes each with one call. It exits, closing the
// connection, once the session is closing and nothing sendable is left,
// or on a write error.
//
// In a resumable session it works in two stages that run at once: the
// filler goroutine (fillLoop, holding resumer.filling) fills a batch and
// copies it to the replay buffer, and this goroutine (holding connBusy)
// writes the copies from there. So one batch is copied while the one
// before it is written. Once the filler has stopped (the session is
// closing), this goroutine fills too.
func (s *Session) writeLoop() {
	defer s.wg.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.writeErr == nil {
		if r := s.res; r != nil && r.capacity > 0 {
			if s.connFree() && r.pendingN > 0 && !r.detached {
				s.writePendingUnlocking(r)
				continue
			}
			if r.plain && r.bulk == 0 && s.idle() && s.sched.HasWork(s.dataRoom()) {
				s.writeBatchUnlocking()
				continue
			}
			if (!r.fillerOn || s.closing) && r.canFill() && s.sched.HasWork(s.dataRoom()) {
				// The filler is gone, or may not have seen that the
				// session is closing: what is queued (a GOAWAY) must
				// go out before the writer closes the connection.
				s.fillUnlocking(r)
				continue
			}
		} else if s.idle() && s.sched.HasWork(s.dataRoom()) {
			s.writeBatchUnlocking()
			continue
		}
		if s.closing && !s.connBusy && !s.replayPending() {
			break
		}
		s.mu.Unlock()
		<-s.kick
		s.mu.Lock()
	}
	c := s.seam
	linger := s.writeErr == nil && !s.closeBy.IsZero() && !s.detached()
	closeBy := s.closeBy
	s.mu.Unlock()
	if linger {
		c.lingerClose(closeBy, s.stats.bytesRecv.Load)
	}
	c.conn.Close()
	s.mu.Lock()
}

// lingerClose ends a connection after a flushed close without losing
// what this side sent: it closes the connection's sending half (the peer
// reads our last frames, then EOF) and reads on (the reader goroutine
// does) until the peer closes too. Closing at once would leave the
// peer's late frames (window updates for the data it is still reading,
// acknowledgements) unread, and TCP answers those with a reset, which
// can make the peer's kernel discard data we sent that it had not read
// yet, FIN included. It stops waiting at closeBy, or once nothing has
// arrived for lingerIdle (received reports the bytes received so far): a
// peer that neither sends nor closes is not worth waiting for. A conn
// without CloseWrite gets none of this. Called by the writer goroutine
// without the session lock.
func (c *seam) lingerClose(closeBy time.Time, received func() uint64) {
	cw, ok := c.conn.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	t := time.NewTicker(lingerIdle)
	defer t.Stop()
	last := received()
	for time.Now().Before(closeBy) {
		select {
		case <-c.readerDone:
			return
		case <-t.C:
			if n := received(); n != last {
				last = n
				continue
			}
			return
		}
	}
}

// lingerIdle is how long lingerClose waits for the peer's next frame.
const lingerIdle = 20 * time.Millisecond

// writeBatchUnlocking takes the connection, writes one batch, and gives
// the connection back. Called with s.mu held and the connection idle
// (idle); s.mu is released during the write.
//
// A resumable session also copies the batch to its replay buffer
// (writeCopyUnlocking), and while its connection is lost writes there
// only: to Writes the batch is sent, and a resume sends it again.
func (s *Session) writeBatchUnlocking() {
	s.assertLocked()
	if r := s.res; r != nil && !r.plain {
		s.writeCopyUnlocking(r)
		return
	}
	s.connBusy = true
	c := s.seam
	w := &c.w
	used := s.fillBatch(w)
	s.moveWriteDeadline(c)
	s.mu.Unlock()

	s.stats.writes.Add(1)
	s.stats.bytesSent.Add(uint64(w.batch.Size())) // counted before the write: see Stats
	err := c.write()
	s.stats.framesSent.Add(uint64(w.batch.Frames()))
	s.stats.dataSent.Add(uint64(used))

	s.mu.Lock()
	s.releaseBatch(w, err == nil)
	s.connBusy = false
	s.writeDone(c, err)
}

// fillBatch takes the next batch from the scheduler into w.batch: the
// control frames queued (with an ACK first if one is due), then DATA
// within the session's credit. Called with s.mu held by the holder of the
// batch (connBusy, or resumer.filling in a resumable session). It returns
// the DATA payload bytes taken.
func (s *Session) fillBatch(w *connWriter) int {
	maxPayload := s.peer.maxPayload
	if maxPayload == 0 { // before the handshake only HELLO is queued
		maxPayload = frame.MinMaxFrameSize - frame.MaxDataOverhead
	}
	r := s.res
	if r != nil && r.capacity > 0 && !r.plain && r.received-r.ackSent >= ackPiggyback && s.closeErr == nil {
		// Something goes out anyway: acknowledge what arrived, so the
		// peer's replay buffer stays small (and in its caches).
		r.ackSent = r.received
		s.sched.PushControl(&frame.Frame{Type: frame.Ack, Received: r.received})
	}
	used := s.sched.Fill(&w.batch, maxPayload, s.dataRoom(), maxBatch)
	s.sendWin.Take(int(used))
	s.ctlRoom.Broadcast() // the control queue is empty: a paused reader may go on
	for _, e := range w.batch.Sent() {
		e.Stream.Owner.send.inflight += int32(e.N)
	}
	return int(used)
}

// writeCopyUnlocking is writeBatchUnlocking for a resumable session: it
// writes the batch as it is and copies it to the replay buffer
// afterwards, while the peer reads it. A small Write that found the
// connection idle sends its bytes this way at once; before the handshake
// has agreed on resumption, every batch goes this way. Called with s.mu
// held and the connection idle; releases it while writing and copying.
func (s *Session) writeCopyUnlocking(r *resumer) {
	c := s.seam
	w := &c.w
	s.connBusy = true
	used, size, regions := s.fillReplay(r, w)
	detached := r.detached
	r.busyFrom = r.wrote
	if !detached {
		r.wrote += uint64(size)
	}
	s.moveWriteDeadline(c)
	s.mu.Unlock()

	var err error
	if !detached {
		s.stats.writes.Add(1)
		s.stats.bytesSent.Add(uint64(size)) // counted before the write: see Stats
		err = c.write()
	}
	copyBufs(regions, w.batch.Buffers())

	s.mu.Lock()
	s.filled(r, w, used, regions)
	s.replayWriteDone(r, c, err)
}

// fillReplay starts filling a batch of a resumable session: it takes
// resumer.filling, fills w.batch and reserves its bytes at the end of
// the replay buffer, returning the DATA bytes taken, the batch's size and
// the regions to copy it into. Called with s.mu held and r.filling false.
func (s *Session) fillReplay(r *resumer, w *connWriter) (used, size int, regions net.Buffers) {
	r.filling = true
	used = s.fillBatch(w)
	size = w.batch.Size()
	r.sent += uint64(size)
	return used, size, r.out.reserve(size, r.regions[:0])
}

// filled ends what fillReplay began, once the batch is copied into
// regions: the batch's Writes are done with their bytes, and filling is
// free. Called with s.mu held.
func (s *Session) filled(r *resumer, w *connWriter, used int, regions net.Buffers) {
	s.releaseBatch(w, true)
	s.stats.framesSent.Add(uint64(w.frames))
	s.stats.dataSent.Add(uint64(used))
	clear(regions)
	r.regions = regions[:0]
	r.filling = false
	if r.swapping {
		r.swapped.Broadcast()
	}
}

// replayWriteDone gives the connection back after a resumable session's
// write: a failed write detaches the session (the bytes are in the
// replay buffer and go out on resume) rather than end it. A plain
// session's pipeline drops the bytes written, and its spare chunks once
// no large Write waits. Called with s.mu held.
func (s *Session) replayWriteDone(r *resumer, c *seam, err error) {
	if err != nil && s.connLost(c, fmt.Errorf("writing to connection: %w", err)) {
		err = nil
	}
	if r.plain {
		r.acked = r.wrote // nothing is kept to resend
	}
	s.connBusy = false
	s.trimOut()
	if r.plain && r.bulk == 0 && r.pendingN == 0 && !r.filling {
		r.out.dropSpare() // an idle session holds no chunks
	}
	if r.swapping {
		r.swapped.Broadcast()
	}
	s.writeDone(c, err)
}

// fillUnlocking is the first stage of a resumable session's write: it
// fills a batch, copies it to the replay buffer and queues the copy to be
// written (writePendingUnlocking). The Writes whose bytes the batch holds
// are then done with them, before the connection write. Called with s.mu
// held, resumption agreed and r.canFill; releases it while copying.
func (s *Session) fillUnlocking(r *resumer) {
	w := &s.seam.w
	if r.plain {
		w = &r.w
	}
	used, size, regions := s.fillReplay(r, w)
	s.mu.Unlock()

	copyBufs(regions, w.batch.Buffers())

	s.mu.Lock()
	if !r.detached { // while detached, the resume sends it
		r.pending = appendRegions(r.pending, regions)
		r.pendingN += size
	}
	s.filled(r, w, used, regions)
	s.wake()
}

// writePendingUnlocking is the second stage of a resumable session's
// write: it takes the connection and writes every copied batch queued by
// fillUnlocking, from the replay buffer. Called with s.mu held, the
// connection free and not detached, and something pending; releases it
// while writing.
func (s *Session) writePendingUnlocking(r *resumer) {
	c := s.seam
	s.connBusy = true
	bufs, n := r.pending, r.pendingN
	r.pending, r.writing = r.writing[:0], nil
	r.pendingN = 0
	r.kickFiller() // the next batch may be copied during this write
	r.busyFrom = r.wrote
	r.wrote += uint64(n)
	s.moveWriteDeadline(c)
	s.mu.Unlock()

	s.stats.writes.Add(1)
	s.stats.bytesSent.Add(uint64(n)) // counted before the write: see Stats
	err := c.writeBufs(bufs)

	s.mu.Lock()
	clear(bufs)
	r.writing = bufs[:0]
	s.replayWriteDone(r, c, err)
}

// releaseBatch lets go of a batch once it is written (or, in a resumable
// session, in the replay buffer): its Writes are done with their bytes
// and, if sent, count them as written and its FINs as sent. Called with
// s.mu held.
func (s *Session) releaseBatch(w *connWriter, sent bool) {
	for _, e := range w.batch.Sent() {
		st := e.Stream.Owner
		st.send.inflight -= int32(e.N)
		if sent {
			if e.N > 0 { // a Write's bytes: it allocated st.waits
				st.waits.wrote += e.N
			}
			if e.Fin {
				st.finSent()
			}
		}
		if st.send.inflight == 0 {
			st.notify()
		}
	}
	w.frames = w.batch.Frames()
	w.batch.Reset()
}

// moveWriteDeadline pushes the connection's write deadline forward before
// a write. Moving it costs a timer update, so it moves only once it is an
// eighth of the timeout stale. Called with s.mu held and connBusy.
func (s *Session) moveWriteDeadline(c *seam) {
	if s.closing {
		c.setWriteDeadline(s.closeBy)
	} else if now := time.Now(); c.w.deadline.Sub(now) < s.cfg.ConnectionWriteTimeout-s.cfg.ConnectionWriteTimeout/8 {
		c.setWriteDeadline(now.Add(s.cfg.ConnectionWriteTimeout))
	}
}

// writeDone ends the session if the write failed, and wakes the writer if
// there is more to send. Called with s.mu held, after connBusy was
// released.
func (s *Session) writeDone(c *seam, err error) {
	if err != nil {
		if s.closeErr == nil {
			s.log.Warn("braid: connection write failed; closing session", "err", err, "remote", c.conn.RemoteAddr())
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			// Not wrapped: a session that ended is not a deadline a
			// caller could retry after (errors.Is(err,
			// os.ErrDeadlineExceeded) stays false).
			s.writeErr = fmt.Errorf("writing to connection: no progress for ConnectionWriteTimeout (%v): the peer is not reading", s.cfg.ConnectionWriteTimeout)
		} else {
			s.writeErr = fmt.Errorf("writing to connection: %w", err)
		}
		s.shutdown(s.writeErr, false)
	}
	if s.closing || s.sched.HasWork(s.dataRoom()) || s.replayPending() {
		s.wake()
	}
}

// writeDirectUnlocking lets a Write send its data itself when the
// connection is idle. Called with s.mu held; releases it while writing.
func (s *Session) writeDirectUnlocking() {
	if directWrites && s.idle() && !s.closing {
		s.writeBatchUnlocking()
		return
	}
	s.wake()
}

// flushControlUnlocking sends queued control frames (window updates). If
// the connection is idle and no stream has data ready, the calling
// goroutine writes them itself (the update then reaches the sender
// without waiting for the writer goroutine to be scheduled); otherwise it
// wakes the writer. Called with s.mu held; releases it while writing.
func (s *Session) flushControlUnlocking() {
	if directWrites && directUpdates && s.idle() && !s.closing && s.sched.Len() == 0 {
		s.writeBatchUnlocking()
		return
	}
	s.wake()
}

// schedQuantum is the scheduler's DRR quantum: one frame of the default
// size per turn. With mux.DefaultQuantum (16 KiB) 64 bulk streams sent 16
// KiB frames and moved 2 300 MB/s; with 64 KiB, 3 200 MB/s (BENCHMARKS.md).
var schedQuantum = 64 << 10
