package session

import (
	"fmt"
	"net"
	"time"

	"github.com/braidmux/braid/frame"
	"github.com/braidmux/braid/mux"
)

// This file is the seam between the session and its connection: the
// writer goroutine, which writes batches to conn (as does a Write that
// finds the connection idle), and the frame handlers; read.go has the
// reading side. Stream state never refers to the connection, so a later
// version can swap the connection under a live session.

// maxBatch is how many bytes the writer hands to one vectored write. A
// control frame or a small message queued during a write waits for at
// most this much (see BENCHMARKS.md for how it was chosen).
var maxBatch = 128 << 10

// directWrites lets Stream.Write write to an idle connection itself.
var directWrites = true

// yieldAfterFrame makes the goroutine reading the connection yield after a
// frame that woke another goroutine waiting for a message (see readOne in
// read.go).
var yieldAfterFrame = true

// notSentLowat is the TCP_NOTSENT_LOWAT set on TCP connections: at most
// this much unsent data waits in the kernel, in front of frames the
// scheduler would put first.
var notSentLowat = 64 << 10

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

// connWriter is the state of whoever holds the right to write to the
// connection: the writer goroutine, or a Stream.Write that found the
// connection idle and writes its own batch (saving a goroutine hand-off
// on the latency path). Guarded by Session.connBusy.
type connWriter struct {
	batch    mux.Batch
	bufs     net.Buffers
	flat     []byte
	vectored bool
	deadline time.Time // the write deadline last set on the connection
}

// writeLoop is the writer goroutine: it takes batches of frames from the
// scheduler and writes each with one call. It exits, closing the
// connection, once the session is closing and nothing sendable is left,
// or on a write error.
func (s *Session) writeLoop() {
	defer s.wg.Done()
	defer s.conn.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.writeErr == nil {
		if !s.connBusy && s.sched.HasWork(s.sendWin.Available()) {
			s.writeBatch()
			continue
		}
		if s.closing && !s.connBusy {
			return
		}
		s.mu.Unlock()
		<-s.kick
		s.mu.Lock()
	}
}

// writeBatch takes the connection, writes one batch, and gives the
// connection back. Called with s.mu held and s.connBusy false; s.mu is
// released during the write.
func (s *Session) writeBatch() {
	s.connBusy = true
	w := &s.cw
	maxPayload := s.peer.maxPayload
	if maxPayload == 0 { // before the handshake only HELLO is queued
		maxPayload = frame.MinMaxFrameSize - frame.MaxDataOverhead
	}
	used := s.sched.Fill(&w.batch, maxPayload, s.sendWin.Available(), maxBatch)
	s.sendWin.Take(int(used))
	for _, e := range w.batch.Sent() {
		st := streamOf(e.Stream)
		if !e.Prepaid {
			st.sendWin.Take(e.N)
		}
		st.inflight += e.N
	}
	// Moving the connection's write deadline costs a timer update, so it
	// is pushed forward only once it is an eighth of the timeout stale.
	if s.closing {
		if !w.deadline.Equal(s.closeBy) {
			w.deadline = s.closeBy
			s.conn.SetWriteDeadline(w.deadline)
		}
	} else if now := time.Now(); w.deadline.Sub(now) < s.cfg.ConnectionWriteTimeout-s.cfg.ConnectionWriteTimeout/8 {
		w.deadline = now.Add(s.cfg.ConnectionWriteTimeout)
		s.conn.SetWriteDeadline(w.deadline)
	}
	s.mu.Unlock()

	var err error
	if w.vectored {
		w.bufs = w.batch.Buffers()
		_, err = w.bufs.WriteTo(s.conn)
	} else {
		w.flat = w.flat[:0]
		for _, b := range w.batch.Buffers() {
			w.flat = append(w.flat, b...)
		}
		_, err = s.conn.Write(w.flat)
	}
	s.stats.writes.Add(1)
	s.stats.bytesSent.Add(uint64(w.batch.Size()))
	s.stats.framesSent.Add(uint64(w.batch.Frames()))
	s.stats.dataSent.Add(uint64(used))

	s.mu.Lock()
	for _, e := range w.batch.Sent() {
		st := streamOf(e.Stream)
		st.inflight -= e.N
		if err == nil {
			st.wrote += e.N
		}
		if e.Fin {
			st.finSent = true
			st.maybeRemove()
		}
		if st.inflight == 0 {
			st.cond.Broadcast()
		}
	}
	w.batch.Reset()
	s.connBusy = false
	if err != nil {
		if s.closeErr == nil {
			s.log.Warn("braid: connection write failed; closing session", "err", err, "remote", s.conn.RemoteAddr())
		}
		s.writeErr = fmt.Errorf("writing to connection: %w", err)
		s.shutdown(s.writeErr, false)
	}
	if s.closing || s.sched.HasWork(s.sendWin.Available()) {
		s.wake()
	}
}

// writeDirect lets a Write send its data itself when the connection is
// idle and the writer goroutine has nothing queued before it. Called with
// s.mu held.
func (s *Session) writeDirect() {
	if directWrites && !s.connBusy && !s.closing {
		s.writeBatch()
		return
	}
	s.wake()
}

// isPeerID reports whether id has the parity of streams the peer opens.
func (s *Session) isPeerID(id uint32) bool { return (id%2 == 1) != s.client }

// neverOpened reports whether id names a stream that has not existed yet.
func (s *Session) neverOpened(id uint32) bool {
	if s.isPeerID(id) {
		return id > s.lastPeerID
	}
	return id >= s.nextID
}

// handle applies one frame. Called with s.mu held, by the reader.
func (s *Session) handle(f *frame.Frame) {
	switch f.Type {
	case frame.Data:
		s.handleData(f, nil)
	case frame.WindowUpdate:
		s.handleWindowUpdate(f)
	case frame.Reset:
		st := s.streams[f.StreamID]
		if st == nil {
			if f.StreamID == 0 || s.neverOpened(f.StreamID) {
				s.fail(frame.ProtocolError, fmt.Sprintf("RESET for stream %d that was never opened", f.StreamID))
			}
			return
		}
		st.resetErr = &StreamError{Code: uint32(f.ErrorCode), Remote: true}
		st.abort()
	case frame.Ping:
		if !f.Flags.Has(frame.FlagACK) {
			s.sched.PushControl(&frame.Frame{Type: frame.Ping, Flags: frame.FlagACK, Opaque: f.Opaque})
			s.wake()
			return
		}
		now := time.Now()
		if f.Opaque == s.pingOpaque && !s.pingSentAt.IsZero() {
			sample := now.Sub(s.pingSentAt)
			if s.rtt == 0 {
				s.rtt = sample
			} else {
				s.rtt = (7*s.rtt + sample) / 8
			}
			if s.minRTT == 0 || sample < s.minRTT {
				s.minRTT = sample
			}
			if s.rttProbes > 0 {
				// The first samples of a session include start-up
				// costs; a few more back-to-back PINGs find the path's
				// real RTT, which window auto-tuning depends on.
				s.rttProbes--
				s.sendKeepalivePing(now)
			} else {
				s.pingSentAt = time.Time{}
			}
		} else if ch, ok := s.pings[f.Opaque]; ok {
			close(ch)
			delete(s.pings, f.Opaque)
		}
	case frame.GoAway:
		s.goAwayRecv = true
		if f.ErrorCode != frame.NoError {
			s.log.Warn("braid: peer ended session", "code", f.ErrorCode.String(), "debug", string(f.Debug))
			s.shutdown(&ProtocolError{Code: f.ErrorCode, Reason: string(f.Debug), Remote: true}, false)
			return
		}
		s.log.Debug("braid: received GOAWAY", "last_stream_id", f.LastStreamID)
		// Streams we opened that the peer never saw were refused.
		for id, st := range s.streams {
			if !s.isPeerID(id) && id > f.LastStreamID {
				st.resetErr = &StreamError{Code: uint32(frame.RefusedStream), Remote: true}
				st.abort()
			}
		}
		s.maybeFinishGoAway()
	case frame.Hello:
		s.fail(frame.ProtocolError, "HELLO after the handshake")
	default:
		// Unknown frame types are ignored (SPEC.md, forward compatibility).
	}
}

// handleData applies a DATA frame. owned, if not nil, is a pooled buffer
// holding exactly f.Payload that handleData now owns; otherwise the
// payload is in the Reader's buffer. Called with s.mu held.
func (s *Session) handleData(f *frame.Frame, owned *[]byte) {
	defer func() { frame.PutBuffer(owned) }() // nil once handed to a stream
	id := f.StreamID
	if id == 0 {
		s.fail(frame.ProtocolError, "DATA on stream 0")
		return
	}
	payload := f.Payload
	if f.Flags.Has(frame.FlagCompressed) {
		if s.compression == frame.CompressionNone {
			s.fail(frame.CompressionError, "COMPRESSED flag but no compression was negotiated")
			return
		}
		if len(payload) > 0 {
			dec, err := decompress(payload, int(s.cfg.MaxFrameSize))
			if err != nil {
				s.fail(frame.CompressionError, err.Error())
				return
			}
			frame.PutBuffer(owned)
			owned = dec
			payload = *dec
		}
	}
	if f.Flags&(frame.FlagACK|frame.FlagSYN|frame.FlagFIN) == frame.FlagACK && len(payload) == 0 {
		// The peer's application accepted a stream we opened.
		if st := s.streams[id]; st != nil {
			s.acked(st)
		} else if s.neverOpened(id) {
			s.fail(frame.ProtocolError, fmt.Sprintf("ACK for stream %d that was never opened", id))
		}
		return
	}
	// Flow control counts payload bytes as the application sees them
	// (decompressed), so windows bound memory whatever the ratio.
	n := len(payload)
	if err := s.recvWin.Receive(n); err != nil {
		s.fail(frame.FlowControlError, "session window exceeded: "+err.Error())
		return
	}
	s.stats.dataRecv.Add(uint64(n))
	st := s.streams[id]
	if f.Flags.Has(frame.FlagSYN) {
		if st != nil || !s.isPeerID(id) || id <= s.lastPeerID || id > maxStreamID {
			s.fail(frame.ProtocolError, fmt.Sprintf("SYN for stream %d: reused ID or wrong parity", id))
			return
		}
		s.lastPeerID = id
		if s.goAwaySent || s.closing || s.numIncoming >= s.cfg.MaxIncomingStreams || len(s.acceptQ) >= s.cfg.AcceptBacklog {
			s.stats.refused.Add(1)
			s.sched.PushControl(&frame.Frame{Type: frame.Reset, StreamID: id, ErrorCode: frame.RefusedStream})
			s.wake()
			if s.consumeSession(n) {
				s.wake()
			}
			return
		}
		st = s.newStream(id)
		st.incoming = true
		s.streams[id] = st
		s.numIncoming++
		s.acceptQ = append(s.acceptQ, st)
		s.stats.streamsAccepted.Add(1)
		s.signalAccept()
		s.woke(nil, true)
	} else if st == nil {
		if s.neverOpened(id) {
			s.fail(frame.ProtocolError, fmt.Sprintf("DATA for stream %d that was never opened", id))
			return
		}
		if s.consumeSession(n) { // a stream already gone: data in flight
			s.wake()
		}
		return
	}
	if st.remoteFin {
		if s.consumeSession(n) {
			s.wake()
		}
		st.resetErr = &StreamError{Code: uint32(frame.StreamClosed)}
		s.sched.PushControl(&frame.Frame{Type: frame.Reset, StreamID: id, ErrorCode: frame.StreamClosed})
		s.wake()
		st.abort()
		return
	}
	if err := st.recvWin.Receive(n); err != nil {
		s.fail(frame.FlowControlError, fmt.Sprintf("stream %d window exceeded: %v", id, err))
		return
	}
	if n > 0 {
		if st.closed {
			// Closed here: drop the bytes, but credit them so the peer
			// is not left blocked.
			if s.consumed(st, n) {
				s.wake()
			}
		} else if owned != nil && n >= smallPayload {
			st.rbuf.pushOwned(owned)
			owned = nil
		} else {
			st.rbuf.push(payload, s.rd)
		}
	}
	if f.Flags.Has(frame.FlagFIN) {
		st.remoteFin = true
		st.maybeRemove()
	}
	st.cond.Broadcast()
	s.woke(st, n < smallPayload)
}

func (s *Session) handleWindowUpdate(f *frame.Frame) {
	if f.WindowDelta == 0 {
		s.fail(frame.ProtocolError, "WINDOW_UPDATE with delta 0")
		return
	}
	if f.StreamID == 0 {
		if err := s.sendWin.Add(f.WindowDelta); err != nil {
			s.fail(frame.FlowControlError, "session window: "+err.Error())
			return
		}
		if s.enc != nil {
			for _, st := range s.streams { // compressing Writes wait for it
				if st.creditWait {
					st.cond.Broadcast()
				}
			}
		}
		s.wake()
		return
	}
	st := s.streams[f.StreamID]
	if st == nil {
		if s.neverOpened(f.StreamID) {
			s.fail(frame.ProtocolError, fmt.Sprintf("WINDOW_UPDATE for stream %d that was never opened", f.StreamID))
		}
		return
	}
	if err := st.sendWin.Add(f.WindowDelta); err != nil {
		s.fail(frame.FlowControlError, fmt.Sprintf("stream %d window: %v", f.StreamID, err))
		return
	}
	s.sched.AddCredit(&st.ms, int64(f.WindowDelta))
	st.cond.Broadcast() // a Write blocked on credit may send itself
	s.woke(st, false)
	s.wake()
}
