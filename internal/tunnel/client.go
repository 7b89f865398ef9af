package tunnel

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	socks5 "github.com/things-go/go-socks5"
	"github.com/things-go/go-socks5/statute"

	"github.com/braidmux/braid/session"
)

// ClientConfig configures a Client. Zero fields take the defaults named
// on each field. NewClient takes a copy; Dial and IsFatal may be called
// from several goroutines at once.
type ClientConfig struct {
	// Server is the server's HOST:PORT, for logs.
	Server string
	// Dial connects to the server and returns a connection ready for the
	// braid handshake (TLS already done). Required. An error for which
	// IsFatal reports true ends Run (a changed server key); others are
	// retried with backoff.
	Dial func(ctx context.Context) (net.Conn, error)
	// IsFatal classifies Dial's errors. Nil treats all as transient.
	IsFatal func(error) bool
	// Token authenticates the client. Required.
	Token string
	// Forwards are the -L, -R and -D forwards to run.
	Forwards []Forward
	// Compression asks the server for compressed sessions.
	Compression session.Compression
	// KeepAlive and KeepAliveTimeout set the session keepalive: a dead
	// link is noticed within their sum. Defaults 10 s and 15 s.
	KeepAlive, KeepAliveTimeout time.Duration
	// ResumeTimeout is how long the client tries to resume its session
	// after the connection broke: it dials again (through Dial) and, if
	// the server still holds the session, every live forwarded connection
	// carries on where it stopped. When that fails (the server restarted,
	// or the time passed) it logs in again as a new session. Default
	// 60 s; negative turns resumption off.
	ResumeTimeout time.Duration
	// ReconnectMax caps the wait between reconnection attempts (the wait
	// doubles from 250 ms, with jitter). Default 30 s.
	ReconnectMax time.Duration
	// ConnectWait bounds how long a new local connection waits for the
	// link to the server before it is refused. Default 30 s.
	ConnectWait time.Duration
	// DialTimeout bounds connecting and logging in to the server, and a
	// -R target. Default 15 s.
	DialTimeout time.Duration
	// DrainTimeout bounds how long Run, when its context ends, waits for
	// live connections to finish. Default 10 s.
	DrainTimeout time.Duration
	// Logger receives the client's logs. Nil discards them.
	Logger *slog.Logger
}

func (c *ClientConfig) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.KeepAlive, 10*time.Second)
	def(&c.KeepAliveTimeout, 15*time.Second)
	def(&c.ReconnectMax, 30*time.Second)
	def(&c.ConnectWait, 30*time.Second)
	def(&c.DialTimeout, 15*time.Second)
	def(&c.DrainTimeout, 10*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.IsFatal == nil {
		c.IsFatal = func(error) bool { return false }
	}
}

// AuthError is the server's refusal of the client's login: a wrong
// token, or a protocol version it does not speak. It is not transient:
// Run returns it instead of retrying. It is a value; safe to share.
type AuthError struct {
	Code string // "auth", "version"
	Msg  string
}

func (e *AuthError) Error() string { return e.Msg }

// Client keeps one session to a server, reconnecting when it breaks,
// and runs its forwards over it. Create it with NewClient and run it
// with Run. Snapshot and Redial are safe to call concurrently with Run.
type Client struct {
	cfg       ClientConfig
	log       *slog.Logger
	instance  string
	stats     []*counters // one per Forward, same order
	hasRemote bool        // any -R forward: accept the server's streams

	mu          sync.Mutex
	sess        *session.Session
	link        *uplink       // sess's connection
	ready       chan struct{} // closed when sess is set
	redial      chan struct{}
	reconnects  atomic.Uint64 // sessions established, the first included
	authFail    atomic.Uint64
	lastStats   session.Stats
	pastResumes uint64 // resumes of the sessions that ended

	wg    sync.WaitGroup // connection goroutines
	conns sync.WaitGroup // live forwarded connections
}

// NewClient checks cfg and returns a Client.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Dial == nil {
		return nil, errors.New("tunnel: ClientConfig.Dial is required")
	}
	if cfg.Token == "" {
		return nil, errors.New("no token: set BRAID_TOKEN or --token-file (the server's token, or yours from its --auth-file)")
	}
	cfg.defaults()
	var id [8]byte
	_, _ = crand.Read(id[:])
	c := &Client{
		cfg:      cfg,
		log:      cfg.Logger,
		instance: hex.EncodeToString(id[:]),
		ready:    make(chan struct{}),
		redial:   make(chan struct{}, 1),
	}
	for _, f := range cfg.Forwards {
		c.stats = append(c.stats, newCounters(f.Name(), f.Kind.String()))
		c.hasRemote = c.hasRemote || f.Kind == Remote
	}
	return c, nil
}

// Redial skips the current wait between reconnection attempts (SIGHUP).
func (c *Client) Redial() {
	select {
	case c.redial <- struct{}{}:
	default:
	}
}

// Snapshot returns the client's counters. Reconnects counts both the
// sessions established after the first and the times a session resumed
// on a new connection: each time the link to the server came back.
// Connected is false while a session waits to be resumed.
func (c *Client) Snapshot() Snapshot {
	c.mu.Lock()
	sess, ln := c.sess, c.link
	last := c.lastStats
	resumes := c.pastResumes
	c.mu.Unlock()
	snap := Snapshot{Role: "client", AuthFailures: c.authFail.Load(), Session: last}
	if n := c.reconnects.Load(); n > 1 {
		snap.Reconnects = n - 1 // sessions after the first
	}
	if sess != nil && !sess.IsClosed() {
		snap.Sessions = 1
		snap.Session = sess.Stats()
		resumes += snap.Session.Resumes
		snap.Connected = ln == nil || !ln.isDown(snap.Session.Resumes)
	}
	snap.Reconnects += resumes
	snap.RTT = snap.Session.RTT
	for _, s := range c.stats {
		snap.Forwards = append(snap.Forwards, s.snapshot())
	}
	return snap
}

// Run binds the local forwards, then connects to the server and keeps a
// session up, reconnecting with backoff, until ctx is done; then it
// drains live connections (up to DrainTimeout) and returns nil. It
// returns an error at once if a local forward cannot listen, and ends
// with an error that is not transient: an *AuthError, or a Dial error
// for which IsFatal is true.
func (c *Client) Run(ctx context.Context) error {
	// Connections waiting for the link wait on ctx too: cancelled when
	// Run ends, whatever ends it, so none outlives Run.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for i, f := range c.cfg.Forwards {
		if f.Kind == Remote {
			continue
		}
		ln, err := net.Listen("tcp", f.ListenAddr())
		if err != nil {
			return fmt.Errorf("%s: cannot listen on %s: %w", f.Name(), f.ListenAddr(), err)
		}
		lns = append(lns, ln)
		c.stats[i].listen.Store(ln.Addr().String())
		c.log.Info("forward ready", "forward", f.Name(), "listen", ln.Addr().String())
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.acceptLocal(ctx, i, ln)
		}()
	}

	err := c.loop(ctx)

	// Shut down: no new connections; let live ones finish.
	for _, ln := range lns {
		ln.Close()
	}
	c.mu.Lock()
	sess := c.sess
	c.mu.Unlock()
	if sess != nil && err == nil {
		_ = sess.GoAway()
		drained := make(chan struct{})
		go func() { c.conns.Wait(); close(drained) }()
		select {
		case <-drained:
		case <-time.After(c.cfg.DrainTimeout):
			c.log.Warn("drain timeout: closing live connections", "timeout", c.cfg.DrainTimeout)
		}
	}
	cancel()
	if sess != nil {
		sess.Close()
	}
	c.wg.Wait()
	return err
}

// loop connects and reconnects until ctx is done or a fatal error.
func (c *Client) loop(ctx context.Context) error {
	backoff := time.Duration(0)
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if attempt == 0 && c.reconnects.Load() > 0 {
			// Right after losing a working session: retry at once, but
			// spread a fleet of clients over 100 ms.
			t := time.NewTimer(rand.N(100 * time.Millisecond))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil
			}
		}
		if attempt > 0 {
			if backoff == 0 {
				backoff = 250 * time.Millisecond
			} else {
				backoff = min(2*backoff, c.cfg.ReconnectMax)
			}
			// Full jitter over the upper half, so a fleet of clients
			// cut at once does not come back in step.
			wait := backoff/2 + rand.N(backoff/2+1)
			c.log.Info("reconnecting", "in", wait.Round(time.Millisecond))
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-c.redial:
				t.Stop()
			case <-ctx.Done():
				t.Stop()
				return nil
			}
		}
		sess, ln, results, err := c.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ae *AuthError
			if errors.As(err, &ae) {
				c.authFail.Add(1)
				return err
			}
			if c.cfg.IsFatal(err) {
				return err
			}
			c.log.Warn("cannot connect to server", "server", c.cfg.Server, "error", err)
			continue
		}
		backoff = 0
		select { // a SIGHUP while connecting is used up
		case <-c.redial:
		default:
		}
		if c.reconnects.Add(1) > 1 {
			c.log.Info("connected", "server", c.cfg.Server, "reconnects", c.reconnects.Load()-1)
		} else {
			c.log.Info("connected", "server", c.cfg.Server)
		}
		for _, r := range results {
			f := c.cfg.Forwards[r.ID]
			if r.Error != "" {
				c.stats[r.ID].listen.Store("")
				c.log.Warn("forward refused", "forward", f.Name(), "error", r.Error)
				continue
			}
			c.stats[r.ID].listen.Store(r.Listen)
			c.log.Info("forward ready", "forward", f.Name(), "listen", r.Listen, "target", f.Target())
		}
		c.mu.Lock()
		c.sess = sess
		c.link = ln
		close(c.ready)
		c.mu.Unlock()

		c.serve(ctx, sess)

		c.mu.Lock()
		c.lastStats = sess.Stats()
		c.ready = make(chan struct{})
		if ctx.Err() == nil {
			c.sess, c.link = nil, nil
			c.pastResumes += c.lastStats.Resumes
		}
		c.mu.Unlock()
		if ctx.Err() != nil {
			return nil
		}
		if ln.lost() {
			// "disconnected" was logged when the connection broke.
			c.log.Warn("session not resumed; logging in again", "server", c.cfg.Server, "error", errString(sess.Err()))
		} else {
			c.log.Warn("disconnected", "server", c.cfg.Server, "error", errString(sess.Err()))
		}
		sess.Close()
		if err := ln.fatal(); err != nil {
			return err
		}
		attempt = -1 // the first retry after a working session is at once
	}
	return nil
}

// connect dials, runs the braid handshake and logs in. The session
// redials through ln when its connection breaks, and resumes.
func (c *Client) connect(ctx context.Context) (*session.Session, *uplink, []remoteResult, error) {
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	scfg := session.DefaultConfig()
	scfg.KeepAliveInterval = c.cfg.KeepAlive
	scfg.KeepAliveTimeout = c.cfg.KeepAliveTimeout
	scfg.Compression = c.cfg.Compression
	scfg.HandshakeTimeout = c.cfg.DialTimeout
	scfg.ResumeTimeout = c.cfg.ResumeTimeout
	scfg.Logger = c.log
	ln := &uplink{c: c}
	sess, err := session.Dial(dctx, ln.dial, scfg)
	if err != nil {
		if err := ln.dialErr(); err != nil {
			return nil, nil, nil, err // as Dial returned it, for IsFatal
		}
		return nil, nil, nil, fmt.Errorf("braid handshake with %s: %w", c.cfg.Server, err)
	}
	ln.start(sess)
	fail := func(err error) (*session.Session, *uplink, []remoteResult, error) {
		sess.Close()
		return nil, nil, nil, err
	}
	ctl, err := sess.OpenStream(dctx)
	if err != nil {
		return fail(err)
	}
	hello := helloMsg{Version: protocolVersion, Token: c.cfg.Token, Instance: c.instance, Agent: "braid"}
	for i, f := range c.cfg.Forwards {
		if f.Kind == Remote {
			hello.Remote = append(hello.Remote, remoteReq{ID: i, Spec: f.Spec, Bind: f.BindHost, Port: f.BindPort})
		}
	}
	deadline, _ := dctx.Deadline()
	_ = ctl.SetDeadline(deadline)
	if err := writeMsg(ctl, hello); err != nil {
		return fail(fmt.Errorf("logging in: %w", err))
	}
	var reply helloReply
	if err := readMsg(ctl, &reply); err != nil {
		return fail(fmt.Errorf("logging in: no answer from the server: %w", err))
	}
	_ = ctl.SetDeadline(time.Time{})
	if !reply.OK {
		switch reply.Code {
		case "auth", "version":
			return fail(&AuthError{Code: reply.Code, Msg: reply.Error})
		}
		return fail(fmt.Errorf("server refused the login: %s", reply.Error))
	}
	for _, r := range reply.Remote {
		if r.ID < 0 || r.ID >= len(c.cfg.Forwards) || c.cfg.Forwards[r.ID].Kind != Remote {
			return fail(fmt.Errorf("server answered for a forward it was not asked for (id %d)", r.ID))
		}
	}
	return sess, ln, reply.Remote, nil
}

// uplink is the connection under one session, as the client sees it.
// session.Dial calls dial for the session's first connection, and again
// each time the connection broke, to resume the session on a new one.
// An uplink reports the breaks and the resumes in the log ("disconnected",
// "connected" with resumed=true) and tells Snapshot whether the session
// is waiting to be resumed. Its methods are safe for concurrent use.
type uplink struct {
	c *Client

	mu          sync.Mutex
	sess        *session.Session // once connect has it
	dials       int
	firstErr    error  // the first dial's error
	fatalErr    error  // a redial's error that resuming cannot fix
	down        bool   // the connection broke...
	downResumes uint64 // ...when the session had resumed this many times
}

// start notes the session the link belongs to.
func (l *uplink) start(sess *session.Session) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sess = sess
}

// dial is the session's dial function.
func (l *uplink) dial(ctx context.Context) (net.Conn, error) {
	l.mu.Lock()
	l.dials++
	first := l.dials == 1
	sess := l.sess
	l.mu.Unlock()
	if !first && sess != nil {
		l.broke(sess)
	}
	conn, err := l.c.cfg.Dial(ctx)
	if err == nil {
		return conn, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case first:
		l.firstErr = err
	case l.c.cfg.IsFatal(err) && sess != nil && l.fatalErr == nil:
		// The server's key changed: no retry will do. End the session
		// (not from here: Close waits for the goroutine calling dial),
		// and the client with it.
		l.fatalErr = err
		l.c.wg.Add(1)
		go func() {
			defer l.c.wg.Done()
			sess.Close()
		}()
	}
	return nil, err
}

// broke handles a redial: the first of an outage logs it and starts a
// watch for the resume.
func (l *uplink) broke(sess *session.Session) {
	resumes := sess.Stats().Resumes
	l.mu.Lock()
	if l.down && resumes <= l.downResumes {
		l.mu.Unlock()
		return // another attempt in the same outage
	}
	l.down, l.downResumes = true, resumes
	l.mu.Unlock()
	l.c.log.Warn("disconnected", "server", l.c.cfg.Server, "resuming", true, "resume_timeout", l.c.resumeTimeout())
	l.c.wg.Add(1)
	go l.watch(sess, resumes)
}

// watch waits for the session to resume after the outage that began
// when it had resumed at times, and logs it. It returns when the session
// resumes or ends.
func (l *uplink) watch(sess *session.Session, at uint64) {
	defer l.c.wg.Done()
	t := time.NewTicker(resumePoll)
	defer t.Stop()
	for {
		select {
		case <-sess.CloseChan():
			return
		case <-t.C:
		}
		if sess.Stats().Resumes > at {
			l.c.log.Info("connected", "server", l.c.cfg.Server, "resumed", true)
			return
		}
	}
}

// resumePoll is how often an uplink looks for its session's resume, to log
// it (Snapshot does not wait for it).
const resumePoll = 50 * time.Millisecond

// isDown reports whether the session, which has resumed resumes times,
// is waiting to be resumed.
func (l *uplink) isDown(resumes uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.down && resumes <= l.downResumes
}

// lost reports whether the session ended while waiting to be resumed.
func (l *uplink) lost() bool {
	l.mu.Lock()
	sess := l.sess
	l.mu.Unlock()
	return sess != nil && l.isDown(sess.Stats().Resumes)
}

func (l *uplink) dialErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.firstErr
}

func (l *uplink) fatal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatalErr
}

func (c *Client) resumeTimeout() time.Duration {
	if c.cfg.ResumeTimeout == 0 {
		return 60 * time.Second // session's default
	}
	return c.cfg.ResumeTimeout
}

// serve accepts the streams the server opens (-R connections) until
// the session ends or ctx is done.
func (c *Client) serve(ctx context.Context, sess *session.Session) {
	if !c.hasRemote {
		// Nothing to accept: just wait for the session to end.
		select {
		case <-sess.CloseChan():
		case <-ctx.Done():
		}
		return
	}
	for {
		st, err := sess.AcceptStream(ctx)
		if err != nil {
			return
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if l := c.serveRemote(st); l != nil {
				l.carry()
			}
		}()
	}
}

// serveRemote sets up an -R connection to its target on this side and
// returns it, or nil if it failed (and was answered so).
func (c *Client) serveRemote(st *session.Stream) *link {
	_ = st.SetReadDeadline(time.Now().Add(c.cfg.DialTimeout))
	var m openMsg
	if err := readMsg(st, &m); err != nil || m.Kind != kindRemote {
		_ = st.Reset(resetCode)
		return nil
	}
	_ = st.SetReadDeadline(time.Time{})
	i := m.ID
	if i < 0 || i >= len(c.cfg.Forwards) || c.cfg.Forwards[i].Kind != Remote {
		refuse(st, "unknown", fmt.Sprintf("client has no -R forward %d", m.ID))
		return nil
	}
	f, stats := c.cfg.Forwards[i], c.stats[i]
	stats.total.Add(1)
	d := net.Dialer{Timeout: c.cfg.DialTimeout}
	target, err := d.Dial("tcp", f.Target())
	if err != nil {
		stats.failed.Add(1)
		c.log.Warn("cannot connect to target", "forward", f.Name(), "target", f.Target(), "error", err)
		code := "unreachable"
		if isRefused(err) {
			code = "refused"
		}
		refuse(st, code, fmt.Sprintf("client cannot connect to %s: %v", f.Target(), err))
		return nil
	}
	if err := writeMsg(st, openReply{OK: true}); err != nil {
		target.Close()
		_ = st.Reset(resetCode)
		return nil
	}
	c.conns.Add(1)
	stats.open.Add(1)
	return &link{conn: target, st: st, up: &stats.up, down: &stats.down, connIsClient: true,
		failed: &stats.failed, log: c.log, attrs: []any{"forward", f.Name(), "target", f.Target()},
		done: func() { stats.open.Add(-1); c.conns.Done() }}
}

// session returns the current session, waiting up to ConnectWait for
// one while the link is down.
func (c *Client) session(ctx context.Context) (*session.Session, error) {
	t := time.NewTimer(c.cfg.ConnectWait)
	defer t.Stop()
	for {
		c.mu.Lock()
		sess, ready := c.sess, c.ready
		c.mu.Unlock()
		if sess != nil && !sess.IsClosed() {
			return sess, nil
		}
		select {
		case <-ready:
		case <-t.C:
			return nil, fmt.Errorf("no link to the server %s for %v", c.cfg.Server, c.cfg.ConnectWait)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// openStream opens a stream for a new local connection, waiting for the
// link if it is down, and retrying once on a session that just ended.
func (c *Client) openStream(ctx context.Context) (*session.Stream, error) {
	var lastErr error
	for range 3 {
		sess, err := c.session(ctx)
		if err != nil {
			return nil, err
		}
		octx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
		st, err := sess.OpenStream(octx)
		cancel()
		if err == nil {
			return st, nil
		}
		lastErr = err
		if !errors.Is(err, net.ErrClosed) && !errors.Is(err, session.ErrGoAway) {
			return nil, err
		}
		// The session is ending; wait for its successor.
		c.mu.Lock()
		if c.sess == sess {
			c.sess = nil
		}
		c.mu.Unlock()
	}
	return nil, lastErr
}

// acceptLocal serves one -L or -D listener.
func (c *Client) acceptLocal(ctx context.Context, i int, ln net.Listener) {
	f := c.cfg.Forwards[i]
	var socks *socks5.Server
	if f.Kind == Dynamic {
		socks = c.socksServer(ctx, i)
	}
	for {
		conn, err := ln.Accept()
		if err != nil {
			if isTemporary(err) {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return
		}
		c.conns.Add(1)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer c.conns.Done()
			if socks != nil {
				_ = socks.ServeConn(conn)
				return
			}
			if l := c.forwardLocal(ctx, i, conn); l != nil {
				l.carry()
			}
		}()
	}
}

// forwardLocal sets up one -L connection and returns it, or nil if it
// failed (and was reset).
func (c *Client) forwardLocal(ctx context.Context, i int, conn net.Conn) *link {
	f, stats := c.cfg.Forwards[i], c.stats[i]
	stats.total.Add(1)
	st, err := c.openStream(ctx)
	if err != nil {
		stats.failed.Add(1)
		c.log.Warn("connection refused: no link", "forward", f.Name(), "error", err)
		resetConn(conn)
		return nil
	}
	if err := writeMsg(st, openMsg{Kind: kindLocal, Addr: f.Target()}); err != nil {
		stats.failed.Add(1)
		_ = st.Reset(resetCode)
		resetConn(conn)
		return nil
	}
	stats.open.Add(1)
	return &link{conn: conn, st: st, up: &stats.up, down: &stats.down, connIsClient: true,
		first:  func() error { return readReply(st, c.cfg.DialTimeout+5*time.Second) },
		failed: &stats.failed, log: c.log, attrs: []any{"forward", f.Name(), "remote", conn.RemoteAddr().String()},
		done: func() { stats.open.Add(-1) }}
}

// socksServer builds the SOCKS5 server of a -D forward: CONNECT only,
// names resolved on the server side (the client never looks them up).
func (c *Client) socksServer(ctx context.Context, i int) *socks5.Server {
	f, stats := c.cfg.Forwards[i], c.stats[i]
	connect := func(_ context.Context, w io.Writer, req *socks5.Request) error {
		stats.total.Add(1)
		stats.open.Add(1)
		defer stats.open.Add(-1)
		addr := req.DestAddr.String() // FQDN kept as a name: see noResolve
		conn, ok := w.(net.Conn)
		if !ok {
			return errors.New("socks: writer is not a connection")
		}
		st, err := c.openStream(ctx)
		if err != nil {
			stats.failed.Add(1)
			_ = socks5.SendReply(w, statute.RepServerFailure, nil)
			return err
		}
		if err := writeMsg(st, openMsg{Kind: kindDynamic, Addr: addr}); err != nil {
			stats.failed.Add(1)
			_ = st.Reset(resetCode)
			_ = socks5.SendReply(w, statute.RepServerFailure, nil)
			return err
		}
		if err := readReply(st, c.cfg.DialTimeout+5*time.Second); err != nil {
			stats.failed.Add(1)
			rep := uint8(statute.RepServerFailure)
			var oe *OpenError
			if errors.As(err, &oe) {
				switch oe.Code {
				case "denied":
					rep = statute.RepRuleFailure
				case "refused":
					rep = statute.RepConnectionRefused
				case "unreachable":
					rep = statute.RepHostUnreachable
				}
			}
			c.log.Warn("forward failed", "forward", f.Name(), "target", addr, "error", err)
			_ = st.Reset(resetCode)
			_ = socks5.SendReply(w, rep, nil)
			return err
		}
		if err := socks5.SendReply(w, statute.RepSuccess, &net.TCPAddr{IP: net.IPv4zero}); err != nil {
			_ = st.Reset(resetCode)
			return err
		}
		// The request's reader may hold bytes the client sent after
		// its request; read through it.
		start := time.Now()
		c.log.Debug("connection opened", "forward", f.Name(), "target", addr)
		up, down, _ := pipe(readerConn{Conn: conn, r: req.Reader}, st, &stats.up, &stats.down, nil)
		c.log.Debug("connection closed", "forward", f.Name(), "target", addr,
			"bytes_up", up, "bytes_down", down, "duration", time.Since(start))
		return nil
	}
	return socks5.NewServer(
		socks5.WithConnectHandle(connect),
		socks5.WithResolver(noResolve{}),
		socks5.WithLogger(socksLogger{c.log}),
	)
}

// readerConn is a net.Conn whose reads come from r (a buffered reader
// over the same connection).
type readerConn struct {
	net.Conn
	r io.Reader
}

func (c readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// SetLinger sets SO_LINGER on the underlying TCP connection.
func (c readerConn) SetLinger(sec int) error {
	if lc, ok := c.Conn.(interface{ SetLinger(int) error }); ok {
		return lc.SetLinger(sec)
	}
	return nil
}

// CloseWrite half-closes the underlying TCP connection.
func (c readerConn) CloseWrite() error {
	if hc, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite()
	}
	return nil
}

// noResolve leaves names unresolved: the server resolves them, so -D
// reaches names only the server's network knows.
type noResolve struct{}

func (noResolve) Resolve(ctx context.Context, _ string) (context.Context, net.IP, error) {
	return ctx, nil, nil
}

type socksLogger struct{ log *slog.Logger }

func (l socksLogger) Errorf(format string, args ...any) {
	l.log.Debug("socks: " + fmt.Sprintf(format, args...))
}
