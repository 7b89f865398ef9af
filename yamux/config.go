package yamux

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/braidmux/braid/session"
	hyamux "github.com/hashicorp/yamux"
)

// Protocol selects the wire protocol a session speaks.
type Protocol int

const (
	// ProtocolAuto, the default: Server detects the peer's protocol from
	// its first byte and speaks braid or yamux accordingly; Client speaks
	// braid.
	ProtocolAuto Protocol = iota
	// ProtocolBraid: speak braid only. A Server skips detection, so a
	// yamux client is refused (its first frame fails braid's handshake).
	ProtocolBraid
	// ProtocolYamux: speak hashicorp/yamux's wire protocol (spec.md of
	// github.com/hashicorp/yamux), through github.com/hashicorp/yamux
	// itself. Set it on a Client that talks to a real yamux server.
	ProtocolYamux
)

// String returns "auto", "braid" or "yamux".
func (p Protocol) String() string {
	switch p {
	case ProtocolAuto:
		return "auto"
	case ProtocolBraid:
		return "braid"
	case ProtocolYamux:
		return "yamux"
	}
	return fmt.Sprintf("Protocol(%d)", int(p))
}

// Logger is the logging interface of hashicorp/yamux: *log.Logger
// satisfies it.
type Logger interface {
	Print(v ...interface{})
	Printf(format string, v ...interface{})
	Println(v ...interface{})
}

// Config tunes a Session. Its fields up to Logger are hashicorp/yamux
// v0.1.2's, with the same meaning and defaults (what differs on braid
// sessions is said per field); Protocol and HandshakeTimeout are this
// package's own. Server and Client copy the Config, so it may be shared
// and reused, but not modified while Server or Client runs.
type Config struct {
	// AcceptBacklog is how many streams the peer may open that this side
	// has not accepted yet. On braid sessions the peer's Open waits while
	// the backlog is full (as yamux's does) rather than being refused.
	AcceptBacklog int

	// EnableKeepAlive turns on periodic PINGs (every KeepAliveInterval)
	// that close the session when the peer does not answer.
	EnableKeepAlive bool

	// KeepAliveInterval is how often a keepalive PING is sent. On braid
	// sessions a PING may go unanswered for ConnectionWriteTimeout before
	// the session ends (yamux's rule), and any frame from the peer counts
	// as an answer.
	KeepAliveInterval time.Duration

	// ConnectionWriteTimeout bounds one write to the connection; a peer
	// that stops reading for this long ends the session. It also bounds
	// Ping. Not enforced for an io.ReadWriteCloser without deadlines
	// (see Server).
	ConnectionWriteTimeout time.Duration

	// MaxStreamWindowSize is the largest receive window of one stream,
	// in bytes (at least 256 KiB). On braid sessions windows start at
	// min(320 KiB, MaxStreamWindowSize) and grow towards it only while
	// the reader keeps up, and all streams together are bounded by
	// braid's session window (64 MiB): raise it (braid's own default is
	// 16 MiB) to fill long, fast links.
	MaxStreamWindowSize uint32

	// StreamOpenTimeout bounds OpenStream; zero means no bound. yamux
	// closes the whole session when a stream it opened is not
	// acknowledged in time; on braid sessions (which do not wait for an
	// acknowledgement) OpenStream instead fails with ErrTimeout when it
	// had to wait this long, for the handshake or for room in the peer's
	// accept backlog, and the session goes on.
	StreamOpenTimeout time.Duration

	// StreamCloseTimeout bounds how long a stream this side closed waits
	// for the peer to close its side too; then the stream is reset. Zero
	// waits forever.
	StreamCloseTimeout time.Duration

	// LogOutput receives log lines (in the format of the standard log
	// package). Exactly one of LogOutput and Logger must be set.
	LogOutput io.Writer

	// Logger receives log lines. Exactly one of LogOutput and Logger
	// must be set.
	Logger Logger

	// Protocol selects the wire protocol; see Protocol. The zero value,
	// ProtocolAuto, makes a Server serve braid and yamux clients alike
	// and a Client speak braid.
	Protocol Protocol

	// HandshakeTimeout bounds braid's HELLO exchange. On a ProtocolAuto
	// server it is also how long the server waits for the peer's first
	// byte before it decides the peer is a yamux client waiting for the
	// server to speak first (see the package documentation). Zero means
	// 10 s.
	HandshakeTimeout time.Duration
}

// initialStreamWindow is yamux's fixed initial stream window, and the
// smallest MaxStreamWindowSize it accepts.
const initialStreamWindow uint32 = 256 * 1024

// defaultHandshakeTimeout is session.Config's default HandshakeTimeout.
const defaultHandshakeTimeout = 10 * time.Second

// Clone returns a copy of c.
func (c *Config) Clone() *Config {
	c2 := *c
	return &c2
}

// DefaultConfig returns a new Config with yamux's defaults: backlog 256,
// keepalive every 30 s, ConnectionWriteTimeout 10 s, MaxStreamWindowSize
// 256 KiB, StreamOpenTimeout 75 s, StreamCloseTimeout 5 min, logging to
// os.Stderr; ProtocolAuto.
func DefaultConfig() *Config {
	return &Config{
		AcceptBacklog:          256,
		EnableKeepAlive:        true,
		KeepAliveInterval:      30 * time.Second,
		ConnectionWriteTimeout: 10 * time.Second,
		MaxStreamWindowSize:    initialStreamWindow,
		StreamCloseTimeout:     5 * time.Minute,
		StreamOpenTimeout:      75 * time.Second,
		LogOutput:              os.Stderr,
	}
}

// VerifyConfig checks config as yamux does, plus this package's fields.
// Server and Client call it and return its error.
func VerifyConfig(config *Config) error {
	if config.AcceptBacklog <= 0 {
		return fmt.Errorf("yamux: backlog must be positive")
	}
	if config.KeepAliveInterval == 0 {
		return fmt.Errorf("yamux: keep-alive interval must be positive")
	}
	if config.MaxStreamWindowSize < initialStreamWindow {
		return fmt.Errorf("yamux: MaxStreamWindowSize must be larger than %d", initialStreamWindow)
	}
	if config.LogOutput != nil && config.Logger != nil {
		return fmt.Errorf("yamux: both Logger and LogOutput may not be set, select one")
	} else if config.LogOutput == nil && config.Logger == nil {
		return fmt.Errorf("yamux: one of Logger or LogOutput must be set, select one")
	}
	if config.Protocol < ProtocolAuto || config.Protocol > ProtocolYamux {
		return fmt.Errorf("yamux: unknown Protocol %d: use ProtocolAuto, ProtocolBraid or ProtocolYamux", int(config.Protocol))
	}
	if config.HandshakeTimeout < 0 || config.ConnectionWriteTimeout < 0 {
		return fmt.Errorf("yamux: timeouts must not be negative")
	}
	return nil
}

// logger returns the Logger config logs to.
func (c *Config) logger() Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return log.New(c.LogOutput, "", log.LstdFlags)
}

// handshakeTimeout returns HandshakeTimeout or its default.
func (c *Config) handshakeTimeout() time.Duration {
	if c.HandshakeTimeout > 0 {
		return c.HandshakeTimeout
	}
	return defaultHandshakeTimeout
}

// braidConfig maps c onto braid's session.Config.
func (c *Config) braidConfig() *session.Config {
	bc := session.DefaultConfig()
	bc.AcceptBacklog = c.AcceptBacklog
	bc.MaxStreamWindow = c.MaxStreamWindowSize
	bc.InitialStreamWindow = min(bc.InitialStreamWindow, c.MaxStreamWindowSize)
	if c.EnableKeepAlive && c.KeepAliveInterval > 0 {
		bc.KeepAliveInterval = c.KeepAliveInterval
		if c.ConnectionWriteTimeout > 0 {
			bc.KeepAliveTimeout = c.ConnectionWriteTimeout
		}
	} else {
		bc.KeepAliveInterval = -1
	}
	if c.ConnectionWriteTimeout > 0 {
		bc.ConnectionWriteTimeout = c.ConnectionWriteTimeout
	}
	if c.StreamCloseTimeout > 0 {
		bc.StreamCloseTimeout = c.StreamCloseTimeout
	} else {
		bc.StreamCloseTimeout = -1
	}
	bc.HandshakeTimeout = c.handshakeTimeout()
	bc.Logger = slog.New(&logHandler{l: c.logger(), level: slog.LevelInfo})
	return bc
}

// yamuxConfig maps c onto hashicorp/yamux's Config, field for field.
func (c *Config) yamuxConfig() *hyamux.Config {
	return &hyamux.Config{
		AcceptBacklog:          c.AcceptBacklog,
		EnableKeepAlive:        c.EnableKeepAlive,
		KeepAliveInterval:      c.KeepAliveInterval,
		ConnectionWriteTimeout: c.ConnectionWriteTimeout,
		MaxStreamWindowSize:    c.MaxStreamWindowSize,
		StreamOpenTimeout:      c.StreamOpenTimeout,
		StreamCloseTimeout:     c.StreamCloseTimeout,
		LogOutput:              c.LogOutput,
		Logger:                 c.Logger,
	}
}

// logHandler is a slog.Handler writing one line per record to a yamux
// Logger, in yamux's "[LEVEL] message" style followed by the attributes.
type logHandler struct {
	l     Logger
	level slog.Level
	attrs []slog.Attr
	group string
}

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("[ERR] ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("[WARN] ")
	case r.Level >= slog.LevelInfo:
		b.WriteString("[INFO] ")
	default:
		b.WriteString("[DEBUG] ")
	}
	b.WriteString(r.Message)
	add := func(a slog.Attr) bool {
		if a.Equal(slog.Attr{}) {
			return true
		}
		b.WriteByte(' ')
		if h.group != "" {
			b.WriteString(h.group + ".")
		}
		fmt.Fprintf(&b, "%s=%v", a.Key, a.Value)
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.l.Print(b.String())
	return nil
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h2 := *h
	h2.attrs = append(h.attrs[:len(h.attrs):len(h.attrs)], attrs...)
	return &h2
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	h2 := *h
	if h2.group != "" {
		name = h2.group + "." + name
	}
	h2.group = name
	return &h2
}
