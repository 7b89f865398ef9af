package interop_test

// Benchmarks: raw TCP, braid, yamux, smux (protocol version 2) and
// go-yamux (libp2p's fork of yamux) side by side, each with its default
// configuration. Every benchmark has one
// sub-benchmark per transport, so one `go test -bench` run gives ratios
// from the same machine state; cmd/benchtable turns the output into a
// markdown table. For TCP, "a stream" is a TCP connection: a benchmark
// with N streams uses N connections.

import (
	"context"
	"io"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/braidmux/braid/internal/linkemu"
	"github.com/braidmux/braid/session"
	goyamux "github.com/libp2p/go-yamux/v5"
)

// benchTransports are the sub-benchmarks of every benchmark, in order.
// go-yamux is benchmarked only, not run by the behavioural suite.
var benchTransports = []string{"tcp", "braid", "yamux", "smux", "go-yamux"}

// benchMuxer returns the muxer a benchmark transport names: one of the
// suite's muxers or go-yamux.
func benchMuxer(name string) *muxer {
	if name == goYamuxMuxer.name {
		return goYamuxMuxer
	}
	return muxerByName(name)
}

// startFunc starts a muxer's client side on c and its server side on s.
type startFunc = func(c, s net.Conn) (client, server muxSession, err error)

// benchEnv opens client streams and accepts their server ends, over one
// connection (muxers) or one connection per stream (tcp).
type benchEnv struct {
	open   func() (net.Conn, error)
	accept func() (net.Conn, error)
	close  func()
}

// pair opens a stream and accepts it. The caller closes both ends (or
// leaves it to env.close).
func (e *benchEnv) pair(tb testing.TB) (net.Conn, net.Conn) {
	tb.Helper()
	c, err := e.open()
	if err != nil {
		tb.Fatal(err)
	}
	s, err := e.accept()
	if err != nil {
		tb.Fatal(err)
	}
	return c, s
}

// connPair makes one underlying connection: loopback TCP, or a link.
type connPair func() (client, server net.Conn, cleanup func(), err error)

// loopback returns a connPair making loopback TCP connections through
// one listener, closed when the benchmark ends.
func loopback(b *testing.B) connPair {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	var mu sync.Mutex // pairs each Dial with its Accept
	return func() (net.Conn, net.Conn, func(), error) {
		mu.Lock()
		defer mu.Unlock()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return nil, nil, nil, err
		}
		s, err := ln.Accept()
		if err != nil {
			c.Close()
			return nil, nil, nil, err
		}
		return c, s, func() { c.Close(); s.Close() }, nil
	}
}

// emulatedLink returns a connPair making connections through their own
// emulated link.
func emulatedLink(cfg linkemu.Config) func(*testing.B) connPair {
	return func(*testing.B) connPair {
		return func() (net.Conn, net.Conn, func(), error) { return linkemu.Pipe(cfg) }
	}
}

// newBenchEnv sets up transport over connections made by dial; it is
// torn down when the benchmark ends. starts[transport], if present,
// replaces the muxer's own start (to change its configuration).
func newBenchEnv(b *testing.B, transport string, dial connPair, starts map[string]startFunc) *benchEnv {
	b.Helper()
	var env *benchEnv
	if transport == "tcp" {
		env = tcpEnv(dial)
	} else {
		c, s, cleanup, err := dial()
		if err != nil {
			b.Fatal(err)
		}
		start := benchMuxer(transport).start
		if f, ok := starts[transport]; ok {
			start = f
		}
		cs, ss, err := start(c, s)
		if err != nil {
			cleanup()
			b.Fatal(err)
		}
		env = &benchEnv{
			open: func() (net.Conn, error) { return cs.Open(context.Background()) },
			accept: func() (net.Conn, error) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				return ss.Accept(ctx)
			},
			close: func() { cs.Close(); ss.Close(); cleanup() },
		}
	}
	b.Cleanup(env.close)
	return env
}

// tcpEnv makes every stream its own connection. Accept hands out the
// server ends in the order open made them, waiting for an open if there
// is none; after close it fails.
func tcpEnv(dial connPair) *benchEnv {
	var mu sync.Mutex
	opened := sync.NewCond(&mu)
	var pending []net.Conn
	var cleanups []func()
	closed := false
	return &benchEnv{
		open: func() (net.Conn, error) {
			c, s, cleanup, err := dial()
			if err != nil {
				return nil, err
			}
			mu.Lock()
			pending = append(pending, s)
			cleanups = append(cleanups, cleanup)
			opened.Signal()
			mu.Unlock()
			return c, nil
		},
		accept: func() (net.Conn, error) {
			mu.Lock()
			defer mu.Unlock()
			for len(pending) == 0 && !closed {
				opened.Wait()
			}
			if closed {
				return nil, net.ErrClosed
			}
			s := pending[0]
			pending = pending[1:]
			return s, nil
		},
		close: func() {
			mu.Lock()
			defer mu.Unlock()
			closed = true
			opened.Broadcast()
			for _, f := range cleanups {
				f()
			}
			cleanups = nil
		},
	}
}

// forEachTransport runs f as one sub-benchmark per transport, each over
// connections that dial makes, every muxer with its default config.
func forEachTransport(b *testing.B, dial func(*testing.B) connPair, f func(b *testing.B, env *benchEnv)) {
	forEachTransportWith(b, dial, nil, f)
}

// forEachTransportWith is forEachTransport with starts replacing some
// muxers' start functions (see newBenchEnv).
func forEachTransportWith(b *testing.B, dial func(*testing.B) connPair, starts map[string]startFunc, f func(b *testing.B, env *benchEnv)) {
	for _, tr := range benchTransports {
		b.Run(tr, func(b *testing.B) { f(b, newBenchEnv(b, tr, dial(b), starts)) })
	}
}

// braidStart returns a start function running braid with cfg.
func braidStart(cfg *session.Config) startFunc {
	return func(c, s net.Conn) (muxSession, muxSession, error) {
		cs, ss, err := startPair(c, s,
			func(c net.Conn) (*session.Session, error) { return session.Client(c, cfg) },
			func(c net.Conn) (*session.Session, error) { return session.Server(c, cfg) })
		if err != nil {
			return nil, nil, err
		}
		return braidSession{cs}, braidSession{ss}, nil
	}
}

// drainBuf is the read size of drain.
const drainBuf = 256 << 10

// drain reads n bytes from r with a large buffer.
func drain(r io.Reader, n int64) error { return drainWith(r, n, drainBuf) }

// drainWith reads n bytes from r with reads of up to size bytes.
func drainWith(r io.Reader, n int64, size int) error {
	buf := make([]byte, size)
	for n > 0 {
		k, err := r.Read(buf[:min(int64(len(buf)), n)])
		n -= int64(k)
		if err != nil {
			if err == io.EOF && n == 0 {
				return nil
			}
			return err
		}
	}
	return nil
}

// benchStall bounds one benchmark run: a transport that stalls fails.
const benchStall = 2 * time.Minute

// benchBulk sends b.N chunks on each of streams streams at once; an op
// is one chunk per stream, delivered. The receivers read drainBuf bytes
// at a time.
func benchBulk(b *testing.B, env *benchEnv, streams, chunk int) {
	benchBulkReads(b, env, streams, chunk, drainBuf)
}

// benchBulkReads is benchBulk with receivers reading up to readSize
// bytes at a time.
func benchBulkReads(b *testing.B, env *benchEnv, streams, chunk, readSize int) {
	type pair struct{ c, s net.Conn }
	pairs := make([]pair, streams)
	for i := range pairs {
		c, s := env.pair(b)
		pairs[i] = pair{c, s}
	}
	for _, p := range pairs { // a stalled transport fails instead of hanging
		p.s.SetReadDeadline(time.Now().Add(benchStall))
	}
	data := make([]byte, chunk)
	for i := 0; i < chunk; i += copy(data[i:], patternBlock) {
	}
	b.SetBytes(int64(streams * chunk))
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	errs := make(chan error, 2*streams)
	for _, p := range pairs {
		wg.Go(func() {
			if err := drainWith(p.s, int64(b.N)*int64(chunk), readSize); err != nil {
				errs <- err
				p.c.Close() // unblock the writer
			}
		})
		wg.Go(func() {
			for range b.N {
				if _, err := p.c.Write(data); err != nil {
					errs <- err
					p.s.Close() // unblock the reader
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// BenchmarkBulk1 is one stream (TCP: one connection) carrying 128 KiB
// writes one way.
func BenchmarkBulk1(b *testing.B) {
	forEachTransport(b, loopback, func(b *testing.B, env *benchEnv) { benchBulk(b, env, 1, 128<<10) })
}

// BenchmarkBulk64 is 64 streams (TCP: 64 connections) sending 128 KiB
// writes at once.
func BenchmarkBulk64(b *testing.B) {
	forEachTransport(b, loopback, func(b *testing.B, env *benchEnv) { benchBulk(b, env, 64, 128<<10) })
}

// BenchmarkConnCeiling is raw TCP only, to read Bulk64 against:
// "64conns-128KiB" is Bulk64's tcp baseline, and "1conn-<size>" is one
// connection carrying writes of that size, read with reads as large (a
// connection's best case). A muxer's streams all cross one connection,
// so one connection at its best write size bounds what any muxer's
// Bulk64 can reach on the machine the benchmark runs on.
func BenchmarkConnCeiling(b *testing.B) {
	for _, c := range []struct {
		name         string
		conns, chunk int
	}{
		{"64conns-128KiB", 64, 128 << 10},
		{"1conn-128KiB", 1, 128 << 10},
		{"1conn-512KiB", 1, 512 << 10},
		{"1conn-2MiB", 1, 2 << 20},
	} {
		b.Run(c.name, func(b *testing.B) {
			benchBulkReads(b, newBenchEnv(b, "tcp", loopback(b), nil), c.conns, c.chunk, max(drainBuf, c.chunk))
		})
	}
}

// echoLoop echoes msgSize-byte messages on c until it fails.
func echoLoop(c net.Conn, msgSize int) {
	buf := make([]byte, msgSize)
	for {
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

// benchEcho measures round trips of 64-byte messages on one stream and
// reports their median and 99th percentile; with load, another stream
// of the same session (TCP: another connection) sends as fast as it can
// meanwhile.
func benchEcho(b *testing.B, env *benchEnv, load bool) {
	const msgSize = 64
	c, s := env.pair(b)
	go echoLoop(s, msgSize)
	var loadDone sync.WaitGroup
	if load {
		lc, ls := env.pair(b)
		loadDone.Go(func() { drain(ls, 1<<62) })
		loadDone.Go(func() {
			for {
				if _, err := lc.Write(patternBlock[:128<<10]); err != nil {
					return
				}
			}
		})
		defer func() { lc.Close(); ls.Close(); loadDone.Wait() }()
		// Let the load reach its steady state before measuring.
		if err := drainFor(c, msgSize, 50); err != nil {
			b.Fatal(err)
		}
	}
	c.SetReadDeadline(time.Now().Add(benchStall))
	msg := make([]byte, msgSize)
	lat := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, msg); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

// drainFor does n echo round trips on c.
func drainFor(c net.Conn, msgSize, n int) error {
	msg := make([]byte, msgSize)
	for range n {
		if _, err := c.Write(msg); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, msg); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkEchoRTT is the round trip of a 64-byte message on an idle
// stream.
func BenchmarkEchoRTT(b *testing.B) {
	forEachTransport(b, loopback, func(b *testing.B, env *benchEnv) { benchEcho(b, env, false) })
}

// BenchmarkEchoRTTLoaded is the round trip of a 64-byte message while
// another stream of the same session saturates the connection
// (TCP: while another connection is saturated).
func BenchmarkEchoRTTLoaded(b *testing.B) {
	forEachTransport(b, loopback, func(b *testing.B, env *benchEnv) { benchEcho(b, env, true) })
}

// idleStreams is how many streams BenchmarkIdleStreamHeap holds open;
// TCP gets fewer connections, as each costs two file descriptors.
const (
	idleStreams  = 10_000
	idleTCPConns = 4_000
)

// BenchmarkIdleStreamHeap reports the Go heap held per open, idle
// stream, both ends together (TCP: per connection; the kernel's memory
// is not counted). braid's MaxIncomingStreams (default 8 192) and
// go-yamux's (default 1 000; it resets streams beyond it) are raised to
// hold them all.
func BenchmarkIdleStreamHeap(b *testing.B) {
	cfg := session.DefaultConfig()
	cfg.MaxIncomingStreams = 2 * idleStreams
	starts := map[string]startFunc{
		"braid": braidStart(cfg),
		"go-yamux": goYamuxStart(func() *goyamux.Config {
			c := goYamuxConfig()
			c.MaxIncomingStreams = 2 * idleStreams
			return c
		}),
	}
	for _, tr := range benchTransports {
		b.Run(tr, func(b *testing.B) {
			n := idleStreams
			if tr == "tcp" {
				n = idleTCPConns
			}
			conns := make([]net.Conn, 0, 2*n)
			var perStream float64
			for range b.N {
				// A fresh session per measurement: streams closed in the
				// last one are gone with it, not freed while this one is
				// measured.
				g0 := runtime.NumGoroutine()
				env := newBenchEnv(b, tr, loopback(b), starts)
				clear(conns[:cap(conns)]) // the last round's conns must not be freed during this one
				conns = conns[:0]
				runtime.GC()
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				for range n {
					c, s := env.pair(b)
					conns = append(conns, c, s)
				}
				runtime.GC()
				runtime.ReadMemStats(&m1)
				perStream += float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / float64(n)
				for _, c := range conns {
					c.Close()
				}
				env.close()
				// The sessions' goroutines exit after Close returns (yamux,
				// smux); until they have, their memory is not free.
				if !poll(10*time.Second, func() bool { return runtime.NumGoroutine() <= g0 }) {
					b.Fatalf("%d goroutines 10 s after closing, %d before", runtime.NumGoroutine(), g0)
				}
			}
			b.ReportMetric(perStream/float64(b.N), "B/stream")
		})
	}
}

// BenchmarkOpenEchoClose is one short-lived stream per op: open, echo
// one byte, close (TCP: dial, echo, close with RST so no TIME_WAIT
// piles up).
func BenchmarkOpenEchoClose(b *testing.B) {
	forEachTransport(b, loopback, func(b *testing.B, env *benchEnv) {
		accepted := make(chan net.Conn, 1)
		serverDone := make(chan struct{})
		go func() {
			defer close(serverDone)
			for s := range accepted {
				go serveOneEcho(s)
			}
		}()
		defer func() { close(accepted); <-serverDone }()
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			c, err := env.open()
			if err != nil {
				b.Fatal(err)
			}
			s, err := env.accept()
			if err != nil {
				b.Fatal(err)
			}
			accepted <- s
			if err := echoOneAndClose(c); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// serveOneEcho is the server side of OpenEchoClose: it echoes one byte,
// then waits for the client to close before closing s.
func serveOneEcho(s net.Conn) {
	defer s.Close()
	buf := make([]byte, 1)
	if _, err := io.ReadFull(s, buf); err != nil {
		return
	}
	s.Write(buf)
	s.Read(buf) // until the client closes
}

// echoOneAndClose is the client side of OpenEchoClose: one byte there and
// back, then close (a TCP connection with a reset, so that TIME_WAIT
// does not pile up).
func echoOneAndClose(c net.Conn) error {
	buf := []byte{42}
	if _, err := c.Write(buf); err != nil {
		c.Close()
		return err
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		c.Close()
		return err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close() // its error is of no interest: the echo came back
	return nil
}

// BenchmarkOpenEchoCloseParallel is OpenEchoClose from 8 goroutines at
// once (4 per core), the way a server meets short-lived streams (one RPC
// each): an accept loop hands every stream to a goroutine of its own,
// while the clients open, echo and close. It measures the rate at which
// a session serves such streams, not the latency of one.
func BenchmarkOpenEchoCloseParallel(b *testing.B) {
	forEachTransport(b, loopback, func(b *testing.B, env *benchEnv) {
		var servers sync.WaitGroup
		servers.Go(func() {
			for {
				s, err := env.accept()
				if err != nil {
					return // the benchmark is over: env.close
				}
				servers.Go(func() { serveOneEcho(s) })
			}
		})
		b.Cleanup(func() { env.close(); servers.Wait() }) // env.close ends the accept loop
		b.ReportAllocs()
		b.SetParallelism(4)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c, err := env.open()
				if err != nil {
					b.Error(err)
					return
				}
				if err := echoOneAndClose(c); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkLink50ms is one stream carrying 4 MiB writes through an
// emulated link with a 50 ms round trip and 1 Gbit/s each way
// (internal/linkemu): how close each transport's flow control gets to
// the link's rate. One TCP connection through the same link is the
// reference. Each op is 4 MiB delivered; slow transports run few ops.
func BenchmarkLink50ms(b *testing.B) {
	link := emulatedLink(linkemu.Config{RTT: 50 * time.Millisecond, Rate: 1e9 / 8})
	forEachTransport(b, link, func(b *testing.B, env *benchEnv) { benchBulk(b, env, 1, 4<<20) })
}
