package session

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"unicode/utf8"
)

// Errors at the door: when the handshake fails, the first bytes the peer
// sent usually say what it is, and the error says so in words.

// doorRecorder is the reader the session's frame.Reader reads the
// connection through: until the handshake is over it keeps a copy of the
// first bytes, for doorError. The reader goroutine reads through it; seen
// may be called from any goroutine.
type doorRecorder struct {
	r     io.Reader
	done  atomic.Bool // the handshake is over: stop recording
	mu    sync.Mutex
	first [64]byte
	n     int
}

func (d *doorRecorder) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if n > 0 && !d.done.Load() {
		d.mu.Lock()
		d.n += copy(d.first[d.n:], p[:n])
		d.mu.Unlock()
	}
	return n, err
}

// seen returns a copy of the first bytes read from the connection.
func (d *doorRecorder) seen() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return bytes.Clone(d.first[:d.n])
}

// doorError explains a failed handshake from the bytes the peer sent
// first (seen) and the read error, if any (cause). ours is the HELLO this
// side sent. It returns "" when there is nothing better to say than the
// error itself.
func doorError(seen, ours []byte, client bool, cause error) string {
	switch {
	case len(seen) >= len(ours) && bytes.Equal(seen[:len(ours)], ours):
		return "peer echoed our HELLO: is it an echo service? It does not speak braid"
	case bytes.HasPrefix(seen, []byte("HTTP/")):
		return fmt.Sprintf("peer answered with HTTP (%q): it is an HTTP server, not a braid one; check the address and port", firstLine(seen))
	case len(seen) >= 2 && seen[0] == 0x15 && seen[1] == 0x03:
		return "peer answered with a TLS alert: it expects TLS; wrap the connection with tls.Client before session.Client, or dial its plain braid port"
	case len(seen) >= 2 && seen[0] == 0x16 && seen[1] == 0x03:
		return "peer opened with a TLS handshake: it is a TLS client; wrap the connection with tls.Server before session.Server"
	case len(seen) >= 2 && seen[0] == 0 && seen[1] <= 3:
		// yamux's 12-byte header: version 0, then the type (0-3).
		return "peer speaks yamux (its first bytes are a yamux header, not a braid HELLO): serve it with package github.com/braidmux/braid/yamux, which speaks both"
	case bytes.HasPrefix(seen, []byte("SSH-")):
		return fmt.Sprintf("peer is an SSH server (%q), not a braid one; check the address and port", firstLine(seen))
	case len(seen) > 0 && printable(seen):
		return fmt.Sprintf("peer sent text (%q), not a braid HELLO: it does not speak braid", firstLine(seen))
	case len(seen) == 0 && client && (errors.Is(cause, io.EOF) || errors.Is(cause, io.ErrUnexpectedEOF) || errors.Is(cause, syscall.ECONNRESET)):
		// A yamux server reads 12 bytes, finds a version it does not know
		// and hangs up without a word; so do many binary services.
		return "peer closed the connection on reading our HELLO, without answering: it does not speak braid (a yamux server does exactly this: to talk to one, use a yamux client such as github.com/hashicorp/yamux)"
	}
	return ""
}

// firstLine returns seen up to its first line break, at most 40 bytes.
func firstLine(seen []byte) []byte {
	if i := bytes.IndexAny(seen, "\r\n"); i >= 0 {
		seen = seen[:i]
	}
	return seen[:min(len(seen), 40)]
}

// printable reports whether b looks like text.
func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, c := range b {
		if c < 0x20 && c != '\r' && c != '\n' && c != '\t' {
			return false
		}
	}
	return true
}

// handshakeError is the error a failed handshake returns: ErrHandshake,
// what the peer's first bytes say if they say something, and the cause.
func (s *Session) handshakeError(cause error) error {
	if msg := doorError(s.seam.door.seen(), s.helloBytes, s.client, cause); msg != "" {
		return fmt.Errorf("%w: %s (%v)", ErrHandshake, msg, cause)
	}
	return fmt.Errorf("%w: %v", ErrHandshake, cause)
}
