package session

import (
	"fmt"
	"slices"
	"time"

	"github.com/braidmux/braid/flowcontrol"
	"github.com/braidmux/braid/frame"
)

// Applying received frames. Everything here runs on the reader goroutine
// with s.mu held, and never releases it: frames that need an answer queue
// it for the writer.

// handle applies one frame received after the handshake. owned, if not
// nil, is a pooled buffer holding f.Payload that handle now owns.
func (s *Session) handle(f *frame.Frame, owned *[]byte) {
	s.assertLocked()
	switch f.Type {
	case frame.Data, frame.WindowUpdate, frame.Reset:
		if f.StreamID != 0 {
			s.handleStreamFrame(f, owned)
			return
		}
		frame.PutBuffer(owned)
		if f.Type != frame.WindowUpdate {
			s.fail(frame.ProtocolError, fmt.Sprintf("%v on stream 0", f.Type))
			return
		}
		s.handleSessionWindowUpdate(f)
	case frame.Ping:
		s.handlePing(f)
	case frame.GoAway:
		s.handleGoAway(f)
	case frame.Hello:
		s.fail(frame.ProtocolError, "HELLO after the handshake")
	case frame.Ack:
		s.handleAck(f)
	case frame.Resume:
		s.fail(frame.ProtocolError, "RESUME inside a running session")
	default:
		// Unknown frame types are ignored (SPEC.md, forward compatibility).
	}
}

// frameKind is a row of SPEC.md §5.3's table 2.
type frameKind uint8

const (
	kindSyn          frameKind = iota // DATA with SYN
	kindData                          // DATA without SYN
	kindAck                           // DATA with ACK only and no payload: the peer accepted our stream
	kindWindowUpdate                  // WINDOW_UPDATE
	kindReset                         // RESET
)

func kindOf(f *frame.Frame) frameKind {
	switch {
	case f.Type == frame.WindowUpdate:
		return kindWindowUpdate
	case f.Type == frame.Reset:
		return kindReset
	case f.Flags.Has(frame.FlagSYN):
		return kindSyn
	case f.Flags&(frame.FlagACK|frame.FlagFIN) == frame.FlagACK && len(f.Payload) == 0:
		return kindAck
	}
	return kindData
}

// column is a column of table 2: the receiver's state for a stream ID,
// which for IDs without a Stream is idle (never used) or closed.
type column uint8

const (
	inIdle column = iota
	inOpen
	inHalfClosedLocal
	inHalfClosedRemote
	inClosed
)

// columnOf returns the stream with the given ID, if it is in the table,
// and its column.
func (s *Session) columnOf(id uint32) (*Stream, column) {
	if st := s.streams[id]; st != nil {
		switch st.state {
		case stateOpen:
			return st, inOpen
		case stateHalfClosedLocal:
			return st, inHalfClosedLocal
		case stateHalfClosedRemote:
			return st, inHalfClosedRemote
		}
	}
	if s.neverOpened(id) {
		return nil, inIdle
	}
	return nil, inClosed
}

// handleStreamFrame applies a DATA, WINDOW_UPDATE or RESET frame for a
// non-zero stream ID: SPEC.md §5.3's table 2, row by row.
func (s *Session) handleStreamFrame(f *frame.Frame, owned *[]byte) {
	defer func() { frame.PutBuffer(owned) }() // nil once handed to a stream
	if f.Type == frame.Data {
		var ok bool
		if owned, ok = s.decompressData(f, owned); !ok {
			return
		}
	}
	kind := kindOf(f)
	st, col := s.columnOf(f.StreamID)
	if col == inIdle && !(kind == kindSyn && s.isPeerID(f.StreamID)) {
		// Every row's idle column but an accepted SYN.
		s.fail(frame.ProtocolError, fmt.Sprintf("%v for stream %d that was never opened", kind, f.StreamID))
		return
	}
	switch kind {
	case kindSyn: // a new stream, or a reused ID
		if col != inIdle || f.StreamID > maxStreamID {
			s.fail(frame.ProtocolError, fmt.Sprintf("SYN for stream %d: reused ID or wrong parity", f.StreamID))
			return
		}
		if !s.receiveSession(len(f.Payload)) {
			return
		}
		s.acceptSyn(f, owned)
		owned = nil

	case kindData:
		if !s.receiveSession(len(f.Payload)) {
			return
		}
		switch col {
		case inOpen, inHalfClosedLocal:
			if s.deliver(st, f, owned) {
				owned = nil
			}
		case inHalfClosedRemote: // DATA after FIN
			s.consumeSession(len(f.Payload))
			s.sched.PushControl(&frame.Frame{Type: frame.Reset, StreamID: f.StreamID, ErrorCode: frame.StreamClosed})
			s.wake()
			st.reset(&StreamError{Code: uint32(frame.StreamClosed)})
		case inClosed: // in flight when the stream closed
			s.consumeSession(len(f.Payload))
		}

	case kindAck:
		if st != nil {
			s.acked(st)
		}

	case kindWindowUpdate:
		switch col {
		case inOpen, inHalfClosedRemote:
			if f.WindowDelta == 0 {
				s.fail(frame.ProtocolError, "WINDOW_UPDATE with delta 0")
				return
			}
			if err := s.sched.AddCredit(&st.send.ms, f.WindowDelta); err != nil {
				s.fail(frame.FlowControlError, fmt.Sprintf("stream %d window: %v", f.StreamID, err))
				return
			}
			st.notify() // a Write blocked on credit may send itself
			s.wake()
		case inHalfClosedLocal, inClosed:
			// Nothing more to send: ignore.
		}

	case kindReset:
		switch col {
		case inOpen, inHalfClosedLocal, inHalfClosedRemote:
			st.reset(&StreamError{Code: uint32(f.ErrorCode), Remote: true})
		case inClosed:
			// Ignore; never answer a RESET with one.
		}
	}
}

// decompressData replaces a COMPRESSED payload by its decompressed bytes
// (in a pooled buffer, returned as the new owned buffer). It reports
// false after failing the session.
func (s *Session) decompressData(f *frame.Frame, owned *[]byte) (*[]byte, bool) {
	if !f.Flags.Has(frame.FlagCompressed) {
		return owned, true
	}
	if s.compression == frame.CompressionNone {
		s.fail(frame.CompressionError, "COMPRESSED flag but no compression was negotiated")
		return owned, false
	}
	if len(f.Payload) == 0 {
		return owned, true
	}
	dec, err := decompress(f.Payload, int(s.cfg.MaxFrameSize))
	if err != nil {
		s.fail(frame.CompressionError, err.Error())
		return owned, false
	}
	frame.PutBuffer(owned)
	f.Payload = *dec
	return dec, true
}

// receiveSession counts n payload bytes against the session window,
// whatever becomes of them (table 2's notes). Flow control counts bytes
// as the application sees them (decompressed), so windows bound memory
// whatever the compression ratio. It reports false after failing the
// session.
func (s *Session) receiveSession(n int) bool {
	if err := s.recvWin.Receive(n); err != nil {
		s.fail(frame.FlowControlError, "session window exceeded: "+err.Error())
		return false
	}
	s.stats.dataRecv.Add(uint64(n))
	return true
}

// acceptSyn applies a SYN from the peer for a new ID: the stream opens
// and waits in the accept backlog, or is refused with RESET
// REFUSED_STREAM (SPEC.md §5.2). owned is handed over.
func (s *Session) acceptSyn(f *frame.Frame, owned *[]byte) {
	id := f.StreamID
	s.lastPeerID = id
	if s.goAwaySent || s.closing || s.numIncoming >= s.cfg.MaxIncomingStreams || len(s.acceptQ) >= s.cfg.AcceptBacklog {
		frame.PutBuffer(owned)
		s.stats.refused.Add(1)
		s.sched.PushControl(&frame.Frame{Type: frame.Reset, StreamID: id, ErrorCode: frame.RefusedStream})
		s.wake()
		s.consumeSession(len(f.Payload))
		return
	}
	st := s.newStream(id)
	st.incoming = true
	s.streams[id] = st
	s.numIncoming++
	s.acceptQ = append(s.acceptQ, st)
	s.stats.streamsAccepted.Add(1)
	s.signalAccept()
	s.urgent = true
	if !s.deliver(st, f, owned) {
		frame.PutBuffer(owned)
	}
}

// deliver hands a DATA frame's payload to an open stream (or one
// half-closed here) and applies its FIN. It reports whether it kept
// owned.
func (s *Session) deliver(st *Stream, f *frame.Frame, owned *[]byte) (kept bool) {
	s.assertLocked()
	n := len(f.Payload)
	if n >= smallPayload && st == s.rxSmall {
		s.rxSmall = nil // it moves bulk data: not a stream of messages
	} else if n > 0 && n < smallPayload {
		// A stream of messages stays the candidate while it is active;
		// another stream's short frame does not displace it.
		now := time.Now()
		if st == s.rxSmall {
			s.rxSmallRun++
			s.rxSmallAt = now
		} else if s.rxSmall == nil || now.Sub(s.rxSmallAt) >= contendFor {
			s.rxSmall, s.rxSmallRun, s.rxSmallAt = st, 1, now
		}
	}
	if err := st.recv.win.Receive(n); err != nil {
		s.fail(frame.FlowControlError, fmt.Sprintf("stream %d window exceeded: %v", st.ID(), err))
		return false
	}
	if n > 0 {
		switch {
		case st.closed:
			// Closed here: drop the bytes, but credit them so the peer
			// is not left blocked.
			s.consumed(st, n)
			s.wake()
		case owned != nil && n >= smallPayload:
			st.recv.buf.pushOwned(owned)
			kept = true
		default:
			st.recv.buf.push(f.Payload)
		}
		if n < smallPayload {
			s.urgent = true
		}
	}
	if f.Flags.Has(frame.FlagFIN) {
		st.finReceived()
	}
	st.notify()
	return kept
}

func (s *Session) handleSessionWindowUpdate(f *frame.Frame) {
	if f.WindowDelta == 0 {
		s.fail(frame.ProtocolError, "WINDOW_UPDATE with delta 0")
		return
	}
	if err := s.sendWin.Add(f.WindowDelta); err != nil {
		s.fail(frame.FlowControlError, "session window: "+err.Error())
		return
	}
	s.creditGrew()
}

// creditGrew wakes what waits for session credit or replay room: the
// writer, and compressing Writes. Called with s.mu held.
func (s *Session) creditGrew() {
	if s.enc != nil {
		for _, st := range s.streams { // compressing Writes wait for it
			if st.send.creditWait {
				st.notify()
			}
		}
	}
	s.wake()
}

func (s *Session) handlePing(f *frame.Frame) {
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
			// The first samples of a session include start-up costs; a
			// few more back-to-back PINGs find the path's real RTT,
			// which window auto-tuning depends on.
			s.rttProbes--
			s.sendKeepalivePing(now)
		} else {
			s.pingSentAt = time.Time{}
		}
	} else if ch, ok := s.pings[f.Opaque]; ok {
		close(ch)
		delete(s.pings, f.Opaque)
	}
}

func (s *Session) handleGoAway(f *frame.Frame) {
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
			st.reset(&StreamError{Code: uint32(frame.RefusedStream), Remote: true})
		}
	}
	s.maybeFinishGoAway()
}

// handleHello checks the peer's HELLO, the first frame of the session,
// and applies its settings. A bad one ends the session (newSession then
// returns the error).
func (s *Session) handleHello(f *frame.Frame) {
	if err := s.applyHello(f); err != nil {
		s.hsErr = err
		s.shutdown(err, true) // our HELLO still goes out: the peer learns why too
		return
	}
	s.seam.door.done.Store(true)
	close(s.helloDone)
	s.wake()
}

func (s *Session) applyHello(f *frame.Frame) error {
	if msg := doorError(s.seam.door.seen(), s.helloBytes, s.client, nil); msg != "" {
		return fmt.Errorf("%w: %s", ErrHandshake, msg) // an echo, or not braid at all
	}
	if f.Type != frame.Hello {
		return fmt.Errorf("%w: peer's first frame is %v, not HELLO (is it speaking braid?)", ErrHandshake, f.Type)
	}
	if !f.HasSettings {
		return fmt.Errorf("%w: peer's HELLO carries no settings", ErrHandshake)
	}
	h := &f.Settings
	me := frame.RoleServer
	if s.client {
		me = frame.RoleClient
	}
	switch {
	case h.Role == me:
		return fmt.Errorf("%w: both sides are %ss: the peer called session.%s too; one side must call Client and the other Server",
			ErrHandshake, me, map[bool]string{true: "Client", false: "Server"}[s.client])
	case string(h.Magic) != frame.Magic:
		return fmt.Errorf("%w: bad magic %q", ErrHandshake, h.Magic)
	case h.Version != frame.Version:
		return fmt.Errorf("%w: peer speaks protocol version %d, this side %d", ErrHandshake, h.Version, frame.Version)
	case h.MaxFrameSize < frame.MinMaxFrameSize || h.MaxFrameSize > frame.MaxMaxFrameSize:
		return fmt.Errorf("%w: peer max_frame_size %d out of range", ErrHandshake, h.MaxFrameSize)
	case h.InitialWindow < 1024 || h.InitialWindow > flowcontrol.MaxWindow:
		return fmt.Errorf("%w: peer initial_window %d out of range", ErrHandshake, h.InitialWindow)
	case h.SessionWindow < 1024 || h.SessionWindow > flowcontrol.MaxWindow:
		return fmt.Errorf("%w: peer session_window %d out of range", ErrHandshake, h.SessionWindow)
	}
	comp := s.negotiate(h.Compression)
	if comp == frame.CompressionZstd {
		enc, err := encoderFor(s.cfg.CompressionLevel)
		if err != nil {
			return fmt.Errorf("braid: starting zstd: %w", err)
		}
		if _, err := getDecoder(); err != nil {
			return fmt.Errorf("braid: starting zstd: %w", err)
		}
		s.enc = enc
	}
	if err := s.agreeResume(h); err != nil {
		return err
	}
	s.compression = comp
	s.peer = peerSettings{
		initialWindow: h.InitialWindow,
		maxFrameSize:  min(h.MaxFrameSize, s.cfg.MaxFrameSize),
		maxIncoming:   h.MaxIncomingStreams,
		sessionWindow: h.SessionWindow,
		acceptBacklog: int(min(h.AcceptBacklog, maxStreamID)),
	}
	s.peer.maxPayload = int(s.peer.maxFrameSize) - frame.MaxDataOverhead
	s.sendWin = flowcontrol.NewSendWindow(h.SessionWindow)
	return nil
}

// isPeerID reports whether id has the parity of streams the peer opens.
func (s *Session) isPeerID(id uint32) bool { return (id%2 == 1) != s.client }

// neverOpened reports whether id names a stream that has not existed yet:
// table 2's idle column.
func (s *Session) neverOpened(id uint32) bool {
	if s.isPeerID(id) {
		return id > s.lastPeerID
	}
	return id >= s.nextID
}

// forget takes a stream that entered state closed out of the session's
// table, returning what it held. Called with s.mu held.
func (s *Session) forget(st *Stream) {
	s.assertLocked()
	if s.streams[st.ID()] != st {
		return
	}
	delete(s.streams, st.ID())
	if s.rxSmall == st {
		s.rxSmall = nil
	}
	s.acked(st)
	if st.incoming && !st.accepted {
		// Reset before the application accepted it: it leaves the
		// backlog at once, and AcceptStream never hands it out.
		if i := slices.Index(s.acceptQ, st); i >= 0 {
			s.acceptQ = slices.Delete(s.acceptQ, i, i+1)
		}
	}
	if !st.accepted || st.closed || st.resetErr == nil || !st.resetErr.Remote {
		s.releaseIncoming(st)
	} // else: a peer reset a stream the application still holds (below)
	st.stopTimers()
	st.recv.win.Close(&s.budget)
	st.notify()
	s.maybeFinishGoAway()
}

// releaseIncoming stops counting a peer-opened stream against
// MaxIncomingStreams. That happens when it closes, except for a stream
// the peer reset while the application holds it: it counts until the
// application lets go (Close, Reset, or a Read or Write that reports the
// reset), so a peer that opens and resets streams in a loop cannot have
// more than MaxIncomingStreams handlers running at once (HTTP/2's "rapid
// reset"). Called with s.mu held.
func (s *Session) releaseIncoming(st *Stream) {
	if st.incoming {
		st.incoming = false
		s.numIncoming--
	}
}

func (k frameKind) String() string {
	return [...]string{"SYN", "DATA", "ACK", "WINDOW_UPDATE", "RESET"}[k]
}
