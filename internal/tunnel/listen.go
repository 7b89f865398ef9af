package tunnel

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/braidmux/braid/frame"
)

// The server's connections reach its session.Listener through gate, a
// net.Listener that does what the server did per connection before
// sessions could resume:
//
//   - it caps connections that have not proved who they are
//     (MaxUnauthenticated): each accepted connection takes a slot, closed
//     at once if none is free, and holds it until its client logs in, it
//     turns out to resume a session (the session.Listener checks the
//     resume proof), or it closes;
//   - it wraps each connection in TLS; the TLS handshake runs in the
//     session.Listener's first read, within its HandshakeTimeout (the
//     server's AuthTimeout), which closes the connection when it passes;
//   - it retries temporary accept errors (EMFILE), which the
//     session.Listener would take as the end of its net.Listener.
//
// A new session's login must then finish within AuthTimeout of its
// connection's accept (Server.handshake), so TLS, the braid handshake and
// the login together still take at most AuthTimeout.

// gate is the net.Listener the server's session.Listener accepts from.
type gate struct {
	net.Listener
	s *Server
}

func (g *gate) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			var ne net.Error
			if (errors.As(err, &ne) && ne.Timeout() || isTemporary(err)) && !g.s.isClosing() {
				// Out of file descriptors and the like: wait, then go on.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				g.s.log.Warn("accept failed; retrying", "error", err, "in", delay)
				time.Sleep(delay)
				continue
			}
			return nil, err
		}
		delay = 0
		select {
		case g.s.unath <- struct{}{}:
		default:
			g.s.log.Warn("too many unauthenticated connections; closing a new one",
				"remote", c.RemoteAddr().String(), "limit", g.s.cfg.MaxUnauthenticated)
			c.Close()
			continue
		}
		gc := &gatedConn{Conn: c, s: g.s, key: connKey(c.LocalAddr(), c.RemoteAddr()),
			accepted: time.Now(), sniffing: true}
		if g.s.cfg.TLS != nil {
			gc.Conn = NewTLSServer(c, g.s.cfg.TLS)
		}
		g.s.mu.Lock()
		g.s.unauth[gc.key] = gc
		g.s.mu.Unlock()
		return gc, nil
	}
}

// connKey names a connection by its two addresses: what a session's
// LocalAddr and RemoteAddr give for the connection it runs on.
func connKey(local, remote net.Addr) string { return local.String() + " " + remote.String() }

// gatedConn is an accepted connection (a *TLSConn when the server uses
// TLS) holding one of the server's unauthenticated slots until release.
// Read, Write and Close may be called concurrently, as net.Conn allows.
type gatedConn struct {
	net.Conn
	s        *Server
	key      string
	accepted time.Time
	released atomic.Bool

	// The first bytes read, until they hold the first frame. Only the
	// reading goroutine touches them (the session.Listener's handshake,
	// then the session's reader, which it starts).
	sniffing bool
	sniffed  []byte
}

// maxSniff bounds how much of a connection's start is kept to find its
// first frame; a HELLO or RESUME is far smaller.
const maxSniff = 4 << 10

func (c *gatedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.sniffing && n > 0 {
		c.sniff(p[:n])
	}
	return n, err
}

// sniff adds b to the start of the stream seen so far; once the first
// frame is complete it stops, and releases the slot if that frame is a
// RESUME: such a connection is authenticated by the session.Listener's
// resume proof (an unknown or forged one is refused and closed at once),
// not by a login.
func (c *gatedConn) sniff(b []byte) {
	c.sniffed = append(c.sniffed, b...)
	rd := frame.NewReader(bytes.NewReader(c.sniffed), maxSniff)
	f, err := rd.ReadFrame()
	resume := err == nil && f.Type == frame.Resume
	rd.Close()
	if (err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF)) && len(c.sniffed) < maxSniff {
		return // the first frame is not all here yet
	}
	c.sniffing, c.sniffed = false, nil
	if resume {
		c.release()
	}
}

// release frees the connection's slot, once.
func (c *gatedConn) release() {
	if c.released.Swap(true) {
		return
	}
	c.s.mu.Lock()
	if c.s.unauth[c.key] == c {
		delete(c.s.unauth, c.key)
	}
	c.s.mu.Unlock()
	<-c.s.unath
}

func (c *gatedConn) Close() error {
	c.release()
	return c.Conn.Close()
}

// ConnectionState returns the TLS state (the session derives its resume
// secret from the TLS exporter), or the zero state without TLS.
func (c *gatedConn) ConnectionState() tls.ConnectionState {
	if tc, ok := c.Conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return tc.ConnectionState()
	}
	return tls.ConnectionState{}
}

// NetConn returns the connection below, so the session can tune TCP.
func (c *gatedConn) NetConn() net.Conn { return c.Conn }
