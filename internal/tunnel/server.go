package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/braidmux/braid/internal/auth"
	"github.com/braidmux/braid/session"
)

// ServerConfig configures a Server. Zero fields take the defaults named
// on each field. NewServer takes a copy; Users and Policy are shared and
// must not be modified while the server runs.
type ServerConfig struct {
	// TLS, if not nil, wraps every accepted connection (the normal case).
	// Nil serves braid over plain TCP, for tests.
	TLS *tls.Config
	// Users authenticates clients by token. Required.
	Users *auth.Users
	// Policy decides which forwards a user may use. Nil allows the
	// defaults (any -L/-D destination, -R on loopback only).
	Policy *auth.Policy
	// AuthTimeout bounds TLS, the braid handshake and the login of a new
	// connection together (or TLS and the resume handshake of a
	// connection that resumes a session). Default 10 s.
	AuthTimeout time.Duration
	// MaxUnauthenticated caps connections still in that phase; more are
	// closed at once. A connection leaves it when its client logs in or
	// when its first frame asks to resume a session (the resume proof is
	// then checked at once). Default 64.
	MaxUnauthenticated int
	// ResumeTimeout is how long the session of a client whose connection
	// broke is kept, with its -R ports and live connections, for the
	// client to resume it on a new connection. Default 60 s; negative
	// turns resumption off (a broken connection ends the session).
	ResumeTimeout time.Duration
	// MaxForwards caps a client's -R forwards (a user's own limit wins).
	// Default 64.
	MaxForwards int
	// MaxConns caps a client's open forwarded connections, both ways (a
	// user's own limit wins). Default 4096.
	MaxConns int
	// KeepAlive and KeepAliveTimeout set the session keepalive: a client
	// that stops answering is dropped after at most their sum, and its
	// -R ports are freed. Defaults 10 s and 15 s.
	KeepAlive, KeepAliveTimeout time.Duration
	// DialTimeout bounds connecting to a -L/-D target. Default 10 s.
	DialTimeout time.Duration
	// Dial connects to -L/-D targets. Nil uses a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives the server's logs. Nil discards them.
	Logger *slog.Logger
}

func (c *ServerConfig) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.AuthTimeout, 10*time.Second)
	def(&c.KeepAlive, 10*time.Second)
	def(&c.KeepAliveTimeout, 15*time.Second)
	def(&c.DialTimeout, 10*time.Second)
	if c.MaxUnauthenticated == 0 {
		c.MaxUnauthenticated = 64
	}
	if c.MaxForwards == 0 {
		c.MaxForwards = 64
	}
	if c.MaxConns == 0 {
		c.MaxConns = 4096
	}
	if c.Policy == nil {
		c.Policy = &auth.Policy{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Dial == nil {
		d := &net.Dialer{}
		c.Dial = d.DialContext
	}
}

// Server accepts tunnel clients: it authenticates each, binds its -R
// forwards, and dials the targets of its -L and -D connections. Create
// it with NewServer, run it with Serve, stop it with Shutdown or Close.
// Its methods are safe for concurrent use.
type Server struct {
	cfg   ServerConfig
	log   *slog.Logger
	unath chan struct{} // semaphore: connections before login

	mu       sync.Mutex
	lns      map[*session.Listener]struct{}
	unauth   map[string]*gatedConn // connections holding an unath slot, by connKey
	clients  map[*serverClient]struct{}
	byInst   map[string]*serverClient // user + "/" + instance
	remotes  []*counters              // live -R listeners, for Snapshot
	closing  bool
	accepted atomic.Uint64
	authFail atomic.Uint64
	pending  sync.WaitGroup // handshakes in progress
	outbound *counters      // -L and -D connections dialed for clients
	done     chan struct{}
}

// NewServer checks cfg and returns a Server.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Users == nil {
		return nil, errors.New("tunnel: no users: set a token (BRAID_TOKEN or --token-file) or an --auth-file")
	}
	cfg.defaults()
	return &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		unath:    make(chan struct{}, cfg.MaxUnauthenticated),
		lns:      make(map[*session.Listener]struct{}),
		unauth:   make(map[string]*gatedConn),
		clients:  make(map[*serverClient]struct{}),
		byInst:   make(map[string]*serverClient),
		outbound: newCounters("-L/-D", Local.String()),
		done:     make(chan struct{}),
	}, nil
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("tunnel: server closed")

// Serve accepts connections on ln until Shutdown or Close, and returns
// ErrServerClosed then (or the listener's error). ln is closed on return.
//
// Sessions are resumable (unless ResumeTimeout is negative): a client
// whose connection broke comes back on a new one and carries on in the
// session it had, without logging in again; its -R ports stay bound
// meanwhile. Serve sees only new sessions, each of which must log in.
func (s *Server) Serve(ln net.Listener) error {
	l := session.NewListener(&gate{Listener: ln, s: s}, s.sessionConfig())
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.lns[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.lns, l)
		s.mu.Unlock()
		l.Close()
	}()
	for {
		sess, err := l.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			return err
		}
		s.pending.Add(1)
		go func() {
			defer s.pending.Done()
			s.handshake(sess)
		}()
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// isTemporary reports accept errors worth retrying (EMFILE, ENFILE,
// ECONNABORTED).
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// loginError is the reply a refused login gets.
type loginError struct{ code, msg string }

func (e *loginError) Error() string { return e.msg }

// handshake runs the login of a new session, within AuthTimeout of its
// connection's accept (TLS and the braid handshake took the start of
// it), then hands the session to a serverClient.
func (s *Server) handshake(sess *session.Session) {
	remote := sess.RemoteAddr().String()
	deadline := time.Now().Add(s.cfg.AuthTimeout)
	s.mu.Lock()
	gc := s.unauth[connKey(sess.LocalAddr(), sess.RemoteAddr())]
	s.mu.Unlock()
	release := func() {}
	if gc != nil {
		deadline = gc.accepted.Add(s.cfg.AuthTimeout)
		release = gc.release
	}
	defer release()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	ctl, err := sess.AcceptStream(ctx)
	if err != nil {
		s.log.Debug("no login before the auth timeout", "remote", remote, "error", err)
		sess.Close()
		return
	}
	_ = ctl.SetDeadline(deadline)
	var hello helloMsg
	if err := readMsg(ctl, &hello); err != nil {
		s.log.Debug("bad login message", "remote", remote, "error", err)
		sess.Close()
		return
	}
	_ = ctl.SetDeadline(time.Time{})
	cl, reply, lerr := s.login(sess, &hello, remote)
	if lerr != nil {
		reply = helloReply{Code: lerr.code, Error: lerr.msg}
	}
	_ = ctl.SetWriteDeadline(deadline)
	werr := writeMsg(ctl, reply)
	if lerr != nil {
		// Give the client a moment to read the answer and hang up
		// itself, so the refusal is not lost to a reset.
		if werr == nil {
			select {
			case <-sess.CloseChan():
			case <-ctx.Done():
			}
		}
		sess.Close()
		return
	}
	_ = ctl.SetWriteDeadline(time.Time{})
	release()
	if werr != nil {
		// Logged in, but the answer was lost: run cleans up at once.
		sess.Close()
	} else {
		s.log.Info("client connected", "remote", remote, "user", cl.user.Name, "forwards", len(cl.remotes))
	}
	cl.run()
}

func (s *Server) sessionConfig() *session.Config {
	cfg := session.DefaultConfig()
	cfg.KeepAliveInterval = s.cfg.KeepAlive
	cfg.KeepAliveTimeout = s.cfg.KeepAliveTimeout
	// The server accepts whatever the client asks for.
	cfg.Compression = session.CompressionZstd
	cfg.MaxIncomingStreams = s.cfg.MaxConns + 16
	// TLS and the first frame of a connection (a new session's HELLO or
	// a resume) must come within AuthTimeout.
	cfg.HandshakeTimeout = s.cfg.AuthTimeout
	cfg.ResumeTimeout = s.cfg.ResumeTimeout
	cfg.Logger = s.log
	return cfg
}

// login checks the token, replaces the same client instance's previous
// session, and binds the -R forwards. It returns the client and its
// reply, or the reason for refusal.
func (s *Server) login(sess *session.Session, h *helloMsg, remote string) (*serverClient, helloReply, *loginError) {
	if h.Version != protocolVersion {
		return nil, helloReply{}, &loginError{"version", fmt.Sprintf(
			"the server speaks tunnel protocol version %d and the client %d: upgrade the older of the two", protocolVersion, h.Version)}
	}
	user, ok := s.cfg.Users.Lookup(h.Token)
	if !ok {
		s.authFail.Add(1)
		s.log.Warn("authentication failed", "remote", remote)
		return nil, helloReply{}, &loginError{"auth",
			"authentication failed: the server does not know this token; check BRAID_TOKEN or --token-file on the client (and the server's token or --auth-file)"}
	}
	maxFwd, maxConns := s.cfg.MaxForwards, s.cfg.MaxConns
	if user.MaxForwards > 0 {
		maxFwd = user.MaxForwards
	}
	if user.MaxConns > 0 {
		maxConns = user.MaxConns
	}
	cl := &serverClient{
		srv: s, sess: sess, user: user, remote: remote, maxConns: int64(maxConns),
		key:     user.Name + "/" + h.Instance,
		remotes: make(map[int]*remoteListener),
		done:    make(chan struct{}),
	}
	// A client that reconnects while its old session still looks alive
	// here (the link died silently) replaces it: the old session is
	// closed and its -R ports freed before the new ones are bound.
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil, helloReply{}, &loginError{"busy", "the server is shutting down; try again shortly"}
	}
	old := s.byInst[cl.key]
	s.mu.Unlock()
	if old != nil && h.Instance != "" {
		s.log.Info("client reconnected; closing its previous session", "user", user.Name, "remote", remote)
		old.sess.Close()
		<-old.done
	}
	reply := helloReply{OK: true, User: user.Name}
	for i, r := range h.Remote {
		res := remoteResult{ID: r.ID}
		if i >= maxFwd {
			res.Error = fmt.Sprintf("-R %s refused: this client may have at most %d forwards (server --max-forwards or the user's max_forwards)", r.Spec, maxFwd)
		} else if ln, err := s.bindRemote(user, r); err != nil {
			res.Error = err.Error()
		} else {
			rl := &remoteListener{req: r, ln: ln,
				stats: newCounters("-R "+r.Spec+" ("+user.Name+")", Remote.String())}
			rl.stats.listen.Store(ln.Addr().String())
			cl.remotes[r.ID] = rl
			res.Listen = ln.Addr().String()
		}
		if res.Error != "" {
			s.log.Warn("forward refused", "user", user.Name, "forward", "-R "+r.Spec, "error", res.Error)
		}
		reply.Remote = append(reply.Remote, res)
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		cl.closeRemotes()
		return nil, helloReply{}, &loginError{"busy", "the server is shutting down; try again shortly"}
	}
	s.clients[cl] = struct{}{}
	if h.Instance != "" {
		s.byInst[cl.key] = cl
	}
	for _, rl := range cl.remotes {
		s.remotes = append(s.remotes, rl.stats)
	}
	s.accepted.Add(1)
	s.mu.Unlock()
	return cl, reply, nil
}

// bindRemote checks the rules for an -R forward and listens for it.
func (s *Server) bindRemote(u *auth.User, r remoteReq) (net.Listener, error) {
	host := listenHost(r.Bind)
	checkHost := host
	if checkHost == "" {
		checkHost = "0.0.0.0"
	}
	if err := s.cfg.Policy.Check(u, auth.KindRemote, checkHost, r.Port); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(r.Port)))
	if err != nil {
		return nil, fmt.Errorf("-R %s: the server cannot listen on %s: %v", r.Spec, net.JoinHostPort(host, strconv.Itoa(r.Port)), err)
	}
	return ln, nil
}

// Shutdown stops accepting, tells every client to open nothing more
// (GOAWAY), closes the -R listeners, and waits until the forwarded
// connections have ended or ctx is done; then it closes every session.
// It returns ctx.Err() if connections were cut.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeListeners()
	s.mu.Lock()
	clients := make([]*serverClient, 0, len(s.clients))
	for c := range s.clients {
		clients = append(clients, c)
	}
	s.mu.Unlock()
	for _, c := range clients {
		_ = c.sess.GoAway()
		c.closeRemotes()
	}
	var err error
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for s.openConns() > 0 {
		select {
		case <-tick.C:
			continue
		case <-ctx.Done():
			err = ctx.Err()
		}
		break
	}
	s.closeAll()
	return err
}

// Close closes the server and every session at once.
func (s *Server) Close() error {
	s.closeListeners()
	s.closeAll()
	return nil
}

// closeListeners marks the server closing and closes its listeners.
// Sessions waiting to be resumed end then: no client can reach them.
func (s *Server) closeListeners() {
	s.mu.Lock()
	s.closing = true
	lns := make([]*session.Listener, 0, len(s.lns))
	for l := range s.lns {
		lns = append(lns, l)
	}
	s.mu.Unlock()
	// Not under s.mu: Close waits for the connections' handshakes,
	// which release their slots under it.
	for _, l := range lns {
		l.Close()
	}
}

func (s *Server) closeAll() {
	s.mu.Lock()
	clients := make([]*serverClient, 0, len(s.clients))
	for c := range s.clients {
		clients = append(clients, c)
	}
	s.mu.Unlock()
	for _, c := range clients {
		c.sess.Close()
		<-c.done
	}
	s.pending.Wait()
}

func (s *Server) openConns() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for c := range s.clients {
		n += c.open.Load()
	}
	return n
}

// Snapshot returns the server's counters.
func (s *Server) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := Snapshot{
		Role:            "server",
		Connected:       !s.closing,
		Sessions:        len(s.clients),
		Unauthenticated: len(s.unath),
		Reconnects:      s.accepted.Load(),
		AuthFailures:    s.authFail.Load(),
		Forwards:        []ForwardStats{s.outbound.snapshot()},
	}
	for c := range s.clients {
		addStats(&snap.Session, c.sess.Stats())
	}
	snap.RTT = snap.Session.RTT
	for _, r := range s.remotes {
		snap.Forwards = append(snap.Forwards, r.snapshot())
	}
	return snap
}

// serverClient is one authenticated client session.
type serverClient struct {
	srv      *Server
	sess     *session.Session
	user     *auth.User
	remote   string
	key      string
	maxConns int64
	remotes  map[int]*remoteListener // fixed after login
	open     atomic.Int64            // forwarded connections now open
	wg       sync.WaitGroup
	closeMu  sync.Once
	done     chan struct{} // closed when run has cleaned up
}

// remoteListener is one bound -R forward.
type remoteListener struct {
	req   remoteReq
	ln    net.Listener
	stats *counters
}

// run serves the client until its session ends, then frees everything
// it held: -R ports first, so a reconnecting client can bind them again.
func (c *serverClient) run() {
	s := c.srv
	for _, rl := range c.remotes {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.acceptRemote(rl)
		}()
	}
	for {
		st, err := c.sess.AcceptStream(context.Background())
		if err != nil {
			break
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if l := c.serveOpen(st); l != nil {
				l.carry()
			}
		}()
	}
	c.closeRemotes()
	c.sess.Close()
	c.wg.Wait()
	s.mu.Lock()
	delete(s.clients, c)
	if s.byInst[c.key] == c {
		delete(s.byInst, c.key)
	}
	kept := s.remotes[:0]
	for _, r := range s.remotes {
		mine := false
		for _, rl := range c.remotes {
			mine = mine || rl.stats == r
		}
		if !mine {
			kept = append(kept, r)
		}
	}
	clear(s.remotes[len(kept):])
	s.remotes = kept
	s.mu.Unlock()
	reason := c.sess.Err()
	s.log.Info("client disconnected", "remote", c.remote, "user", c.user.Name, "reason", errString(reason))
	close(c.done)
}

func (c *serverClient) closeRemotes() {
	c.closeMu.Do(func() {
		for _, rl := range c.remotes {
			rl.ln.Close()
		}
	})
}

// admit counts a new forwarded connection against the client's cap.
func (c *serverClient) admit() bool {
	if c.open.Add(1) > c.maxConns {
		c.open.Add(-1)
		return false
	}
	return true
}

// serveOpen sets up a stream the client opened for -L or -D: check the
// rules, dial the target, answer. It returns the connection to carry, or
// nil if it failed (and was answered so).
func (c *serverClient) serveOpen(st *session.Stream) *link {
	s := c.srv
	_ = st.SetReadDeadline(time.Now().Add(s.cfg.AuthTimeout))
	var m openMsg
	if err := readMsg(st, &m); err != nil {
		s.log.Debug("bad open message", "user", c.user.Name, "error", err)
		_ = st.Reset(resetCode)
		return nil
	}
	_ = st.SetReadDeadline(time.Time{})
	stats := s.outbound
	stats.total.Add(1)
	fail := func(code, msg string) {
		stats.failed.Add(1)
		refuse(st, code, msg)
	}
	var kind auth.Kind
	switch m.Kind {
	case kindLocal:
		kind = auth.KindLocal
	case kindDynamic:
		kind = auth.KindDynamic
	default:
		fail("unknown", fmt.Sprintf("unknown forward kind %q: upgrade the server", m.Kind))
		return nil
	}
	host, portStr, err := net.SplitHostPort(m.Addr)
	port, perr := strconv.Atoi(portStr)
	if err != nil || perr != nil || host == "" || port <= 0 || port > 65535 {
		fail("unknown", fmt.Sprintf("bad target address %q", m.Addr))
		return nil
	}
	if err := s.cfg.Policy.Check(c.user, kind, host, port); err != nil {
		s.log.Warn("forward refused", "user", c.user.Name, "target", m.Addr, "error", err)
		fail("denied", err.Error())
		return nil
	}
	if !c.admit() {
		fail("limit", fmt.Sprintf("too many open connections for this client (limit %d; server --max-conns or the user's max_conns)", c.maxConns))
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DialTimeout)
	target, err := s.cfg.Dial(ctx, "tcp", m.Addr)
	cancel()
	if err != nil {
		code := "unreachable"
		if isRefused(err) {
			code = "refused"
		}
		s.log.Debug("target dial failed", "user", c.user.Name, "target", m.Addr, "error", err)
		fail(code, fmt.Sprintf("server cannot connect to %s: %v", m.Addr, err))
		c.open.Add(-1)
		return nil
	}
	if err := writeMsg(st, openReply{OK: true}); err != nil {
		target.Close()
		_ = st.Reset(resetCode)
		c.open.Add(-1)
		return nil
	}
	stats.open.Add(1)
	return &link{conn: target, st: st, up: &stats.up, down: &stats.down,
		failed: &stats.failed, log: s.log, attrs: []any{"user", c.user.Name, "target", m.Addr},
		done: func() { stats.open.Add(-1); c.open.Add(-1) }}
}

// acceptRemote accepts connections on an -R listener and sends each to
// the client on a new stream.
func (c *serverClient) acceptRemote(rl *remoteListener) {
	for {
		conn, err := rl.ln.Accept()
		if err != nil {
			if isTemporary(err) {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if l := c.forwardRemote(rl, conn); l != nil {
				l.carry()
			}
		}()
	}
}

// forwardRemote sets up a connection accepted on an -R listener: a new
// stream to the client, with the forward's header. It returns the
// connection to carry, or nil if it failed (and was reset).
func (c *serverClient) forwardRemote(rl *remoteListener, conn net.Conn) *link {
	s := c.srv
	stats := rl.stats
	stats.total.Add(1)
	if !c.admit() {
		stats.failed.Add(1)
		resetConn(conn)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DialTimeout)
	st, err := c.sess.OpenStream(ctx)
	cancel()
	if err == nil {
		if err = writeMsg(st, openMsg{Kind: kindRemote, ID: rl.req.ID}); err != nil {
			_ = st.Reset(resetCode)
		}
	}
	if err != nil {
		stats.failed.Add(1)
		resetConn(conn)
		c.open.Add(-1)
		return nil
	}
	stats.open.Add(1)
	return &link{conn: conn, st: st, up: &stats.up, down: &stats.down,
		first:  func() error { return readReply(st, s.cfg.DialTimeout+5*time.Second) },
		failed: &stats.failed, log: s.log,
		attrs: []any{"forward", "-R " + rl.req.Spec, "user", c.user.Name, "remote", conn.RemoteAddr().String()},
		done:  func() { stats.open.Add(-1); c.open.Add(-1) }}
}

// refuse answers a stream's header with a refusal and half-closes the
// stream. The opener resets the stream when it reads the refusal, which
// ends it on both sides. (A reset from here could overtake the answer and
// drop it unread; Close would hold the stream's memory until
// StreamCloseTimeout.)
func refuse(st *session.Stream, code, msg string) {
	_ = st.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = writeMsg(st, openReply{Code: code, Error: msg})
	_ = st.CloseWrite()
}

// readReply reads the peer's openReply and turns a refusal into an error.
func readReply(st *session.Stream, timeout time.Duration) error {
	_ = st.SetReadDeadline(time.Now().Add(timeout))
	var r openReply
	if err := readMsg(st, &r); err != nil {
		return fmt.Errorf("no answer from the other side: %w", err)
	}
	_ = st.SetReadDeadline(time.Time{})
	if !r.OK {
		return &OpenError{Code: r.Code, Msg: r.Error}
	}
	return nil
}

// OpenError is the other side's refusal to connect a forwarded
// connection: a rule denied it, or its target refused or was
// unreachable.
type OpenError struct {
	Code string // "denied", "refused", "unreachable", "limit", "unknown"
	Msg  string
}

func (e *OpenError) Error() string { return e.Msg }

// resetConn closes c with a TCP reset, so its peer sees the failure at
// once instead of a clean end.
func resetConn(c net.Conn) {
	if tc, ok := c.(interface{ SetLinger(int) error }); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
