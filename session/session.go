package session

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/braidmux/braid/flowcontrol"
	"github.com/braidmux/braid/frame"
	"github.com/braidmux/braid/mux"
)

// Session is one end of a braid connection: it carries many Streams over
// one net.Conn. Create it with Client or Server. *Session implements
// net.Listener (Accept, Close, Addr), so servers can Serve on it.
//
// All methods are safe for concurrent use.
type Session struct {
	seam   *seam    // the connection: only the reader and the writer touch it; replaced only by a resume, under mu
	res    *resumer // resumption state; nil if the session does not resume
	cfg    Config
	client bool
	log    *slog.Logger

	// Set by the handshake (the reader goroutine's first frame), then
	// read-only.
	peer        peerSettings
	compression frame.Compression
	enc         *zstd.Encoder // set when zstd was agreed
	helloDone   chan struct{} // closed when the peer's HELLO was applied
	helloBytes  []byte        // the HELLO this side sent, as encoded
	hsErr       error         // why the handshake failed

	mu          sync.Mutex
	streams     map[uint32]*Stream // open and half-closed streams
	nextID      uint32             // next ID this side opens
	lastPeerID  uint32             // highest ID the peer opened
	numIncoming int                // open peer-opened streams
	sched       *mux.Scheduler[*Stream]
	sendWin     flowcontrol.SendWindow // session credit towards the peer
	recvWin     flowcontrol.RecvWindow // session window we grant
	budget      flowcontrol.Budget     // pays for stream window growth
	acceptQ     []*Stream
	goAwaySent  bool
	goAwayRecv  bool
	closing     bool      // Close called or fatal error: writer flushes and stops
	closeErr    error     // why the session ended; set once
	urgent      bool      // the frame being applied woke a goroutine waiting for a message
	rxSmall     *Stream   // the stream that received the last small payload (see contended)
	rxSmallRun  int       // how many in a row it received, with no large one between
	rxSmallAt   time.Time // when the last of them arrived
	contendedAt time.Time // when a stream was last held to contendedWindow
	pings       map[uint64]chan struct{}
	pingSeq     uint64
	rtt         time.Duration // smoothed RTT of keepalive PINGs
	minRTT      time.Duration // lowest RTT seen: the path's, without queueing
	rttProbes   int           // start-up PINGs still to send
	lastRx      time.Time     // when the last frame arrived (keepalive)
	pingSentAt  time.Time     // outstanding keepalive ping
	pingOpaque  uint64
	closeBy     time.Time // write deadline while flushing at close
	connBusy    bool      // someone holds the right to write to the connection
	writeErr    error     // the connection write that failed, if one did

	ctlRoom  sync.Cond     // on mu: the reader waits on it while the control queue is full
	kick     chan struct{} // wakes the writer; capacity 1
	acceptCh chan struct{} // signals AcceptStream; capacity 1
	openCh   chan struct{} // signals OpenStream waiting for backlog room; capacity 1
	unacked  int           // streams we opened that the peer has not accepted yet
	done     chan struct{} // closed when the session has ended
	wg       sync.WaitGroup
	kaTimer  *time.Timer

	stats statCounters
}

type peerSettings struct {
	initialWindow uint32
	maxFrameSize  uint32
	maxIncoming   uint32
	sessionWindow uint32
	maxPayload    int // DATA payload bytes per frame we send
	acceptBacklog int // opened-but-unaccepted streams the peer allows; 0 = any
}

// Compile-time interface checks.
var (
	_ net.Listener = (*Session)(nil)
	_ net.Conn     = (*Stream)(nil)
)

// Client starts the client side of a session on conn: it sends its HELLO,
// waits up to Config.HandshakeTimeout for the peer's, and returns the
// running session. A nil cfg means DefaultConfig(). On error conn is
// closed.
//
// Client and Server block until the handshake is done (or fails). A
// server's accept loop should therefore call Server in each connection's
// own goroutine, as in
//
//	for {
//		conn, err := ln.Accept()
//		if err != nil {
//			return err
//		}
//		go func() {
//			sess, err := session.Server(conn, nil)
//			if err != nil {
//				return // conn is closed
//			}
//			serve(sess)
//		}()
//	}
//
// and not in the loop itself, where one client that connects and sends
// nothing would hold up every other one for HandshakeTimeout (10 s by
// default). Package github.com/braidmux/braid/yamux offers constructors
// that return at once, as hashicorp/yamux's do.
func Client(conn net.Conn, cfg *Config) (*Session, error) {
	return newSession(conn, cfg, true, sessionOpts{})
}

// Server starts the server side of a session on conn; see Client,
// including why an accept loop calls it in a goroutine per connection.
func Server(conn net.Conn, cfg *Config) (*Session, error) {
	return newSession(conn, cfg, false, sessionOpts{})
}

// sessionOpts are what Dial and Listener add to a session.
type sessionOpts struct {
	seam *seam                                   // the connection, with a first frame already read; nil: a new one on conn
	dial func(context.Context) (net.Conn, error) // client: offer to resume, redialling with it
	l    *Listener                               // server: offer to resume; the Listener that finds the session again
}

func newSession(conn net.Conn, cfg *Config, client bool, o sessionOpts) (*Session, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		conn.Close()
		return nil, err
	}
	if o.seam == nil {
		o.seam = newSeam(conn, c.MaxFrameSize)
	}
	s := &Session{
		seam:      o.seam,
		cfg:       c,
		client:    client,
		log:       c.Logger,
		helloDone: make(chan struct{}),
		streams:   make(map[uint32]*Stream),
		sched:     mux.NewScheduler[*Stream](schedQuantum),
		kick:      make(chan struct{}, 1),
		acceptCh:  make(chan struct{}, 1),
		openCh:    make(chan struct{}, 1),
		done:      make(chan struct{}),
		pings:     make(map[uint64]chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(discardHandler{})
	}
	s.ctlRoom.L = &s.mu
	if client {
		s.nextID = 1
	} else {
		s.nextID = 2
	}
	if (o.dial != nil || o.l != nil) && c.ResumeTimeout > 0 {
		s.res = newResumer(s, o.dial, o.l)
	}
	s.recvWin = flowcontrol.NewRecvWindow(c.MaxSessionWindow, c.MaxSessionWindow, time.Now())
	s.budget = flowcontrol.NewBudget(int64(c.MaxSessionWindow))
	tuneConn(conn, notSentLowat)

	// The HELLO goes out through the writer goroutine so that a
	// synchronous conn (net.Pipe) cannot deadlock both sides writing;
	// the reader goroutine reads the peer's as its first frame.
	hello := frame.Frame{Type: frame.Hello, HasSettings: true, Settings: frame.Settings{
		Magic:              []byte(frame.Magic),
		Version:            frame.Version,
		InitialWindow:      c.InitialStreamWindow,
		MaxFrameSize:       c.MaxFrameSize,
		MaxIncomingStreams: uint32(c.MaxIncomingStreams),
		SessionWindow:      c.MaxSessionWindow,
		AcceptBacklog:      uint32(c.AcceptBacklog),
	}}
	if c.Compression != CompressionNone {
		hello.Settings.Compression = []frame.Compression{c.Compression.wire()}
	}
	hello.Settings.Nonce = make([]byte, 16)
	rand.Read(hello.Settings.Nonce)
	hello.Settings.Role = frame.RoleServer
	if client {
		hello.Settings.Role = frame.RoleClient
	}
	if s.res != nil {
		hello.Settings.ResumeKey = s.res.key
		hello.Settings.ResumeID = s.res.id
	}
	s.helloBytes = hello.Append(nil)
	s.sched.PushControl(&hello)
	s.wg.Add(2)
	go s.writeLoop()
	go s.readLoop(s.seam)

	// The handshake timeout closes the connection rather than setting a
	// read deadline on it (see seam).
	timer := time.NewTimer(c.HandshakeTimeout)
	select {
	case <-s.helloDone:
		timer.Stop()
	case <-s.done:
		timer.Stop()
	case <-timer.C:
		s.mu.Lock()
		if s.hsErr == nil && s.peer.maxPayload == 0 {
			s.hsErr = s.handshakeError(fmt.Errorf("no HELLO from peer within %v", c.HandshakeTimeout))
			s.shutdown(s.hsErr, false)
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	if err := s.hsErr; err != nil || s.peer.maxPayload == 0 {
		// (A session that ended after a good HELLO is returned: its
		// calls report why it ended.)
		if err == nil {
			err = fmt.Errorf("%w: %v", ErrHandshake, s.closeErr)
		}
		s.shutdown(err, false)
		s.mu.Unlock()
		s.wg.Wait()
		return nil, err
	}
	if s.closeErr != nil {
		s.mu.Unlock()
		return s, nil
	}
	// PINGs right away give flow control an RTT estimate.
	s.rttProbes = rttProbes
	s.sendKeepalivePing(time.Now())
	if c.KeepAliveInterval > 0 {
		s.kaTimer = time.AfterFunc(min(c.KeepAliveInterval, c.KeepAliveTimeout), s.keepalive)
	}
	s.mu.Unlock()
	return s, nil
}

// negotiate applies SPEC.md's rule: the first entry of the client's list
// that the server's list also contains.
func (s *Session) negotiate(peer []frame.Compression) frame.Compression {
	var mine []frame.Compression
	if s.cfg.Compression != CompressionNone {
		mine = []frame.Compression{s.cfg.Compression.wire()}
	}
	clientList, serverList := mine, peer
	if !s.client {
		clientList, serverList = peer, mine
	}
	for _, c := range clientList {
		for _, d := range serverList {
			if c == d && c != frame.CompressionNone {
				return c
			}
		}
	}
	return frame.CompressionNone
}

// wake nudges the writer goroutine (and a resumable session's filler,
// fillLoop). Called with s.mu held.
func (s *Session) wake() {
	s.assertLocked()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	if s.res != nil {
		s.res.kickFiller()
	}
}

// OpenStream opens a new stream. The peer learns of it at once (a SYN
// frame is queued before OpenStream returns), without waiting for data;
// data written afterwards may follow before any acknowledgement. It fails
// if the session is closed or going away, or ctx is done.
func (s *Session) OpenStream(ctx context.Context) (*Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.closeErr != nil {
			return nil, s.closeErr
		}
		if s.goAwaySent || s.goAwayRecv || s.closing {
			return nil, ErrGoAway
		}
		if s.peer.acceptBacklog == 0 || s.unacked < s.peer.acceptBacklog {
			break
		}
		// The peer's accept backlog is full of our streams: wait for
		// its application to accept some (SPEC.md §5.2) rather than
		// have the next one refused.
		if err := s.waitSignalUnlocking(ctx, s.openCh); err != nil {
			return nil, err
		}
	}
	id := s.nextID
	if id > maxStreamID {
		return nil, ErrStreamsExhausted
	}
	s.nextID += 2
	st := s.newStream(id)
	st.unacked = true
	s.unacked++
	s.streams[id] = st
	s.sched.PushControl(&frame.Frame{Type: frame.Data, StreamID: id, Flags: frame.FlagSYN})
	s.stats.streamsOpened.Add(1)
	s.wake()
	return st, nil
}

// Open opens a stream, as OpenStream does, returning a net.Conn (the
// meaning yamux gives it). Having no context, it waits for room in the
// peer's accept backlog for at most Config.StreamOpenTimeout, then fails
// with ErrStreamOpenTimeout.
func (s *Session) Open() (net.Conn, error) {
	ctx := context.Background()
	if d := s.cfg.StreamOpenTimeout; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, d, ErrStreamOpenTimeout)
		defer cancel()
	}
	st, err := s.OpenStream(ctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = context.Cause(ctx)
		}
		return nil, err
	}
	return st, nil
}

// AcceptStream waits for and returns the next stream the peer opened. It
// fails when the session closes or ctx is done.
func (s *Session) AcceptStream(ctx context.Context) (*Stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if len(s.acceptQ) > 0 {
			st := s.acceptQ[0]
			s.acceptQ[0] = nil
			s.acceptQ = s.acceptQ[1:]
			if len(s.acceptQ) == 0 {
				s.acceptQ = nil
			} else {
				s.signalAccept()
			}
			if st.resetErr != nil && s.closeErr == nil {
				continue // reset before it was accepted: nothing to hand out
			}
			st.accepted = true
			if st.state != stateClosed && s.closeErr == nil {
				// Tell the opener its stream left our backlog.
				s.sched.PushControl(&frame.Frame{Type: frame.Data, StreamID: st.ID(), Flags: frame.FlagACK})
				s.wake()
			}
			return st, nil
		}
		if s.closeErr != nil {
			return nil, s.closeErr
		}
		if err := s.waitSignalUnlocking(ctx, s.acceptCh); err != nil {
			return nil, err
		}
	}
}

// waitSignalUnlocking waits, with s.mu released, until ch signals, the session
// ends, or ctx is done (its error is returned). Called with s.mu held.
func (s *Session) waitSignalUnlocking(ctx context.Context, ch <-chan struct{}) error {
	s.mu.Unlock()
	var err error
	select {
	case <-ch:
	case <-s.done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.mu.Lock()
	return err
}

// acked notes that a stream we opened has left the peer's accept
// backlog (accepted, refused, reset or closed). Called with s.mu held.
func (s *Session) acked(st *Stream) {
	if !st.unacked {
		return
	}
	st.unacked = false
	s.unacked--
	select {
	case s.openCh <- struct{}{}:
	default:
	}
}

func (s *Session) signalAccept() {
	select {
	case s.acceptCh <- struct{}{}:
	default:
	}
}

// Accept waits for the next stream the peer opens (net.Listener).
func (s *Session) Accept() (net.Conn, error) {
	st, err := s.AcceptStream(context.Background())
	if err != nil {
		return nil, err
	}
	return st, nil
}

// Addr returns the local address of the underlying connection
// (net.Listener).
func (s *Session) Addr() net.Addr { return s.LocalAddr() }

// LocalAddr returns the local address of the underlying connection (of
// the current one, for a session that resumed on a new connection).
func (s *Session) LocalAddr() net.Addr { return s.conn().LocalAddr() }

// RemoteAddr returns the remote address of the underlying connection (of
// the current one, for a session that resumed on a new connection).
func (s *Session) RemoteAddr() net.Addr { return s.conn().RemoteAddr() }

func (s *Session) conn() net.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seam.conn
}

// Close ends the session: a GOAWAY is sent if the connection still works,
// the connection is closed, every stream's blocked and later calls fail
// with an error matching net.ErrClosed, and Close waits for the session's
// goroutines to exit. What is queued gets up to a second
// (ConnectionWriteTimeout, if shorter) to go out; then, on a connection
// with CloseWrite, Close waits within that second for the peer to close
// its side too, but not once the peer has been silent for 20 ms, so that
// the peer's last frames are read rather than answered with a TCP reset
// (which could discard data the peer had not read yet). Close is
// idempotent and always returns nil; Err says why the session ended.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closeErr == nil && !s.closing {
		last := s.lastPeerID
		s.sched.PushControl(&frame.Frame{Type: frame.GoAway, LastStreamID: last})
		s.goAwaySent = true
	}
	s.shutdown(ErrSessionClosed, true)
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// GoAway tells the peer that no new streams will be accepted and stops
// this side opening new ones. Existing streams run to completion; when
// none are left the session closes. It is safe to call more than once.
func (s *Session) GoAway() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closeErr != nil {
		return s.closeErr
	}
	if !s.goAwaySent {
		s.goAwaySent = true
		s.sched.PushControl(&frame.Frame{Type: frame.GoAway, LastStreamID: s.lastPeerID})
		s.wake()
		s.log.Debug("braid: sent GOAWAY", "last_stream_id", s.lastPeerID)
	}
	s.maybeFinishGoAway()
	return nil
}

// maybeFinishGoAway closes the session gracefully once a GOAWAY has been
// exchanged and no streams remain. Called with s.mu held.
func (s *Session) maybeFinishGoAway() {
	if (s.goAwaySent || s.goAwayRecv) && len(s.streams) == 0 && s.closeErr == nil {
		s.shutdown(sessionEnded(ErrGoAway), true)
	}
}

// Ping sends a PING and waits for the answer, returning the round-trip
// time. It fails if the session closes or ctx is done first.
func (s *Session) Ping(ctx context.Context) (time.Duration, error) {
	ch := make(chan struct{})
	s.mu.Lock()
	if s.closeErr != nil {
		err := s.closeErr
		s.mu.Unlock()
		return 0, err
	}
	s.pingSeq++
	id := s.pingSeq
	s.pings[id] = ch
	start := time.Now()
	s.sched.PushControl(&frame.Frame{Type: frame.Ping, Opaque: id})
	s.wake()
	s.mu.Unlock()
	select {
	case <-ch:
		return time.Since(start), nil
	case <-s.done:
		select {
		case <-ch: // answered just before the end
			return time.Since(start), nil
		default:
		}
		s.mu.Lock()
		delete(s.pings, id)
		err := s.closeErr
		s.mu.Unlock()
		return 0, err
	case <-ctx.Done():
		s.mu.Lock()
		delete(s.pings, id)
		s.mu.Unlock()
		return 0, ctx.Err()
	}
}

// NumStreams returns the number of streams currently open (not yet fully
// closed or reset) on the session.
func (s *Session) NumStreams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.streams)
}

// IsClosed reports whether the session has ended.
func (s *Session) IsClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// CloseChan returns a channel that is closed when the session ends.
func (s *Session) CloseChan() <-chan struct{} { return s.done }

// Err returns why the session ended, or nil while it runs. The error
// matches net.ErrClosed.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeErr
}

// Compression returns the compression algorithm both sides agreed on.
func (s *Session) Compression() Compression {
	if s.compression == frame.CompressionZstd {
		return CompressionZstd
	}
	return CompressionNone
}

// detached reports whether the session lost its connection and waits to
// be resumed. Called with s.mu held.
func (s *Session) detached() bool { return s.res != nil && s.res.detached }

// shutdown ends the session with cause. If flush, the writer first sends
// what is queued (bounded by ConnectionWriteTimeout); otherwise the
// connection is closed at once. Called with s.mu held.
func (s *Session) shutdown(cause error, flush bool) {
	s.assertLocked()
	if s.closeErr != nil {
		return
	}
	var ce *closedError
	if !errors.As(cause, &ce) {
		cause = sessionEnded(cause)
	}
	s.closeErr = cause
	s.closing = true
	if s.kaTimer != nil {
		s.kaTimer.Stop()
	}
	for _, st := range s.streams {
		st.sessionClosed()
	}
	clear(s.pings) // waiting Pings see s.done
	s.endResume()
	s.ctlRoom.Broadcast()
	close(s.done)
	if flush {
		s.closeBy = time.Now().Add(min(s.cfg.ConnectionWriteTimeout, closeFlushTimeout))
		// The writer flushes what is queued, then closes the
		// connection; the write deadline bounds the flush, and for a
		// conn whose deadlines do not work, so does a timer.
		s.seam.boundWrites(s.closeBy)
	} else {
		s.seam.conn.Close()
	}
	s.wake()
}

// closeFlushTimeout bounds how long Close spends sending what is queued.
const closeFlushTimeout = time.Second

// fail ends the session because of a protocol violation found here:
// GOAWAY with code goes out (best effort), then the connection closes.
// Called with s.mu held.
func (s *Session) fail(code frame.ErrorCode, reason string) {
	if s.closeErr != nil {
		return
	}
	s.stats.protocolErrors.Add(1)
	s.log.Warn("braid: protocol error; closing session", "code", code.String(), "reason", reason, "remote", s.seam.conn.RemoteAddr())
	if len(reason) > 256 {
		reason = reason[:256]
	}
	s.sched.PushControl(&frame.Frame{Type: frame.GoAway, LastStreamID: s.lastPeerID, ErrorCode: code, Debug: []byte(reason)})
	s.shutdown(&ProtocolError{Code: code, Reason: reason}, true)
}

// keepalive runs on its timer: it checks the outstanding PING and sends
// the next one.
func (s *Session) keepalive() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closeErr != nil || s.detached() {
		return // a resume restarts it
	}
	now := time.Now()
	if !s.pingSentAt.IsZero() {
		// Any frame from the peer is a sign of life (SPEC.md §7): the
		// timeout counts from the last time one arrived, or from the
		// PING if none has since.
		since := s.pingSentAt
		if s.lastRx.After(since) {
			since = s.lastRx
		}
		if now.Sub(since) >= s.cfg.KeepAliveTimeout {
			if s.connLost(s.seam, fmt.Errorf("no frame from the peer for KeepAliveTimeout (%v)", s.cfg.KeepAliveTimeout)) {
				return
			}
			s.log.Warn("braid: keepalive timeout; closing session", "timeout", s.cfg.KeepAliveTimeout, "remote", s.seam.conn.RemoteAddr())
			s.sched.PushControl(&frame.Frame{Type: frame.GoAway, LastStreamID: s.lastPeerID, ErrorCode: frame.KeepAliveTimeout})
			s.shutdown(ErrKeepAliveTimeout, true)
			return
		}
		// Still waiting: check again when the timeout would pass.
		s.kaTimer.Reset(since.Add(s.cfg.KeepAliveTimeout).Sub(now))
		return
	}
	s.sendKeepalivePing(now)
	s.kaTimer.Reset(min(s.cfg.KeepAliveTimeout, s.cfg.KeepAliveInterval))
}

// sendKeepalivePing queues the PING whose answer keepalive and RTT
// measurement wait for. Called with s.mu held.
func (s *Session) sendKeepalivePing(now time.Time) {
	s.pingSeq++
	s.pingOpaque = s.pingSeq
	s.pingSentAt = now
	s.sched.PushControl(&frame.Frame{Type: frame.Ping, Opaque: s.pingOpaque})
	s.wake()
}

// maxStreamID is the largest stream ID (SPEC.md: IDs are below 2^31).
const maxStreamID = 1<<31 - 1

// rttProbes is how many PINGs follow the first one at session start.
const rttProbes = 4

// discardHandler is a slog.Handler that drops everything.
type discardHandler struct{}

func (discardHandler) Enabled(context.Context, slog.Level) bool  { return false }
func (discardHandler) Handle(context.Context, slog.Record) error { return nil }
func (d discardHandler) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d discardHandler) WithGroup(string) slog.Handler           { return d }

// Stats is a snapshot of a session's counters.
type Stats struct {
	// BytesSent counts bytes handed to the connection, framing included,
	// and what a resume sent again. A write is counted just before it is
	// made (a write that fails is counted too), so every byte counted is
	// one the connection was given at or after the moment it was counted.
	// BytesReceived counts bytes read from the connection.
	BytesSent, BytesReceived   uint64
	FramesSent, FramesReceived uint64
	DataSent, DataReceived     uint64 // stream payload bytes
	Writes                     uint64 // vectored writes to the connection
	StreamsOpened              uint64 // by this side
	StreamsAccepted            uint64 // peer-opened, accepted into the backlog
	StreamsRefused             uint64 // peer-opened, refused (limits, GOAWAY)
	OpenStreams                int
	RTT                        time.Duration // smoothed RTT of keepalive PINGs; 0 if none yet
	FlowControlBlocked         time.Duration // total time Writes waited for credit
	ProtocolErrors             uint64
	Compression                Compression
	Resumes                    uint64 // connections re-attached to the session after one broke (Dial, Listener)
}

type statCounters struct {
	bytesSent, bytesRecv, framesSent, framesRecv atomic.Uint64
	dataSent, dataRecv, writes                   atomic.Uint64
	streamsOpened, streamsAccepted, refused      atomic.Uint64
	protocolErrors, resumes                      atomic.Uint64
	blockedNanos                                 atomic.Int64
}

// Stats returns a snapshot of the session's counters. Safe to call at any
// time, including after Close.
func (s *Session) Stats() Stats {
	s.mu.Lock()
	open := len(s.streams)
	rtt := s.rtt
	s.mu.Unlock()
	c := &s.stats
	return Stats{
		BytesSent: c.bytesSent.Load(), BytesReceived: c.bytesRecv.Load(),
		FramesSent: c.framesSent.Load(), FramesReceived: c.framesRecv.Load(),
		DataSent: c.dataSent.Load(), DataReceived: c.dataRecv.Load(),
		Writes:        c.writes.Load(),
		StreamsOpened: c.streamsOpened.Load(), StreamsAccepted: c.streamsAccepted.Load(),
		StreamsRefused: c.refused.Load(),
		OpenStreams:    open, RTT: rtt,
		FlowControlBlocked: time.Duration(c.blockedNanos.Load()),
		ProtocolErrors:     c.protocolErrors.Load(),
		Compression:        s.Compression(),
		Resumes:            c.resumes.Load(),
	}
}
