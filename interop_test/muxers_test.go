package interop_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/braidmux/braid/session"
	braidyamux "github.com/braidmux/braid/yamux"
	"github.com/hashicorp/yamux"
	goyamux "github.com/libp2p/go-yamux/v5"
	"github.com/xtaci/smux"
)

// muxSession is the small surface the behavioural suite and the
// benchmarks need from a multiplexer session. Streams are plain net.Conns;
// optional stream features (half-close, reset) are functions on muxer.
type muxSession interface {
	// Open opens a stream; it gives up when ctx is done.
	Open(ctx context.Context) (net.Conn, error)
	// Accept returns the next stream the peer opened; it gives up when
	// ctx is done.
	Accept(ctx context.Context) (net.Conn, error)
	Close() error
	// GoAway refuses new streams from the peer (errUnsupported if the
	// muxer has no such thing).
	GoAway() error
	// Ping measures one round trip (errUnsupported if the muxer cannot).
	Ping(ctx context.Context) (time.Duration, error)
	NumStreams() int
	CloseChan() <-chan struct{}
}

var errUnsupported = errors.New("not supported by this multiplexer")

// feature is an optional capability a case may need.
type feature string

const (
	featCloseWrite feature = "CloseWrite"
	featReset      feature = "Reset"
	featGoAway     feature = "GoAway"
	featPing       feature = "Ping"
)

// muxer describes one multiplexer under test.
type muxer struct {
	name string
	// start runs the client side on c and the server side on s.
	start func(c, s net.Conn) (client, server muxSession, err error)
	// backlog is how many peer-opened streams the server holds for
	// Accept with the configuration start uses.
	backlog int
	// closeWrite half-closes a stream: the peer reads io.EOF, this side
	// may still read.
	closeWrite func(net.Conn) error
	// reset aborts a stream in both directions; nil if unsupported.
	reset    func(net.Conn) error
	features map[feature]bool
}

func (m *muxer) has(f feature) bool { return m.features[f] }

// muxers lists the multiplexers in the order of the results table.
var muxers = []*muxer{braidMuxer, yamuxMuxer, smuxMuxer, braidYamuxMuxer}

func muxerByName(name string) *muxer {
	for _, m := range muxers {
		if m.name == name {
			return m
		}
	}
	return nil
}

// ---- braid ----

var braidMuxer = &muxer{
	name:    "braid",
	backlog: session.DefaultConfig().AcceptBacklog,
	start: func(c, s net.Conn) (muxSession, muxSession, error) {
		cs, ss, err := startPair(c, s,
			func(c net.Conn) (*session.Session, error) { return session.Client(c, nil) },
			func(c net.Conn) (*session.Session, error) { return session.Server(c, nil) })
		if err != nil {
			return nil, nil, err
		}
		return braidSession{cs}, braidSession{ss}, nil
	},
	closeWrite: func(c net.Conn) error { return c.(*session.Stream).CloseWrite() },
	reset:      func(c net.Conn) error { return c.(*session.Stream).Reset(0x1234) },
	features:   map[feature]bool{featCloseWrite: true, featReset: true, featGoAway: true, featPing: true},
}

type braidSession struct{ *session.Session }

func (b braidSession) Open(ctx context.Context) (net.Conn, error) {
	st, err := b.OpenStream(ctx)
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (b braidSession) Accept(ctx context.Context) (net.Conn, error) {
	st, err := b.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// ---- yamux ----

func yamuxConfig() *yamux.Config {
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	return cfg
}

var yamuxMuxer = &muxer{
	name:    "yamux",
	backlog: yamux.DefaultConfig().AcceptBacklog,
	start: func(c, s net.Conn) (muxSession, muxSession, error) {
		cs, ss, err := startPair(c, s,
			func(c net.Conn) (*yamux.Session, error) { return yamux.Client(c, yamuxConfig()) },
			func(c net.Conn) (*yamux.Session, error) { return yamux.Server(c, yamuxConfig()) })
		if err != nil {
			return nil, nil, err
		}
		return yamuxSession{cs}, yamuxSession{ss}, nil
	},
	// yamux's Stream.Close is a half-close: it sends FIN and the stream
	// can still be read until the peer's FIN.
	closeWrite: func(c net.Conn) error { return c.Close() },
	features:   map[feature]bool{featCloseWrite: true, featGoAway: true, featPing: true},
}

type yamuxSession struct{ s *yamux.Session }

func (y yamuxSession) Open(ctx context.Context) (net.Conn, error) {
	return withContext(ctx, y.s.Open) // OpenStream blocks once AcceptBacklog SYNs are unacknowledged
}

func (y yamuxSession) Accept(ctx context.Context) (net.Conn, error) {
	st, err := y.s.AcceptStreamWithContext(ctx)
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (y yamuxSession) Close() error                                { return y.s.Close() }
func (y yamuxSession) GoAway() error                               { return y.s.GoAway() }
func (y yamuxSession) Ping(context.Context) (time.Duration, error) { return y.s.Ping() }
func (y yamuxSession) NumStreams() int                             { return y.s.NumStreams() }
func (y yamuxSession) CloseChan() <-chan struct{}                  { return y.s.CloseChan() }

// ---- braid-yamux: package github.com/braidmux/braid/yamux, yamux's API on braid ----

func braidYamuxConfig() *braidyamux.Config {
	cfg := braidyamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	return cfg
}

var braidYamuxMuxer = &muxer{
	name:    "braid-yamux",
	backlog: braidyamux.DefaultConfig().AcceptBacklog,
	start: func(c, s net.Conn) (muxSession, muxSession, error) {
		// Server and Client return at once; the handshake runs behind.
		ss, err := braidyamux.Server(s, braidYamuxConfig())
		if err != nil {
			return nil, nil, err
		}
		cs, err := braidyamux.Client(c, braidYamuxConfig())
		if err != nil {
			ss.Close()
			return nil, nil, err
		}
		return braidYamuxSession{cs}, braidYamuxSession{ss}, nil
	},
	// As in yamux, Stream.Close is a half-close (braid's CloseWrite).
	closeWrite: func(c net.Conn) error { return c.Close() },
	features:   map[feature]bool{featCloseWrite: true, featGoAway: true, featPing: true},
}

type braidYamuxSession struct{ s *braidyamux.Session }

func (y braidYamuxSession) Open(ctx context.Context) (net.Conn, error) {
	st, err := y.s.OpenStreamWithContext(ctx) // the package's addition to yamux's API
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (y braidYamuxSession) Accept(ctx context.Context) (net.Conn, error) {
	st, err := y.s.AcceptStreamWithContext(ctx)
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (y braidYamuxSession) Close() error                                { return y.s.Close() }
func (y braidYamuxSession) GoAway() error                               { return y.s.GoAway() }
func (y braidYamuxSession) Ping(context.Context) (time.Duration, error) { return y.s.Ping() }
func (y braidYamuxSession) NumStreams() int                             { return y.s.NumStreams() }
func (y braidYamuxSession) CloseChan() <-chan struct{}                  { return y.s.CloseChan() }

// ---- go-yamux: github.com/libp2p/go-yamux/v5, libp2p's fork of yamux (benchmarks only) ----

// goYamuxConfig is go-yamux's default configuration, logging discarded.
func goYamuxConfig() *goyamux.Config {
	cfg := goyamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	return cfg
}

// goYamuxStart returns a muxer start function running go-yamux with the
// configuration cfg makes (a fresh one per session) and no memory
// manager.
func goYamuxStart(cfg func() *goyamux.Config) func(c, s net.Conn) (muxSession, muxSession, error) {
	return func(c, s net.Conn) (muxSession, muxSession, error) {
		// Server and Client return at once; there is no handshake.
		ss, err := goyamux.Server(s, cfg(), nil)
		if err != nil {
			return nil, nil, err
		}
		cs, err := goyamux.Client(c, cfg(), nil)
		if err != nil {
			ss.Close()
			return nil, nil, err
		}
		return goYamuxSession{cs}, goYamuxSession{ss}, nil
	}
}

// goYamuxMuxer is in the benchmarks (benchTransports) but not in muxers:
// the behavioural suite does not run it.
var goYamuxMuxer = &muxer{
	name:    "go-yamux",
	backlog: goyamux.DefaultConfig().AcceptBacklog,
	start:   goYamuxStart(goYamuxConfig),
	// Unlike hashicorp/yamux, go-yamux's Stream.Close is a full close and
	// it has CloseWrite and Reset.
	closeWrite: func(c net.Conn) error { return c.(*goyamux.Stream).CloseWrite() },
	reset:      func(c net.Conn) error { return c.(*goyamux.Stream).ResetWithError(0x1234) },
	features:   map[feature]bool{featCloseWrite: true, featReset: true, featGoAway: true, featPing: true},
}

type goYamuxSession struct{ s *goyamux.Session }

func (y goYamuxSession) Open(ctx context.Context) (net.Conn, error) {
	st, err := y.s.OpenStream(ctx) // waits once AcceptBacklog SYNs are unacknowledged
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (y goYamuxSession) Accept(ctx context.Context) (net.Conn, error) {
	return withContext(ctx, func() (net.Conn, error) {
		st, err := y.s.AcceptStream() // takes no context
		if err != nil {
			return nil, err
		}
		return st, nil
	})
}

func (y goYamuxSession) Close() error                                { return y.s.Close() }
func (y goYamuxSession) GoAway() error                               { return y.s.GoAway() }
func (y goYamuxSession) Ping(context.Context) (time.Duration, error) { return y.s.Ping() }
func (y goYamuxSession) NumStreams() int                             { return y.s.NumStreams() }
func (y goYamuxSession) CloseChan() <-chan struct{}                  { return y.s.CloseChan() }

// ---- smux (protocol version 2, which has per-stream flow control) ----

func smuxConfig() *smux.Config {
	cfg := smux.DefaultConfig()
	cfg.Version = 2
	return cfg
}

// smuxAcceptBacklog is smux's fixed accept queue (defaultAcceptBacklog in
// session.go; not configurable).
const smuxAcceptBacklog = 1024

var smuxMuxer = &muxer{
	name:    "smux",
	backlog: smuxAcceptBacklog,
	start: func(c, s net.Conn) (muxSession, muxSession, error) {
		cs, ss, err := startPair(c, s,
			func(c net.Conn) (*smux.Session, error) { return smux.Client(c, smuxConfig()) },
			func(c net.Conn) (*smux.Session, error) { return smux.Server(c, smuxConfig()) })
		if err != nil {
			return nil, nil, err
		}
		return smuxSession{cs}, smuxSession{ss}, nil
	},
	closeWrite: func(c net.Conn) error { return c.(*smux.Stream).CloseWrite() },
	features:   map[feature]bool{featCloseWrite: true},
}

type smuxSession struct{ s *smux.Session }

func (m smuxSession) Open(ctx context.Context) (net.Conn, error) {
	return withContext(ctx, func() (net.Conn, error) {
		st, err := m.s.OpenStream()
		if err != nil {
			return nil, err
		}
		return st, nil
	})
}

func (m smuxSession) Accept(ctx context.Context) (net.Conn, error) {
	return withContext(ctx, func() (net.Conn, error) {
		st, err := m.s.AcceptStream()
		if err != nil {
			return nil, err
		}
		return st, nil
	})
}

func (m smuxSession) Close() error                                { return m.s.Close() }
func (m smuxSession) GoAway() error                               { return errUnsupported }
func (m smuxSession) Ping(context.Context) (time.Duration, error) { return 0, errUnsupported }
func (m smuxSession) NumStreams() int                             { return m.s.NumStreams() }
func (m smuxSession) CloseChan() <-chan struct{}                  { return m.s.CloseChan() }

// ---- helpers ----

// withContext runs a blocking call that takes no context and returns
// early when ctx is done; a stream the call produces after that is
// closed. A context that can never be done costs no goroutine.
func withContext(ctx context.Context, f func() (net.Conn, error)) (net.Conn, error) {
	if ctx.Done() == nil {
		return f()
	}
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := f()
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// startPair starts both sides at once (braid's handshake needs both).
func startPair[S any](c, s net.Conn, client, server func(net.Conn) (S, error)) (S, S, error) {
	type result struct {
		s   S
		err error
	}
	ch := make(chan result, 1)
	go func() {
		ss, err := server(s)
		ch <- result{ss, err}
	}()
	cs, cerr := client(c)
	r := <-ch
	var zero S
	if cerr != nil {
		return zero, zero, cerr
	}
	if r.err != nil {
		return zero, zero, r.err
	}
	return cs, r.s, nil
}

// tcpPair returns the two ends of a loopback TCP connection (or of the
// transport dialPair selects).
func tcpPair(tb testing.TB) (net.Conn, net.Conn) {
	tb.Helper()
	c, s, err := dialPair()
	if err != nil {
		tb.Fatal(err)
	}
	return c, s
}

// dialPair returns the two ends of a fresh connection: loopback TCP,
// or the transport named by BRAID_INTEROP_TRANSPORT (transports_test.go).
func dialPair() (net.Conn, net.Conn, error) { return dialSelected() }

// dialTCP returns the two ends of a loopback TCP connection.
func dialTCP() (net.Conn, net.Conn, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			c = nil
		}
		ch <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		ln.Close()
		<-ch
		return nil, nil, err
	}
	s := <-ch
	if s == nil {
		c.Close()
		return nil, nil, errors.New("accept failed")
	}
	return c, s, nil
}

// testPair is a client and a server session over loopback TCP, with the
// raw connections kept so a case can cut them.
type testPair struct {
	client, server       muxSession
	clientRaw, serverRaw net.Conn
}

// newPair starts m over a fresh loopback connection; everything is
// closed when the test ends.
func newPair(tb testing.TB, m *muxer) *testPair {
	tb.Helper()
	c, s := tcpPair(tb)
	cs, ss, err := m.start(c, s)
	if err != nil {
		c.Close()
		s.Close()
		tb.Fatalf("%s: start: %v", m.name, err)
	}
	tb.Cleanup(func() {
		cs.Close()
		ss.Close()
		c.Close()
		s.Close()
	})
	return &testPair{client: cs, server: ss, clientRaw: c, serverRaw: s}
}

// streams opens a stream on the client and accepts it on the server.
func (p *testPair) streams(tb testing.TB) (client, server net.Conn) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := p.client.Open(ctx)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	s, err := p.server.Accept(ctx)
	if err != nil {
		tb.Fatalf("Accept: %v", err)
	}
	tb.Cleanup(func() {
		c.Close()
		s.Close()
	})
	return c, s
}
