package session

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/braidmux/braid/frame"
)

// Sentinel errors. Those that mean the session is over also satisfy
// errors.Is(err, net.ErrClosed).
var (
	// ErrSessionClosed: the session was closed by this side.
	ErrSessionClosed = &closedError{msg: "braid: session closed"}
	// ErrGoAway: a GOAWAY was sent or received; no new streams.
	ErrGoAway = errors.New("braid: session is going away: no new streams")
	// ErrStreamClosed: the stream was closed by this side (Close).
	ErrStreamClosed = fmt.Errorf("braid: stream closed: %w", net.ErrClosed)
	// ErrWriteClosed: Write after CloseWrite.
	ErrWriteClosed = errors.New("braid: write on stream after CloseWrite")
	// ErrStreamsExhausted: all stream IDs of this session have been used.
	ErrStreamsExhausted = errors.New("braid: stream IDs exhausted; open a new session")
	// ErrHandshake: the peer did not complete a valid HELLO exchange.
	ErrHandshake = errors.New("braid: handshake failed")
	// ErrStreamOpenTimeout: Open waited Config.StreamOpenTimeout for room
	// in the peer's accept backlog. The session goes on.
	ErrStreamOpenTimeout = errors.New("braid: opening a stream timed out: the peer's accept backlog stayed full (is its application accepting streams?)")
	// ErrKeepAliveTimeout: the peer did not answer a PING in time.
	ErrKeepAliveTimeout = errors.New("braid: keepalive timeout: peer did not answer PING")
)

// closedError is a session-ending error: it matches net.ErrClosed and
// unwraps to its cause.
type closedError struct {
	msg   string
	cause error
}

func (e *closedError) Error() string {
	if e.cause != nil {
		// "braid: session closed: keepalive timeout: …", not "…: braid:
		// keepalive timeout: …".
		return e.msg + ": " + strings.TrimPrefix(e.cause.Error(), "braid: ")
	}
	return e.msg
}

func (e *closedError) Is(target error) bool { return target == net.ErrClosed }
func (e *closedError) Unwrap() error        { return e.cause }

func sessionEnded(cause error) error {
	return &closedError{msg: "braid: session closed", cause: cause}
}

// StreamError reports that a stream was reset. Remote says which side
// reset it. Code is the RESET's error code: a frame.ErrorCode below 0x100
// or an application's own code.
type StreamError struct {
	Code   uint32
	Remote bool
}

// Error describes the reset.
func (e *StreamError) Error() string {
	who := "locally"
	if e.Remote {
		who = "by peer"
	}
	return fmt.Sprintf("braid: stream reset %s: %v", who, frame.ErrorCode(e.Code))
}

// ProtocolError is a session-ending violation of the protocol, by the
// peer (Remote false: this side detected it) or reported by the peer's
// GOAWAY (Remote true).
type ProtocolError struct {
	Code   frame.ErrorCode
	Reason string
	Remote bool
}

// Error describes the violation.
func (e *ProtocolError) Error() string {
	if e.Remote {
		return fmt.Sprintf("braid: peer ended session: %v: %s", e.Code, e.Reason)
	}
	return fmt.Sprintf("braid: protocol error: %v: %s", e.Code, e.Reason)
}

// errTimeout is returned when a deadline passes. It is
// os.ErrDeadlineExceeded itself, which has Timeout() == true.
var errTimeout error = os.ErrDeadlineExceeded
