package yamux

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Addr is the address a Session reports for a transport that has none:
// an io.ReadWriteCloser without LocalAddr and RemoteAddr methods. Its
// String is "yamux:local" or "yamux:remote", as in hashicorp/yamux.
type Addr struct {
	// Side is "local" or "remote".
	Side string
}

// Network returns "yamux".
func (*Addr) Network() string { return "yamux" }

// String returns "yamux:" followed by Side.
func (a *Addr) String() string { return "yamux:" + a.Side }

// hasAddr is what yamux looks for to report a transport's addresses.
type hasAddr interface {
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
}

// errNoDeadlines is what rwcConn's deadline methods return.
var errNoDeadlines = errors.New("yamux: transport is an io.ReadWriteCloser without deadlines")

// rwcConn presents an io.ReadWriteCloser as a net.Conn. Its deadline
// methods fail, which tells braid to read the transport from its reader
// goroutine only; addresses come from the transport if it has them,
// else they are *Addr placeholders.
type rwcConn struct {
	io.ReadWriteCloser
	closeOnce sync.Once
	closeErr  error
}

func (c *rwcConn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.ReadWriteCloser.Close() })
	return c.closeErr
}

func (c *rwcConn) LocalAddr() net.Addr {
	if a, ok := c.ReadWriteCloser.(hasAddr); ok {
		return a.LocalAddr()
	}
	return &Addr{Side: "local"}
}

func (c *rwcConn) RemoteAddr() net.Addr {
	if a, ok := c.ReadWriteCloser.(hasAddr); ok {
		return a.RemoteAddr()
	}
	return &Addr{Side: "remote"}
}

func (c *rwcConn) SetDeadline(time.Time) error      { return errNoDeadlines }
func (c *rwcConn) SetReadDeadline(time.Time) error  { return errNoDeadlines }
func (c *rwcConn) SetWriteDeadline(time.Time) error { return errNoDeadlines }

// asConn returns rwc as a net.Conn: itself if it is one, else wrapped in
// an rwcConn.
func asConn(rwc io.ReadWriteCloser) (net.Conn, bool) {
	if c, ok := rwc.(net.Conn); ok {
		return c, true
	}
	return &rwcConn{ReadWriteCloser: rwc}, false
}

// prefixConn is a net.Conn whose first Read returns bytes already read
// from it (by protocol detection) before reading on.
type prefixConn struct {
	net.Conn
	mu     sync.Mutex
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(p)
}

// detectResult is what the first byte from the peer says.
type detectResult int

const (
	detectBraid  detectResult = iota // a non-zero byte: braid's HELLO length
	detectYamux                      // 0x00: yamux's version byte
	detectSilent                     // nothing within the timeout
)

// detect waits up to timeout (if conn supports read deadlines) for the
// peer's first byte and says which protocol it starts. It returns the
// connection to use from now on: conn itself if the byte could be
// peeked without consuming it, else a prefixConn that replays it.
func detect(conn net.Conn, timeout time.Duration) (net.Conn, detectResult, error) {
	deadlines := conn.SetReadDeadline(time.Now().Add(timeout)) == nil
	if deadlines {
		defer conn.SetReadDeadline(time.Time{})
	}
	var b [1]byte
	var n int
	var err error
	peeked := false
	if peekable(conn) {
		n, err = peek(conn, b[:])
		peeked = true
	} else {
		n, err = io.ReadFull(conn, b[:])
	}
	if n == 0 {
		var ne net.Error
		if deadlines && errors.As(err, &ne) && ne.Timeout() {
			return conn, detectSilent, nil
		}
		if err == nil || err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.EOF
		}
		return conn, 0, err
	}
	if !peeked {
		conn = &prefixConn{Conn: conn, prefix: []byte{b[0]}}
	}
	if b[0] == 0 {
		return conn, detectYamux, nil
	}
	return conn, detectBraid, nil
}
