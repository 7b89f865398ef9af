package yamux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/braidmux/braid/session"
	hyamux "github.com/hashicorp/yamux"
)

// Session multiplexes streams over one connection, with the API of
// hashicorp/yamux's Session. Underneath it is a braid session
// (github.com/braidmux/braid/session) or, when the peer speaks yamux's
// wire protocol, a hashicorp/yamux session.
//
// All methods are safe for concurrent use by multiple goroutines.
// *Session implements net.Listener (Accept, Close, Addr).
type Session struct {
	cfg       Config
	client    bool
	conn      net.Conn // the transport; an rwcConn for a plain io.ReadWriteCloser
	isNetConn bool     // conn is the caller's own net.Conn (it has deadlines)

	ready   chan struct{} // closed once run has started the session or failed to
	done    chan struct{} // closed when the session has ended
	closing chan struct{} // closed by Close
	wg      sync.WaitGroup

	// Written by run before ready is closed, read-only afterwards.
	proto   Protocol
	b       *session.Session // braid wire
	y       *hyamux.Session  // yamux wire
	initErr error

	mu          sync.Mutex
	closed      bool // Close was called
	started     bool // b or y is set
	localGoAway atomic.Bool
}

var _ net.Listener = (*Session)(nil)

// Server starts the server side of a session on conn and returns at
// once: detecting the peer's protocol (with ProtocolAuto) and braid's
// HELLO exchange run in the background, and the first Open or Accept
// waits for them (failing with their error if they fail). A nil config
// means DefaultConfig(). conn is typically a net.Conn; any other
// io.ReadWriteCloser works too (see the package documentation for what
// changes). The session owns conn and closes it.
func Server(conn io.ReadWriteCloser, config *Config) (*Session, error) {
	return newSession(conn, config, false)
}

// Client starts the client side of a session on conn and returns at
// once; see Server. With ProtocolAuto (the default) the client speaks
// braid; set Config.Protocol to ProtocolYamux to talk to a
// hashicorp/yamux server.
func Client(conn io.ReadWriteCloser, config *Config) (*Session, error) {
	return newSession(conn, config, true)
}

func newSession(rwc io.ReadWriteCloser, config *Config, client bool) (*Session, error) {
	if config == nil {
		config = DefaultConfig()
	}
	if err := VerifyConfig(config); err != nil {
		return nil, err
	}
	conn, isNetConn := asConn(rwc)
	s := &Session{
		cfg:       *config,
		client:    client,
		conn:      conn,
		isNetConn: isNetConn,
		ready:     make(chan struct{}),
		done:      make(chan struct{}),
		closing:   make(chan struct{}),
	}
	s.wg.Add(1)
	go s.run()
	return s, nil
}

// run starts the session, then waits for its end. It is the session's
// one goroutine of its own.
func (s *Session) run() {
	defer s.wg.Done()
	proto, b, y, err := s.start()
	s.mu.Lock()
	closed := s.closed
	if err == nil && !closed {
		s.proto, s.b, s.y, s.started = proto, b, y, true
	}
	s.mu.Unlock()
	if closed {
		// Close came while starting and could not reach the session.
		if b != nil {
			b.Close()
		}
		if y != nil {
			y.Close()
		}
		err = ErrSessionShutdown
	}
	s.initErr = err
	close(s.ready)
	if err != nil {
		s.conn.Close()
		close(s.done)
		return
	}
	var end <-chan struct{}
	if b != nil {
		end = b.CloseChan()
	} else {
		end = y.CloseChan()
	}
	select {
	case <-end:
	case <-s.closing:
	}
	close(s.done)
}

// start detects the protocol if needed and starts the braid or yamux
// session.
func (s *Session) start() (Protocol, *session.Session, *hyamux.Session, error) {
	conn := s.conn
	proto := s.cfg.Protocol
	if proto == ProtocolAuto {
		proto = ProtocolBraid
		if !s.client {
			c, res, err := detect(conn, s.cfg.handshakeTimeout())
			if err == io.EOF {
				return 0, nil, nil, errors.New("yamux: peer closed the connection before sending anything")
			} else if err != nil {
				return 0, nil, nil, fmt.Errorf("yamux: reading the peer's first byte: %w", err)
			}
			conn = c
			if res != detectBraid {
				proto = ProtocolYamux
			}
		}
	}
	if proto == ProtocolYamux {
		var y *hyamux.Session
		var err error
		if s.client {
			y, err = hyamux.Client(conn, s.cfg.yamuxConfig())
		} else {
			y, err = hyamux.Server(conn, s.cfg.yamuxConfig())
		}
		return ProtocolYamux, nil, y, err
	}

	bc := s.cfg.braidConfig()
	var timer *time.Timer
	if !s.isNetConn {
		// braid's handshake timeout closes the connection itself; this
		// timer also bounds the detection above on a transport without
		// read deadlines.
		timer = time.AfterFunc(bc.HandshakeTimeout, func() { conn.Close() })
	}
	var b *session.Session
	var err error
	if s.client {
		b, err = session.Client(conn, bc)
	} else {
		b, err = session.Server(conn, bc)
	}
	if timer != nil && !timer.Stop() {
		// The timer fired: the transport is closed or about to be.
		if err == nil {
			b.Close()
		}
		err = fmt.Errorf("%w: no HELLO from peer within %v", session.ErrHandshake, bc.HandshakeTimeout)
	}
	if err != nil && s.client {
		err = fmt.Errorf("yamux: %w (if the server is a hashicorp/yamux server, set Config.Protocol = ProtocolYamux)", err)
	}
	return ProtocolBraid, b, nil, err
}

// waitReady waits until the session has started, failing with the
// start's error, or with ctx's if ctx ends first.
func (s *Session) waitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return s.initErr
	default:
	}
	select {
	case <-s.ready:
		return s.initErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// isReady reports whether the session has started (or failed to).
func (s *Session) isReady() bool {
	select {
	case <-s.ready:
		return s.initErr == nil
	default:
		return false
	}
}

// Protocol reports the wire protocol the session speaks: ProtocolBraid
// or ProtocolYamux, or ProtocolAuto while it is not known yet (a server
// still waiting for the peer's first byte) or if the session failed to
// start.
func (s *Session) Protocol() Protocol {
	if !s.isReady() {
		return ProtocolAuto
	}
	return s.proto
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

// NumStreams returns the number of streams open on the session: not yet
// closed by both sides, nor reset.
func (s *Session) NumStreams() int {
	if !s.isReady() {
		return 0
	}
	if s.y != nil {
		return s.y.NumStreams()
	}
	return s.b.NumStreams()
}

// Open opens a stream; it is OpenStream returning a net.Conn.
func (s *Session) Open() (net.Conn, error) {
	st, err := s.OpenStream()
	if err != nil {
		return nil, err
	}
	return st, nil
}

// OpenStream opens a new stream. It waits for the session to start, and
// on braid sessions while the peer's accept backlog is full of streams
// it has not accepted; Config.StreamOpenTimeout bounds the wait
// (ErrTimeout). It fails with ErrSessionShutdown on an ended session,
// ErrRemoteGoAway after the peer's GoAway, or the start's error if the
// session could not start.
func (s *Session) OpenStream() (*Stream, error) {
	return s.openStream(context.Background())
}

// OpenStreamWithContext is OpenStream giving up when ctx is done (with
// ctx's error), not only after StreamOpenTimeout. It is this package's
// own: hashicorp/yamux v0.1.2 has no such method. On yamux-wire
// sessions an OpenStream that ctx interrupts may still open its stream
// later; the stream is then closed at once.
func (s *Session) OpenStreamWithContext(ctx context.Context) (*Stream, error) {
	return s.openStream(ctx)
}

func (s *Session) openStream(ctx context.Context) (*Stream, error) {
	user := ctx
	if d := s.cfg.StreamOpenTimeout; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	timedOut := func() bool { return user.Err() == nil && ctx.Err() != nil }
	if err := s.waitReady(ctx); err != nil {
		if timedOut() {
			return nil, ErrTimeout
		}
		return nil, err
	}
	if s.y != nil {
		return s.openYamux(user)
	}
	st, err := s.b.OpenStream(ctx)
	if err != nil {
		return nil, s.openErr(err, timedOut())
	}
	return s.wrapBraid(st), nil
}

// openYamux opens a stream on a yamux-wire session, which has its own
// StreamOpenTimeout; ctx can only abandon the call.
func (s *Session) openYamux(ctx context.Context) (*Stream, error) {
	if ctx.Done() == nil {
		st, err := s.y.OpenStream()
		if err != nil {
			return nil, yamuxErr(err)
		}
		return s.wrapYamux(st), nil
	}
	type result struct {
		st  *hyamux.Stream
		err error
	}
	ch := make(chan result, 1)
	go func() {
		st, err := s.y.OpenStream()
		ch <- result{st, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, yamuxErr(r.err)
		}
		return s.wrapYamux(r.st), nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.st != nil {
				r.st.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// Accept waits for the next stream the peer opens; it is AcceptStream
// returning a net.Conn (net.Listener).
func (s *Session) Accept() (net.Conn, error) {
	st, err := s.AcceptStream()
	if err != nil {
		return nil, err
	}
	return st, nil
}

// AcceptStream waits for the next stream the peer opens. It fails when
// the session ends: with ErrKeepAliveTimeout if the peer stopped
// answering keepalives, else (on braid sessions) ErrSessionShutdown,
// or with the start's error if the session could not start.
func (s *Session) AcceptStream() (*Stream, error) {
	return s.AcceptStreamWithContext(context.Background())
}

// AcceptStreamWithContext is AcceptStream giving up when ctx is done,
// with ctx's error.
func (s *Session) AcceptStreamWithContext(ctx context.Context) (*Stream, error) {
	if err := s.waitReady(ctx); err != nil {
		return nil, err
	}
	if s.y != nil {
		st, err := s.y.AcceptStreamWithContext(ctx)
		if err != nil {
			return nil, yamuxErr(err)
		}
		return s.wrapYamux(st), nil
	}
	st, err := s.b.AcceptStream(ctx)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, net.ErrClosed) {
			return nil, ctx.Err()
		}
		return nil, s.endErr(err)
	}
	return s.wrapBraid(st), nil
}

// endErr maps the error of a call on an ended braid session.
func (s *Session) endErr(err error) error {
	if !errors.Is(err, net.ErrClosed) {
		return err
	}
	if errors.Is(s.b.Err(), session.ErrKeepAliveTimeout) {
		return ErrKeepAliveTimeout
	}
	return ErrSessionShutdown
}

// Close ends the session: every stream's blocked and later calls fail,
// the connection is closed (after a GoAway, if it still works), and
// Close waits for the session's goroutines to exit. Called during the
// background start, it abandons the start. Close is idempotent and
// returns nil.
func (s *Session) Close() error {
	s.mu.Lock()
	first := !s.closed
	s.closed = true
	started := s.started
	s.mu.Unlock()
	if first {
		close(s.closing)
		switch {
		case !started:
			s.conn.Close() // interrupts detection or the handshake
		case s.y != nil:
			s.y.Close()
		default:
			var guard *time.Timer
			if !s.isNetConn {
				// Without write deadlines braid's Close could wait on
				// a write the peer never reads: bound it.
				guard = time.AfterFunc(2*time.Second, func() { s.conn.Close() })
			}
			s.b.Close()
			if guard != nil {
				guard.Stop()
			}
		}
	}
	s.wg.Wait()
	return nil
}

// GoAway tells the peer not to open new streams; streams already open
// carry on. On yamux-wire sessions this side may still open streams and
// the session stays up. On braid sessions this side cannot open streams
// either, and the session closes once its last stream has finished.
func (s *Session) GoAway() error {
	if err := s.waitReady(context.Background()); err != nil {
		return err
	}
	if s.y != nil {
		return yamuxErr(s.y.GoAway())
	}
	s.localGoAway.Store(true)
	if err := s.b.GoAway(); err != nil {
		return s.endErr(err)
	}
	return nil
}

// Ping sends a PING and waits for the answer, returning the round-trip
// time. It fails with ErrTimeout after ConnectionWriteTimeout and with
// ErrSessionShutdown if the session ends first.
func (s *Session) Ping() (time.Duration, error) {
	ctx := context.Background()
	if d := s.cfg.ConnectionWriteTimeout; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	if err := s.waitReady(ctx); err != nil {
		if ctx.Err() != nil {
			return 0, ErrTimeout
		}
		return 0, err
	}
	if s.y != nil {
		rtt, err := s.y.Ping()
		return rtt, yamuxErr(err)
	}
	rtt, err := s.b.Ping(ctx)
	switch {
	case err == nil:
		return rtt, nil
	case ctx.Err() != nil && !errors.Is(err, net.ErrClosed):
		return 0, ErrTimeout
	}
	return 0, s.endErr(err)
}

// Addr returns the local address of the connection (net.Listener).
func (s *Session) Addr() net.Addr { return s.LocalAddr() }

// LocalAddr returns the local address of the connection: an *Addr if
// the transport has none.
func (s *Session) LocalAddr() net.Addr { return s.conn.LocalAddr() }

// RemoteAddr returns the remote address of the connection: an *Addr if
// the transport has none.
func (s *Session) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }
