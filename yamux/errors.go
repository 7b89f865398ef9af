package yamux

import (
	"context"
	"errors"
	"io"
	"net"
	"os"

	"github.com/braidmux/braid/session"
	hyamux "github.com/hashicorp/yamux"
)

// NetError is a net.Error, as in hashicorp/yamux. ErrTimeout is one; it
// also satisfies errors.Is(err, os.ErrDeadlineExceeded), which yamux's
// does not.
type NetError struct {
	err       error
	timeout   bool
	temporary bool
}

// Error returns the message.
func (e *NetError) Error() string { return e.err.Error() }

// Timeout reports whether the error is a deadline passing.
func (e *NetError) Timeout() bool { return e.timeout }

// Temporary reports whether the error is temporary (never, for the
// errors of this package).
func (e *NetError) Temporary() bool { return e.temporary }

// Is makes a timeout NetError match os.ErrDeadlineExceeded, as the
// standard library's deadline errors do.
func (e *NetError) Is(target error) bool { return e.timeout && target == os.ErrDeadlineExceeded }

// sentinel is an error variable of this package; those meaning that the
// session or stream is over also match net.ErrClosed.
type sentinel struct {
	msg    string
	closed bool
}

func (e *sentinel) Error() string { return e.msg }

func (e *sentinel) Is(target error) bool { return e.closed && target == net.ErrClosed }

// The error variables of hashicorp/yamux, returned where yamux returns
// them, so that comparisons with == keep working. Those that mean the
// session or stream is over (ErrSessionShutdown, ErrStreamClosed,
// ErrKeepAliveTimeout) also satisfy errors.Is(err, net.ErrClosed).
var (
	// ErrInvalidVersion means a frame carried an unknown protocol
	// version (yamux wire only).
	ErrInvalidVersion error = &sentinel{msg: "invalid protocol version"}

	// ErrInvalidMsgType means a frame carried an unknown message type
	// (yamux wire only).
	ErrInvalidMsgType error = &sentinel{msg: "invalid msg type"}

	// ErrSessionShutdown is returned by calls on a session that has
	// ended: after Close, a keepalive timeout, a protocol error or the
	// connection's end. Stream Reads and Writes on a braid session that
	// ended return it too (yamux's Reads return io.EOF instead).
	ErrSessionShutdown error = &sentinel{msg: "session shutdown", closed: true}

	// ErrStreamsExhausted is returned by OpenStream once the session has
	// used all its stream IDs: open a new session.
	ErrStreamsExhausted error = &sentinel{msg: "streams exhausted"}

	// ErrDuplicateStream means the peer opened a stream ID twice (yamux
	// wire only).
	ErrDuplicateStream error = &sentinel{msg: "duplicate stream initiated"}

	// ErrRecvWindowExceeded means the peer sent beyond its flow-control
	// credit (yamux wire only; braid reports a protocol error).
	ErrRecvWindowExceeded error = &sentinel{msg: "recv window exceeded"}

	// ErrTimeout is returned when a deadline passes (stream deadlines,
	// StreamOpenTimeout, Ping). It is a *NetError with Timeout() true
	// that satisfies errors.Is(err, os.ErrDeadlineExceeded).
	ErrTimeout = &NetError{err: errors.New("i/o deadline reached"), timeout: true}

	// ErrStreamClosed is returned by Write after this side closed the
	// stream.
	ErrStreamClosed error = &sentinel{msg: "stream closed", closed: true}

	// ErrUnexpectedFlag means a frame carried an unexpected flag (yamux
	// wire only).
	ErrUnexpectedFlag error = &sentinel{msg: "unexpected flag"}

	// ErrRemoteGoAway is returned by OpenStream after the peer called
	// GoAway.
	ErrRemoteGoAway error = &sentinel{msg: "remote end is not accepting connections"}

	// ErrConnectionReset is returned by Read and Write on a stream that
	// was reset: refused by the peer, reset after StreamCloseTimeout, or
	// (braid) reset by the peer's application.
	ErrConnectionReset error = &sentinel{msg: "connection reset"}

	// ErrConnectionWriteTimeout means a write to the connection took
	// longer than ConnectionWriteTimeout (yamux wire only; braid ends
	// the session, and calls then return ErrSessionShutdown).
	ErrConnectionWriteTimeout error = &sentinel{msg: "connection write timeout"}

	// ErrKeepAliveTimeout is returned by Accept after the session ended
	// because the peer did not answer a keepalive PING.
	ErrKeepAliveTimeout error = &sentinel{msg: "keepalive timeout", closed: true}
)

// errLocalGoAway is returned by OpenStream on a braid session after this
// side's GoAway (yamux would still open the stream).
var errLocalGoAway = errors.New("yamux: this session called GoAway; on braid sessions GoAway stops new streams both ways")

// fromYamux maps hashicorp/yamux's error variables to this package's.
var fromYamux = map[error]error{
	hyamux.ErrInvalidVersion:         ErrInvalidVersion,
	hyamux.ErrInvalidMsgType:         ErrInvalidMsgType,
	hyamux.ErrSessionShutdown:        ErrSessionShutdown,
	hyamux.ErrStreamsExhausted:       ErrStreamsExhausted,
	hyamux.ErrDuplicateStream:        ErrDuplicateStream,
	hyamux.ErrRecvWindowExceeded:     ErrRecvWindowExceeded,
	hyamux.ErrTimeout:                ErrTimeout,
	hyamux.ErrStreamClosed:           ErrStreamClosed,
	hyamux.ErrUnexpectedFlag:         ErrUnexpectedFlag,
	hyamux.ErrRemoteGoAway:           ErrRemoteGoAway,
	hyamux.ErrConnectionReset:        ErrConnectionReset,
	hyamux.ErrConnectionWriteTimeout: ErrConnectionWriteTimeout,
	hyamux.ErrKeepAliveTimeout:       ErrKeepAliveTimeout,
}

// yamuxErr maps an error from hashicorp/yamux.
func yamuxErr(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if e, ok := fromYamux[err]; ok {
		return e
	}
	return err
}

// streamErr maps an error of a braid stream's Read or Write.
func streamErr(err error) error {
	var se *session.StreamError
	switch {
	case err == nil || err == io.EOF:
		return err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ErrTimeout
	case errors.As(err, &se):
		return ErrConnectionReset
	case errors.Is(err, session.ErrWriteClosed), errors.Is(err, session.ErrStreamClosed):
		return ErrStreamClosed
	case errors.Is(err, net.ErrClosed):
		return ErrSessionShutdown
	}
	return err
}

// openErr maps an error of braid's OpenStream; timedOut reports whether
// ctx is the StreamOpenTimeout's and has expired.
func (s *Session) openErr(err error, timedOut bool) error {
	switch {
	case timedOut && errors.Is(err, context.DeadlineExceeded):
		return ErrTimeout
	case errors.Is(err, session.ErrGoAway):
		if s.localGoAway.Load() {
			return errLocalGoAway
		}
		return ErrRemoteGoAway
	case errors.Is(err, session.ErrStreamsExhausted):
		return ErrStreamsExhausted
	case errors.Is(err, net.ErrClosed):
		return ErrSessionShutdown
	}
	return err
}
