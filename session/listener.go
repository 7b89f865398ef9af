package session

import (
	"context"
	"crypto/hmac"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/braidmux/braid/frame"
)

// Dial starts the client side of a resumable session: it calls dial for a
// connection, runs the handshake, and returns the running session. If the
// connection later breaks, the session calls dial again (with growing
// pauses) and resumes every stream where it stopped, on the new
// connection, for up to Config.ResumeTimeout; meanwhile its streams
// behave as over a slow link. The server side must be a Listener; with
// any other braid server the session works but does not resume. ctx
// bounds the first dial and handshake only; the session outlives it. A
// nil cfg means DefaultConfig().
//
// dial is called from the session's own goroutine, one call at a time;
// it should honour its context, which ends when the session does.
func Dial(ctx context.Context, dial func(context.Context) (net.Conn, error), cfg *Config) (*Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	conn, err := dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("braid: dialling: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	s, err := newSession(conn, cfg, true, sessionOpts{dial: dial})
	if !stop() {
		if s != nil {
			s.Close()
		}
		return nil, fmt.Errorf("braid: handshake: %w", context.Cause(ctx))
	}
	return s, err
}

// Listener accepts braid sessions on a net.Listener and keeps them
// resumable: a client that made its session with Dial and lost its
// connection comes back on a new one, and the Listener re-attaches it to
// the Session the application already holds, without Accept seeing it.
// It bounds what it keeps for clients that do not come back: at most
// Config.MaxDetachedSessions sessions wait to be resumed, each for at
// most Config.ResumeTimeout. A client made with Client (not Dial) gets an
// ordinary session.
//
// Each connection's handshake runs in its own goroutine, bounded by
// Config.HandshakeTimeout, so one slow client holds up no other. All
// methods are safe for concurrent use.
type Listener struct {
	ln   net.Listener
	cfg  Config
	log  *slog.Logger
	acc  chan *Session
	done chan struct{}
	ctx  context.Context // ends when the Listener closes
	stop context.CancelFunc

	mu       sync.Mutex
	err      error                  // why Accept fails
	sessions map[string]*Session    // live resumable sessions, by ID
	detached map[*Session]time.Time // those waiting to be resumed, since when
	pending  int                    // connections in their handshake
	queued   int                    // new sessions waiting for Accept
	closed   bool
	wg       sync.WaitGroup
}

// maxPendingHandshakes bounds the connections a Listener runs handshakes
// for at once (more are closed at once), and the new sessions waiting for
// Accept.
const maxPendingHandshakes = 1024

// NewListener returns a Listener that accepts sessions on ln. A nil cfg
// means DefaultConfig(); an invalid one makes Accept fail. Close closes
// ln.
func NewListener(ln net.Listener, cfg *Config) *Listener {
	l := &Listener{
		ln:       ln,
		acc:      make(chan *Session),
		done:     make(chan struct{}),
		sessions: make(map[string]*Session),
		detached: make(map[*Session]time.Time),
	}
	l.ctx, l.stop = context.WithCancel(context.Background())
	l.cfg, l.err = cfg.withDefaults()
	l.log = l.cfg.Logger
	if l.log == nil {
		l.log = slog.New(discardHandler{})
	}
	if l.err != nil {
		ln.Close()
		l.stop()
		l.closed = true
		close(l.done)
		return l
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

// Accept waits for and returns the next new session. Resumed sessions
// are not returned again: they carry on inside the Session the
// application already has. It fails once the Listener is closed or its
// net.Listener fails.
func (l *Listener) Accept() (*Session, error) {
	select {
	case s := <-l.acc:
		return s, nil
	case <-l.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		return nil, l.err
	}
}

// Close stops accepting: it closes the net.Listener, and sessions whose
// handshake is not done yet, or that wait to be resumed (none can be any
// more). Sessions already returned by Accept and still connected go on.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.err = fmt.Errorf("braid: listener closed: %w", net.ErrClosed)
	var waiting []*Session
	for s := range l.detached {
		waiting = append(waiting, s)
	}
	l.mu.Unlock()
	err := l.ln.Close()
	close(l.done)
	l.stop()
	l.wg.Wait()
	for _, s := range waiting {
		s.endDetached("the Listener was closed")
	}
	return err
}

// Addr returns the net.Listener's address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	var pause time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Out of file descriptors and the like: wait and retry
				// (as net/http does).
				pause = min(max(2*pause, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(pause):
					continue
				case <-l.done:
					return
				}
			}
			l.mu.Lock()
			if !l.closed {
				l.err = fmt.Errorf("braid: listener: %w", err)
				l.closed = true
				close(l.done)
				l.stop()
			}
			l.mu.Unlock()
			return
		}
		pause = 0
		if !l.take(&l.pending) {
			conn.Close()
			continue
		}
		l.wg.Add(1)
		go l.serveConn(conn)
	}
}

// serveConn reads a new connection's first frame: a HELLO starts a new
// session, a RESUME re-attaches one.
func (l *Listener) serveConn(conn net.Conn) {
	defer l.wg.Done()
	handshaking := true
	done := func() { // the handshake is over
		if handshaking {
			handshaking = false
			l.mu.Lock()
			l.pending--
			l.mu.Unlock()
		}
	}
	defer done()
	stop := context.AfterFunc(l.ctx, func() { conn.Close() })
	defer stop()
	timer := time.AfterFunc(l.cfg.HandshakeTimeout, func() { conn.Close() })
	c := newSeam(conn, l.cfg.MaxFrameSize)
	f, err := c.rd.ReadFrame()
	if err != nil {
		timer.Stop()
		conn.Close()
		l.log.Debug("braid: listener: no first frame", "err", err, "remote", conn.RemoteAddr())
		return
	}
	if f.Type == frame.Resume {
		l.resume(c, f, timer)
		return
	}
	if !timer.Stop() {
		conn.Close() // the handshake timed out
		return
	}
	c.first = f
	s, err := newSession(conn, &l.cfg, false, sessionOpts{seam: c, l: l})
	done()
	if err != nil {
		l.log.Debug("braid: listener: handshake failed", "err", err, "remote", conn.RemoteAddr())
		return
	}
	// Waiting for Accept no longer counts as a handshake (resumes must
	// not be shut out by sessions the application is slow to accept),
	// but is bounded too.
	if !l.take(&l.queued) {
		l.log.Warn("braid: listener: too many sessions waiting for Accept; closing a new one", "remote", conn.RemoteAddr())
		s.Close()
		return
	}
	select {
	case l.acc <- s:
	case <-l.done:
		s.Close()
	}
	l.mu.Lock()
	l.queued--
	l.mu.Unlock()
}

// resume runs the server's side of the resume handshake (SPEC.md §16.4)
// on c, whose first frame f asked to resume. timer closes the connection
// when the handshake takes too long.
func (l *Listener) resume(c *seam, f *frame.Frame, timer *time.Timer) {
	conn := c.conn
	fail := func(reason string) {
		timer.Stop()
		if reason != "" {
			no := frame.Frame{Type: frame.Resume, HasResume: true, Resume: frame.ResumeInfo{Step: frame.ResumeRefused}, Debug: []byte(reason)}
			conn.SetWriteDeadline(time.Now().Add(time.Second))
			conn.Write(no.Append(nil))
		}
		conn.Close()
	}
	req := f.Resume
	if !f.HasResume || req.Step != frame.ResumeRequest || len(req.Nonce) < 16 {
		l.log.Debug("braid: listener: malformed resume request", "frame", f.String(), "remote", conn.RemoteAddr())
		fail("")
		return
	}
	id := string(req.SessionID)
	clientNonce := append([]byte(nil), req.Nonce...)
	l.mu.Lock()
	s := l.sessions[id]
	l.mu.Unlock()
	if s == nil {
		fail("unknown session: it expired (ResumeTimeout passed), was closed, or the server restarted")
		return
	}
	s.mu.Lock()
	secret := s.res.secret
	s.mu.Unlock()
	serverNonce := make([]byte, 16)
	crand.Read(serverNonce)
	ch := frame.Frame{Type: frame.Resume, HasResume: true, Resume: frame.ResumeInfo{Step: frame.ResumeChallenge, Nonce: serverNonce}}
	if _, err := conn.Write(ch.Append(nil)); err != nil {
		fail("")
		return
	}
	f, err := c.rd.ReadFrame()
	if err != nil || f.Type != frame.Resume || !f.HasResume || f.Resume.Step != frame.ResumeProof {
		fail("")
		return
	}
	received := f.Resume.Received
	if !hmac.Equal(f.Resume.MAC, resumeMAC(secret, clientProof, []byte(id), clientNonce, serverNonce, received)) {
		l.log.Warn("braid: listener: resume proof does not verify; refused (a forged or replayed resume?)", "remote", conn.RemoteAddr())
		fail("resume proof does not verify")
		return
	}
	if !timer.Stop() {
		conn.Close()
		return
	}
	s.mu.Lock()
	err = s.attachUnlocking(c, received, func(mine uint64) []byte {
		ok := frame.Frame{Type: frame.Resume, HasResume: true, Resume: frame.ResumeInfo{
			Step: frame.ResumeAccepted, Received: mine,
			MAC: resumeMAC(secret, serverProof, []byte(id), clientNonce, serverNonce, mine),
		}}
		return ok.Append(nil)
	})
	s.mu.Unlock()
	if err != nil {
		l.log.Debug("braid: listener: resume failed", "err", err, "remote", conn.RemoteAddr())
	}
}

// register notes a resumable session the handshake just agreed. Called
// with s.mu held (never the other way round: the Listener's lock is
// always taken after a session's).
func (l *Listener) register(s *Session, id []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sessions[string(id)] = s
}

// detachedNow notes that s lost its connection; if that makes too many
// waiting, the one that has waited longest ends. Called with s.mu held.
func (l *Listener) detachedNow(s *Session) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		// No resume can reach it any more. (Not here: see below.)
		go s.endDetached("the Listener was closed")
		return
	}
	l.detached[s] = time.Now()
	var oldest *Session
	if len(l.detached) > l.cfg.MaxDetachedSessions {
		var since time.Time
		for d, t := range l.detached {
			if d != s && (oldest == nil || t.Before(since)) {
				oldest, since = d, t
			}
		}
		delete(l.detached, oldest)
	}
	l.mu.Unlock()
	if oldest != nil {
		// Not here: this goroutine holds s.mu, and oldest.mu may be held
		// by a goroutine waiting for l.mu.
		go oldest.endDetached(fmt.Sprintf("the Listener keeps at most MaxDetachedSessions (%d) sessions waiting", l.cfg.MaxDetachedSessions))
	}
}

// attachedNow notes that s has a connection again. Called with s.mu held.
func (l *Listener) attachedNow(s *Session) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.detached, s)
}

// forget drops a session that ended. Called with s.mu held.
func (l *Listener) forget(s *Session, id []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sessions[string(id)] == s {
		delete(l.sessions, string(id))
	}
	delete(l.detached, s)
}

// endDetached ends s if it is still waiting to be resumed.
func (s *Session) endDetached(why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.detached() && s.closeErr == nil {
		s.shutdown(fmt.Errorf("%w: the connection was lost (%v), and %s", ErrNotResumed, s.res.lostErr, why), false)
	}
}

// take takes one of the maxPendingHandshakes slots counted by *n
// (l.pending or l.queued), reporting false if none is left.
func (l *Listener) take(n *int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if *n >= maxPendingHandshakes {
		return false
	}
	*n++
	return true
}
