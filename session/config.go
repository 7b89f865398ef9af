package session

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/braidmux/braid/flowcontrol"
	"github.com/braidmux/braid/frame"
)

// Compression selects payload compression for a session.
type Compression int

// Compression choices. A session compresses only if both sides ask for
// the same algorithm.
const (
	CompressionNone Compression = iota
	CompressionZstd
)

// String returns "none" or "zstd".
func (c Compression) String() string { return c.wire().String() }

func (c Compression) wire() frame.Compression {
	if c == CompressionZstd {
		return frame.CompressionZstd
	}
	return frame.CompressionNone
}

// Config tunes a Session. A nil *Config means DefaultConfig(); a zero
// field means that field's default. Client and Server validate the config
// once and copy it, so a Config may be shared and reused.
type Config struct {
	// AcceptBacklog is how many peer-opened streams may wait for
	// AcceptStream. It is announced to the peer in the handshake, and a
	// braid peer's OpenStream waits (until its context ends, or
	// StreamOpenTimeout for Open) while that many of its streams are
	// unaccepted, so nothing is refused; streams beyond it from a peer
	// that does not wait are refused (RESET REFUSED_STREAM, which the
	// opener sees as a *StreamError). Default 256.
	AcceptBacklog int
	// MaxIncomingStreams is how many peer-opened streams may be open at
	// once; more are refused. Default 8192.
	MaxIncomingStreams int
	// InitialStreamWindow is the receive window, in bytes, each stream
	// starts with. Default 320 KiB; at least 1 KiB.
	InitialStreamWindow uint32
	// MaxStreamWindow caps the auto-tuned receive window of one stream.
	// Default 16 MiB.
	MaxStreamWindow uint32
	// MaxSessionWindow bounds the bytes received but not yet read, summed
	// over all streams of the session: the session's receive memory.
	// Default 64 MiB.
	MaxSessionWindow uint32
	// MaxFrameSize is the largest frame body this side accepts and the
	// largest it sends (the smaller of both sides' values is used for
	// sending). Default 64 KiB; between 1 KiB and 16 MiB.
	MaxFrameSize uint32
	// KeepAliveInterval is how often a PING is sent to measure RTT and
	// check the peer is alive. Default 30 s; negative disables keepalive.
	KeepAliveInterval time.Duration
	// KeepAliveTimeout is how long a PING may go unanswered before the
	// session is closed. Default 30 s.
	KeepAliveTimeout time.Duration
	// HandshakeTimeout bounds the HELLO exchange in Client and Server.
	// Default 10 s.
	HandshakeTimeout time.Duration
	// ConnectionWriteTimeout bounds one write to the connection; a peer
	// that stops reading for this long ends the session. Default 10 s.
	ConnectionWriteTimeout time.Duration
	// StreamOpenTimeout bounds how long Open (which takes no context)
	// waits for room in the peer's accept backlog; it then fails with
	// ErrStreamOpenTimeout and the session goes on. OpenStream waits as
	// long as its context allows instead. Default 75 s (yamux's);
	// negative waits forever.
	StreamOpenTimeout time.Duration
	// StreamCloseTimeout bounds how long a stream closed by this side
	// waits for the peer to close its side; then the stream is reset
	// (CANCEL) and forgotten, so a peer that never closes cannot pin
	// streams. Default 5 minutes; negative waits forever.
	StreamCloseTimeout time.Duration
	// Compression asks for payload compression. Default CompressionNone.
	// A session compresses only if both sides ask for the same algorithm
	// (Session.Compression, Stats.Compression say what was agreed).
	Compression Compression
	// CompressionLevel is the zstd level used when compressing:
	// CompressionFastest (the default) to CompressionBest.
	CompressionLevel int
	// ResumeTimeout is how long a session whose connection broke waits to
	// be resumed on a new one before it closes; its streams' calls then
	// fail with an error wrapping ErrNotResumed (and matching
	// net.ErrClosed). Until then they behave as over a slow link. Only
	// sessions made by Dial and a Listener resume (both sides must); for
	// them the default is 60 s, and a negative value turns resumption
	// off. Client and Server sessions never resume.
	ResumeTimeout time.Duration
	// MaxDetachedSessions is how many sessions whose connection broke a
	// Listener keeps waiting to be resumed; when one more breaks, the one
	// that has waited longest is closed. Default 1024.
	MaxDetachedSessions int
	// Logger receives rare events (protocol errors, keepalive timeouts,
	// GOAWAY). Nil discards them. Nothing is logged per frame.
	Logger *slog.Logger
}

// Defaults, chosen by measurement (see BENCHMARKS.md).
const (
	defaultAcceptBacklog       = 256
	defaultMaxIncomingStreams  = 8192
	defaultInitialStreamWindow = 320 << 10
	defaultMaxStreamWindow     = 16 << 20
	defaultMaxSessionWindow    = 64 << 20
	defaultMaxFrameSize        = 64 << 10
	defaultKeepAliveInterval   = 30 * time.Second
	defaultKeepAliveTimeout    = 30 * time.Second
	defaultHandshakeTimeout    = 10 * time.Second
	defaultWriteTimeout        = 10 * time.Second
	defaultStreamCloseTimeout  = 5 * time.Minute
	defaultStreamOpenTimeout   = 75 * time.Second
	defaultResumeTimeout       = 60 * time.Second
	defaultMaxDetached         = 1024
)

// DefaultConfig returns a new Config holding the defaults. It is safe to
// modify the result.
func DefaultConfig() *Config {
	return &Config{
		AcceptBacklog:          defaultAcceptBacklog,
		MaxIncomingStreams:     defaultMaxIncomingStreams,
		InitialStreamWindow:    defaultInitialStreamWindow,
		MaxStreamWindow:        defaultMaxStreamWindow,
		MaxSessionWindow:       defaultMaxSessionWindow,
		MaxFrameSize:           defaultMaxFrameSize,
		KeepAliveInterval:      defaultKeepAliveInterval,
		KeepAliveTimeout:       defaultKeepAliveTimeout,
		HandshakeTimeout:       defaultHandshakeTimeout,
		ConnectionWriteTimeout: defaultWriteTimeout,
		StreamCloseTimeout:     defaultStreamCloseTimeout,
		StreamOpenTimeout:      defaultStreamOpenTimeout,
		CompressionLevel:       CompressionFastest,
		ResumeTimeout:          defaultResumeTimeout,
		MaxDetachedSessions:    defaultMaxDetached,
	}
}

// withDefaults returns a validated copy of c with zero fields defaulted.
func (c *Config) withDefaults() (Config, error) {
	if c == nil {
		return *DefaultConfig(), nil
	}
	v := *c
	def := func(p *uint32, d uint32) {
		if *p == 0 {
			*p = d
		}
	}
	if v.AcceptBacklog == 0 {
		v.AcceptBacklog = defaultAcceptBacklog
	}
	if v.MaxIncomingStreams == 0 {
		v.MaxIncomingStreams = defaultMaxIncomingStreams
	}
	def(&v.InitialStreamWindow, defaultInitialStreamWindow)
	def(&v.MaxStreamWindow, max(defaultMaxStreamWindow, v.InitialStreamWindow))
	def(&v.MaxSessionWindow, max(defaultMaxSessionWindow, v.InitialStreamWindow))
	def(&v.MaxFrameSize, defaultMaxFrameSize)
	if v.KeepAliveInterval == 0 {
		v.KeepAliveInterval = defaultKeepAliveInterval
	}
	if v.KeepAliveTimeout == 0 {
		v.KeepAliveTimeout = defaultKeepAliveTimeout
	}
	if v.HandshakeTimeout == 0 {
		v.HandshakeTimeout = defaultHandshakeTimeout
	}
	if v.StreamOpenTimeout == 0 {
		v.StreamOpenTimeout = defaultStreamOpenTimeout
	}
	if v.StreamCloseTimeout == 0 {
		v.StreamCloseTimeout = defaultStreamCloseTimeout
	}
	if v.CompressionLevel == 0 {
		v.CompressionLevel = CompressionFastest
	}
	if v.ConnectionWriteTimeout == 0 {
		v.ConnectionWriteTimeout = defaultWriteTimeout
	}
	if v.ResumeTimeout == 0 {
		v.ResumeTimeout = defaultResumeTimeout
	}
	if v.MaxDetachedSessions <= 0 {
		v.MaxDetachedSessions = defaultMaxDetached
	}
	switch {
	case v.AcceptBacklog < 0:
		return v, configError("AcceptBacklog must be positive, got %d", v.AcceptBacklog)
	case v.MaxIncomingStreams < 0:
		return v, configError("MaxIncomingStreams must be positive, got %d", v.MaxIncomingStreams)
	case v.InitialStreamWindow < 1024 || v.InitialStreamWindow > flowcontrol.MaxWindow:
		return v, configError("InitialStreamWindow must be in [1024, %d], got %d", flowcontrol.MaxWindow, v.InitialStreamWindow)
	case v.MaxStreamWindow < v.InitialStreamWindow || v.MaxStreamWindow > flowcontrol.MaxWindow:
		return v, configError("MaxStreamWindow must be in [InitialStreamWindow, %d], got %d", flowcontrol.MaxWindow, v.MaxStreamWindow)
	case v.MaxSessionWindow < 1024 || v.MaxSessionWindow > flowcontrol.MaxWindow:
		return v, configError("MaxSessionWindow must be in [1024, %d], got %d", flowcontrol.MaxWindow, v.MaxSessionWindow)
	case v.MaxFrameSize < frame.MinMaxFrameSize || v.MaxFrameSize > frame.MaxMaxFrameSize:
		return v, configError("MaxFrameSize must be in [%d, %d], got %d", frame.MinMaxFrameSize, frame.MaxMaxFrameSize, v.MaxFrameSize)
	case v.KeepAliveTimeout < 0 || v.HandshakeTimeout < 0 || v.ConnectionWriteTimeout < 0:
		return v, configError("timeouts must be positive")
	case v.Compression != CompressionNone && v.Compression != CompressionZstd:
		return v, configError("unknown Compression %d", v.Compression)
	case v.CompressionLevel < CompressionFastest || v.CompressionLevel > CompressionBest:
		return v, configError("CompressionLevel must be in [%d, %d], got %d", CompressionFastest, CompressionBest, v.CompressionLevel)
	}
	return v, nil
}

func configError(format string, args ...any) error {
	return fmt.Errorf("braid: invalid config: "+format, args...)
}
