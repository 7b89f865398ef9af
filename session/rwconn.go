package session

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// RWConn adapts an io.ReadWriteCloser that is not a net.Conn — a process's
// stdin and stdout, an SSH channel, a serial line, one end of io.Pipe
// pairs — so a Session can run over it:
//
//	sess, err := session.Client(session.RWConn(rwc), nil)
//
// A session needs nothing from its connection but Read, Write and Close
// (Close must make a blocked Read return), so it works over the result
// as over any net.Conn. What rwc cannot do is reported as such: the
// deadline methods return ErrNoDeadlines and change nothing, so a write
// stuck on a peer that stops reading is not cut short by
// Config.ConnectionWriteTimeout (keepalive still ends a session whose
// peer stops answering, and Close still returns); LocalAddr and
// RemoteAddr return rwc's own if it has such methods, else an address of
// network "rwc" naming rwc's type. Close closes rwc once, however often
// it is called. If rwc is a net.Conn already, RWConn returns it
// unchanged.
//
// The returned conn is safe for concurrent use as far as rwc is: the
// session reads from one goroutine and writes from one at a time.
func RWConn(rwc io.ReadWriteCloser) net.Conn {
	if c, ok := rwc.(net.Conn); ok {
		return c
	}
	c := &rwConn{ReadWriteCloser: rwc}
	if a, ok := rwc.(interface {
		LocalAddr() net.Addr
		RemoteAddr() net.Addr
	}); ok {
		c.local, c.remote = a.LocalAddr(), a.RemoteAddr()
	} else {
		c.local = rwcAddr(fmt.Sprintf("%T", rwc))
		c.remote = c.local
	}
	return c
}

// ErrNoDeadlines is what the deadline methods of a conn made by RWConn
// return: the underlying io.ReadWriteCloser has no deadlines.
var ErrNoDeadlines = errors.New("braid: this connection is an io.ReadWriteCloser without deadlines")

type rwConn struct {
	io.ReadWriteCloser
	local, remote net.Addr
	closeOnce     sync.Once
	closeErr      error
}

func (c *rwConn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.ReadWriteCloser.Close() })
	return c.closeErr
}

func (c *rwConn) LocalAddr() net.Addr              { return c.local }
func (c *rwConn) RemoteAddr() net.Addr             { return c.remote }
func (c *rwConn) SetDeadline(time.Time) error      { return ErrNoDeadlines }
func (c *rwConn) SetReadDeadline(time.Time) error  { return ErrNoDeadlines }
func (c *rwConn) SetWriteDeadline(time.Time) error { return ErrNoDeadlines }

// rwcAddr is the address of a conn made by RWConn: network "rwc", and the
// Go type of the io.ReadWriteCloser.
type rwcAddr string

func (a rwcAddr) Network() string { return "rwc" }
func (a rwcAddr) String() string  { return string(a) }
