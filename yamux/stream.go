package yamux

import (
	"io"
	"net"
	"sync"
	"time"

	"github.com/braidmux/braid/frame"
	"github.com/braidmux/braid/session"
	hyamux "github.com/hashicorp/yamux"
)

// Stream is one stream of a Session, with the API of hashicorp/yamux's
// Stream. It implements net.Conn, except that Close is yamux's
// half-close (see Close).
//
// Read, Write, Close and the deadline methods may be called
// concurrently from several goroutines: concurrent Writes do not
// interleave their bytes, concurrent Reads each get a different part of
// the data.
type Stream struct {
	sess *Session
	b    *session.Stream // braid wire
	y    *hyamux.Stream  // yamux wire

	mu         sync.Mutex
	eof        bool // Read returned io.EOF: the peer closed its side
	closed     bool // Close was called
	closeTimer *time.Timer
}

var _ net.Conn = (*Stream)(nil)

func (s *Session) wrapBraid(st *session.Stream) *Stream { return &Stream{sess: s, b: st} }
func (s *Session) wrapYamux(st *hyamux.Stream) *Stream  { return &Stream{sess: s, y: st} }

// Session returns the session the stream belongs to.
func (st *Stream) Session() *Session { return st.sess }

// StreamID returns the stream's ID: odd if the client side opened it,
// even if the server side did.
func (st *Stream) StreamID() uint32 {
	if st.y != nil {
		return st.y.StreamID()
	}
	return st.b.ID()
}

// Read reads data the peer sent. It returns io.EOF once the peer has
// closed its side and all data is read, ErrTimeout when the read
// deadline passes, ErrConnectionReset if the stream was reset, and
// ErrSessionShutdown when the session has ended (yamux-wire sessions
// return io.EOF then, as yamux does).
func (st *Stream) Read(p []byte) (int, error) {
	if st.y != nil {
		n, err := st.y.Read(p)
		return n, yamuxErr(err)
	}
	n, err := st.b.Read(p)
	if err == io.EOF {
		st.peerDone()
	} else if err != nil {
		err = streamErr(err)
	}
	return n, err
}

// Write writes p to the stream, returning once all of it is sent or an
// error: ErrTimeout when the write deadline passes, ErrStreamClosed
// after Close, ErrConnectionReset if the stream was reset,
// ErrSessionShutdown when the session has ended. It blocks while the
// peer's flow-control window is full.
func (st *Stream) Write(p []byte) (int, error) {
	if st.y != nil {
		n, err := st.y.Write(p)
		return n, yamuxErr(err)
	}
	n, err := st.b.Write(p)
	return n, streamErr(err)
}

// Close half-closes the stream, as yamux's Close does: the peer reads
// io.EOF after the data already written, later Writes fail with
// ErrStreamClosed, and this side can still Read what the peer sends
// until the peer closes its side. (A Read blocked when Close is called
// is not unblocked: use a deadline.) The stream is released once both
// sides have closed; if the peer has not closed its side within
// Config.StreamCloseTimeout, the stream is reset. Close never blocks
// and is idempotent; it returns nil.
//
// On a braid session this is (*session.Stream).CloseWrite; braid's own
// Close, which also ends this side's reading, has no equivalent here.
func (st *Stream) Close() error {
	if st.y != nil {
		return yamuxErr(st.y.Close())
	}
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return nil
	}
	st.closed = true
	if d := st.sess.cfg.StreamCloseTimeout; d > 0 && !st.eof {
		st.closeTimer = time.AfterFunc(d, st.closeTimedOut)
	}
	st.mu.Unlock()
	st.b.CloseWrite()
	return nil
}

// peerDone notes that the peer has closed its side.
func (st *Stream) peerDone() {
	st.mu.Lock()
	st.eof = true
	if st.closeTimer != nil {
		st.closeTimer.Stop()
		st.closeTimer = nil
	}
	st.mu.Unlock()
}

// closeTimedOut resets a stream whose peer did not close its side within
// StreamCloseTimeout of this side's Close. Resetting a stream both sides
// have finished does nothing.
func (st *Stream) closeTimedOut() {
	st.b.Reset(uint32(frame.Cancel))
}

// SetDeadline sets the read and write deadlines; see net.Conn.
func (st *Stream) SetDeadline(t time.Time) error {
	if st.y != nil {
		return st.y.SetDeadline(t)
	}
	return st.b.SetDeadline(t)
}

// SetReadDeadline sets the deadline for blocked and future Reads; the
// zero time means none.
func (st *Stream) SetReadDeadline(t time.Time) error {
	if st.y != nil {
		return st.y.SetReadDeadline(t)
	}
	return st.b.SetReadDeadline(t)
}

// SetWriteDeadline sets the deadline for blocked and future Writes; the
// zero time means none.
func (st *Stream) SetWriteDeadline(t time.Time) error {
	if st.y != nil {
		return st.y.SetWriteDeadline(t)
	}
	return st.b.SetWriteDeadline(t)
}

// LocalAddr returns the session's local address.
func (st *Stream) LocalAddr() net.Addr { return st.sess.LocalAddr() }

// RemoteAddr returns the session's remote address.
func (st *Stream) RemoteAddr() net.Addr { return st.sess.RemoteAddr() }

// Shrink releases an idle stream's receive buffer on yamux-wire
// sessions, as yamux's does. On braid sessions it does nothing: an idle
// braid stream holds no buffer.
func (st *Stream) Shrink() {
	if st.y != nil {
		st.y.Shrink()
	}
}
