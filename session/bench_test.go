package session

import (
	"context"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/braidmux/braid/internal/linkemu"
	"time"
)

// The benchmarks here measure braid against raw TCP on loopback in the
// same run, so BENCHMARKS.md can quote ratios. Sub-benchmark "tcp" is the
// baseline, "braid" the session.

// bulkChunk is the size of each Write in the bulk benchmarks;
// BRAID_CHUNK (bytes) overrides it for experiments.
var bulkChunk = func() int {
	if v, err := strconv.Atoi(os.Getenv("BRAID_CHUNK")); err == nil && v > 0 {
		return v
	}
	return 32 << 10
}()

// pair is a connected pair of byte streams and how to open more.
type pairMaker func(tb testing.TB, n int) (w, r []net.Conn, cleanup func())

func tcpConns(tb testing.TB, n int) ([]net.Conn, []net.Conn, func()) {
	var w, r []net.Conn
	for range n {
		a, b := tcpPair(tb)
		w, r = append(w, a), append(r, b)
	}
	return w, r, func() {
		for i := range w {
			w[i].Close()
			r[i].Close()
		}
	}
}

// benchConfig is the config braid benchmarks use: the defaults, unless
// BRAID_MAXWIN, BRAID_INITWIN or BRAID_FRAME (bytes) override
// MaxStreamWindow, InitialStreamWindow or MaxFrameSize for experiments.
func benchConfig() *Config {
	cfg := DefaultConfig()
	if v, err := strconv.Atoi(os.Getenv("BRAID_MAXWIN")); err == nil && v > 0 {
		cfg.MaxStreamWindow = uint32(v)
		cfg.InitialStreamWindow = min(cfg.InitialStreamWindow, uint32(v))
	}
	if v, err := strconv.Atoi(os.Getenv("BRAID_FRAME")); err == nil && v > 0 {
		cfg.MaxFrameSize = uint32(v)
	}
	if v, err := strconv.Atoi(os.Getenv("BRAID_INITWIN")); err == nil && v > 0 {
		cfg.InitialStreamWindow = uint32(v)
		cfg.MaxStreamWindow = max(cfg.MaxStreamWindow, uint32(v))
	}
	return cfg
}

// streamPairOf opens a stream on c and accepts it on s.
func streamPairOf(tb testing.TB, c, s *Session) (*Stream, *Stream) {
	tb.Helper()
	a, err := c.OpenStream(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	b, err := s.AcceptStream(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return a, b
}

// move writes total bytes of data (repeated as needed) to w in writes
// of at most bulkChunk while r reads and discards them, and returns when
// all have arrived.
func move(tb testing.TB, w, r net.Conn, data []byte, total int) {
	tb.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.Discard, r, int64(total))
		done <- err
	}()
	for off := 0; off < total; {
		i := off % len(data)
		n, err := w.Write(data[i:min(i+bulkChunk, i+total-off, len(data))])
		if err != nil {
			tb.Fatal(err)
		}
		off += n
	}
	if err := <-done; err != nil {
		tb.Fatal(err)
	}
}

func braidConns(tb testing.TB, n int) ([]net.Conn, []net.Conn, func()) {
	c, s := sessionPair(tb, benchConfig(), benchConfig())
	var w, r []net.Conn
	for range n {
		a, b := streamPairOf(tb, c, s)
		w, r = append(w, a), append(r, b)
	}
	return w, r, func() { c.Close(); s.Close() }
}

// resumeConns is braidConns with a resumable session: Dial and a
// Listener, over TCP loopback.
func resumeConns(tb testing.TB, n int) ([]net.Conn, []net.Conn, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	l := NewListener(ln, benchConfig())
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	}
	c, err := Dial(context.Background(), dial, benchConfig())
	if err != nil {
		tb.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	var w, r []net.Conn
	for range n {
		a, b := streamPairOf(tb, c, s)
		w, r = append(w, a), append(r, b)
	}
	return w, r, func() { c.Close(); s.Close(); l.Close() }
}

var makers = []struct {
	name string
	mk   pairMaker
}{{"tcp", tcpConns}, {"braid", braidConns}, {"braid-resume", resumeConns}}

// bulk moves total bytes over each of n conn pairs at once.
func bulk(b *testing.B, mk pairMaker, n int) {
	w, r, cleanup := mk(b, n)
	defer cleanup()
	per := b.N * bulkChunk / n
	if per < bulkChunk {
		per = bulkChunk
	}
	b.SetBytes(int64(per * n / b.N))
	b.ReportAllocs()
	var wg sync.WaitGroup
	b.ResetTimer()
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			buf := make([]byte, bulkChunk)
			for left := per; left > 0; left -= len(buf) {
				if _, err := w[i].Write(buf[:min(len(buf), left)]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			buf := make([]byte, bulkChunk)
			if _, err := io.ReadFull(r[i], make([]byte, 0)); err != nil {
				b.Error(err)
			}
			for got := 0; got < per; {
				k, err := r[i].Read(buf)
				if err != nil {
					b.Error(err)
					return
				}
				got += k
			}
		}()
	}
	wg.Wait()
}

func BenchmarkBulk1(b *testing.B) {
	for _, m := range makers {
		b.Run(m.name, func(b *testing.B) { bulk(b, m.mk, 1) })
	}
}

func BenchmarkBulk64(b *testing.B) {
	for _, m := range makers {
		b.Run(m.name, func(b *testing.B) { bulk(b, m.mk, 64) })
	}
}

// echoLatencies runs count 64-byte round trips over (w, r), with r echoing.
func echoLatencies(tb testing.TB, w, r net.Conn, count int) []time.Duration {
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for range count {
			if _, err := io.ReadFull(r, buf); err != nil {
				return
			}
			if _, err := r.Write(buf); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 64)
	lat := make([]time.Duration, 0, count)
	for range count {
		start := time.Now()
		if _, err := w.Write(buf); err != nil {
			tb.Fatal(err)
		}
		if _, err := io.ReadFull(w, buf); err != nil {
			tb.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	<-done
	return lat
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(p(0.50), "p50-µs")
	b.ReportMetric(p(0.99), "p99-µs")
	b.ReportMetric(0, "ns/op")
}

func BenchmarkEchoRTT(b *testing.B) {
	for _, m := range makers {
		b.Run(m.name, func(b *testing.B) {
			w, r, cleanup := m.mk(b, 1)
			defer cleanup()
			b.ResetTimer()
			reportPercentiles(b, echoLatencies(b, w[0], r[0], max(b.N, 2000)))
		})
	}
}

// BenchmarkEchoBehindBulk measures 64-byte echo latency on one stream
// while another stream of the same session (for tcp: another connection)
// saturates the link.
func BenchmarkEchoBehindBulk(b *testing.B) {
	for _, m := range makers {
		b.Run(m.name, func(b *testing.B) {
			w, r, cleanup := m.mk(b, 2)
			defer cleanup()
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(2)
			var bulkBytes atomic.Int64
			go func() {
				defer wg.Done()
				buf := make([]byte, bulkChunk)
				for {
					select {
					case <-stop:
						return
					default:
					}
					n, err := w[1].Write(buf)
					bulkBytes.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
			go func() {
				defer wg.Done()
				io.Copy(io.Discard, r[1])
			}()
			time.Sleep(50 * time.Millisecond) // let the bulk stream reach full speed
			b.ResetTimer()
			t0, bulk0 := time.Now(), bulkBytes.Load()
			lat := echoLatencies(b, w[0], r[0], max(b.N, 2000))
			b.StopTimer()
			// The bulk stream's throughput meanwhile: what holding its
			// window down (contendedWindow) costs it.
			b.ReportMetric(float64(bulkBytes.Load()-bulk0)/time.Since(t0).Seconds()/1e6, "bulk-MB/s")
			close(stop)
			w[1].Close()
			r[1].Close()
			wg.Wait()
			reportPercentiles(b, lat)
		})
	}
}

// BenchmarkIdleStreamHeap reports the heap held per idle open stream,
// both ends counted.
func BenchmarkIdleStreamHeap(b *testing.B) {
	const n = 10000
	c, s := sessionPair(b, &Config{MaxIncomingStreams: n, AcceptBacklog: n}, &Config{MaxIncomingStreams: n, AcceptBacklog: n})
	var before, after runtime.MemStats
	keep := make([]*Stream, 0, 2*n)
	for range b.N {
		runtime.GC()
		runtime.GC() // twice: sync.Pools empty over two cycles
		runtime.ReadMemStats(&before)
		for range n {
			st, err := c.OpenStream(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			keep = append(keep, st)
		}
		for range n {
			st, err := s.AcceptStream(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			keep = append(keep, st)
		}
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "B/stream")
		for _, st := range keep {
			st.Close()
		}
		clear(keep)
		keep = keep[:0]
		for deadline := time.Now().Add(10 * time.Second); c.NumStreams()+s.NumStreams() > 0; {
			if time.Now().After(deadline) {
				b.Fatalf("streams not gone after Close: %d + %d", c.NumStreams(), s.NumStreams())
			}
			time.Sleep(time.Millisecond)
		}
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkOpenEchoClose: open a stream, echo one byte, close, as fast as
// possible from 8 goroutines.
func BenchmarkOpenEchoClose(b *testing.B) {
	c, s := sessionPair(b, nil, nil)
	go func() {
		for {
			st, err := s.AcceptStream(context.Background())
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 1)
				if _, err := io.ReadFull(st, buf); err == nil {
					st.Write(buf)
				}
				st.Close()
			}()
		}
	}()
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 1)
		for pb.Next() {
			st, err := c.OpenStream(context.Background())
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := st.Write(buf); err != nil {
				b.Error(err)
				return
			}
			if _, err := io.ReadFull(st, buf); err != nil {
				b.Error(err)
				return
			}
			st.Close()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "streams/s")
}

// Experiment knobs for the benchmarks, used to choose the defaults
// recorded in BENCHMARKS.md: BRAID_BATCH (bytes per vectored write),
// BRAID_PENDING (copied bytes a resumable session lets wait: pendingMax),
// BRAID_LOWAT (TCP_NOTSENT_LOWAT), BRAID_YIELD and BRAID_DIRECT (0 or
// 1), BRAID_READAHEAD (bytes per read call of the reader goroutine),
// BRAID_TUNERTT (µs: minTuneRTT), BRAID_PIPE (0 or 1: plainPipeline),
// and BRAID_MAXWIN / BRAID_INITWIN (see benchConfig). Unset, the
// package defaults apply.
func init() {
	if v, err := strconv.Atoi(os.Getenv("BRAID_BATCH")); err == nil && v > 0 {
		maxBatch = v
	}
	if v, err := strconv.Atoi(os.Getenv("BRAID_PENDING")); err == nil && v > 0 {
		pendingMax = v
	}
	if v, err := strconv.Atoi(os.Getenv("BRAID_LOWAT")); err == nil && v >= 0 {
		notSentLowat = v
	}
	if v := os.Getenv("BRAID_YIELD"); v != "" {
		yieldAfterFrame = v == "1"
	}
	if v := os.Getenv("BRAID_DIRECT"); v != "" {
		directWrites = v == "1"
	}
	if v, err := strconv.Atoi(os.Getenv("BRAID_QUANTUM")); err == nil && v >= 0 {
		schedQuantum = v
	}
	if v := os.Getenv("BRAID_DIRECTUPD"); v != "" {
		directUpdates = v == "1"
	}
	if v, err := strconv.Atoi(os.Getenv("BRAID_CONTWIN")); err == nil && v >= 0 {
		contendedWindow = v
	}
	if v, err := strconv.Atoi(os.Getenv("BRAID_TUNERTT")); err == nil && v > 0 {
		minTuneRTT = time.Duration(v) * time.Microsecond
	}
	if v, err := strconv.Atoi(os.Getenv("BRAID_READAHEAD")); err == nil && v > 0 {
		readAhead = v
	}
	if v := os.Getenv("BRAID_PIPE"); v != "" {
		plainPipeline = v == "1"
	}
}

// BenchmarkLink50ms1G: one stream through an emulated link of 50 ms round
// trip and 1 Gbit/s (internal/linkemu), against one TCP connection
// through the same kind of link. Both are warmed up with 32 MiB first, so
// the figure is steady-state throughput (braid's windows have tuned
// themselves to the bandwidth-delay product by then).
func BenchmarkLink50ms1G(b *testing.B) {
	cfg := linkemu.Config{RTT: 50 * time.Millisecond, Rate: 125_000_000}
	const perOp = 1 << 20
	for _, name := range []string{"tcp", "braid", "braid-resume"} {
		b.Run(name, func(b *testing.B) {
			var w, r net.Conn
			switch name {
			case "braid-resume":
				w, r = resumeOverLink(b, cfg)
			default:
				cc, sc, cleanup, err := linkemu.Pipe(cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer cleanup()
				w, r = cc, sc
				if name == "braid" {
					c, s := sessionPairOn(b, cc, sc, nil, nil)
					w, r = streamPairOf(b, c, s)
				}
			}
			buf := make([]byte, bulkChunk)
			move(b, w, r, buf, 32<<20)
			b.SetBytes(perOp)
			b.ResetTimer()
			move(b, w, r, buf, b.N*perOp)
			b.StopTimer()
			b.ReportMetric(float64(b.N*perOp)/b.Elapsed().Seconds()/float64(cfg.Rate)*100, "%rate")
		})
	}
}

// BenchmarkCompressionIncompressible: loopback throughput of random
// (incompressible) data with zstd on, against zstd off in the same run.
func BenchmarkCompressionIncompressible(b *testing.B) {
	data := randomBytes(7, 1<<20)
	for _, tc := range []struct {
		name string
		cfg  *Config
	}{{"off", nil}, {"zstd", zstdConfig}} {
		b.Run(tc.name, func(b *testing.B) {
			c, s := sessionPair(b, tc.cfg, tc.cfg)
			w, r := streamPairOf(b, c, s)
			b.SetBytes(int64(bulkChunk))
			b.ResetTimer()
			move(b, w, r, data, b.N*bulkChunk)
		})
	}
}

// BenchmarkCompressionLink100M: JSON-lines goodput through an emulated
// 100 Mbit/s link (10 ms RTT) with zstd, and without, in the same run;
// "xlink" is goodput divided by the link rate.
func BenchmarkCompressionLink100M(b *testing.B) {
	cfg := linkemu.Config{RTT: 10 * time.Millisecond, Rate: 12_500_000}
	data := jsonLogs(8, 4<<20)
	for _, tc := range []struct {
		name string
		cfg  *Config
	}{{"off", nil}, {"zstd", zstdConfig}} {
		b.Run(tc.name, func(b *testing.B) {
			cc, sc, cleanup, err := linkemu.Pipe(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer cleanup()
			c, s := sessionPairOn(b, cc, sc, tc.cfg, tc.cfg)
			w, r := streamPairOf(b, c, s)
			const perOp = 256 << 10
			move(b, w, r, data, 8<<20) // warm up: windows tune themselves
			b.SetBytes(perOp)
			b.ResetTimer()
			move(b, w, r, data, b.N*perOp)
			b.StopTimer()
			b.ReportMetric(float64(b.N*perOp)/b.Elapsed().Seconds()/float64(cfg.Rate), "xlink")
		})
	}
}

// resumeOverLink returns a stream pair of a resumable session (Dial and
// a Listener) whose connection runs through an emulated link; all is
// closed when the benchmark ends.
func resumeOverLink(b *testing.B, cfg linkemu.Config) (w, r net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	l := NewListener(ln, nil)
	link, err := linkemu.Listen(ln.Addr().String(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", link.Addr())
	}
	c, err := Dial(context.Background(), dial, nil)
	if err != nil {
		b.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(); s.Close(); l.Close(); link.Close() })
	return streamPairOf(b, c, s)
}
