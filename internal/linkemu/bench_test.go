package linkemu_test

import (
	"io"
	"testing"
	"time"

	"github.com/braidmux/braid/internal/linkemu"
)

// benchThroughput sends b.N MiB from client to server through a link with
// cfg, one plain TCP connection, and reports MB/s (via SetBytes) and the
// percentage of the link's Rate reached. The clock runs from the first
// write until the server has read the last byte, so each run includes one
// RTT/2 of latency: use -benchtime=64x or more for 1 Gbit/s.
func benchThroughput(b *testing.B, cfg linkemu.Config) {
	client, server, _ := pipe(b, cfg)
	const block = 1 << 20
	buf := make([]byte, block)
	b.SetBytes(block)
	b.ReportAllocs()
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, server)
		done <- err
	}()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := client.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := client.CloseWrite(); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if cfg.Rate > 0 {
		rate := float64(b.N*block) / elapsed.Seconds()
		b.ReportMetric(100*rate/float64(cfg.Rate), "%rate")
	}
}

// BenchmarkTCPThroughput50ms1G is the reference for multiplexer benchmarks:
// one plain TCP connection over a 50 ms, 1 Gbit/s link.
func BenchmarkTCPThroughput50ms1G(b *testing.B) {
	benchThroughput(b, linkemu.Config{RTT: 50 * time.Millisecond, Rate: 125_000_000})
}

// BenchmarkTCPThroughput50ms100M: one plain TCP connection over a 50 ms,
// 100 Mbit/s link.
func BenchmarkTCPThroughput50ms100M(b *testing.B) {
	benchThroughput(b, linkemu.Config{RTT: 50 * time.Millisecond, Rate: 12_500_000})
}

// BenchmarkTCPThroughput10ms100M: one plain TCP connection over a 10 ms,
// 100 Mbit/s link.
func BenchmarkTCPThroughput10ms100M(b *testing.B) {
	benchThroughput(b, linkemu.Config{RTT: 10 * time.Millisecond, Rate: 12_500_000})
}

// BenchmarkTCPThroughputRelayOnly measures the relay's own ceiling: no
// delay, no rate limit.
func BenchmarkTCPThroughputRelayOnly(b *testing.B) {
	benchThroughput(b, linkemu.Config{})
}

// BenchmarkPingPong50ms measures the round trip of a 1-byte message over a
// 50 ms, 1 Gbit/s link: ns/op should be 50 ms plus timer slack.
func BenchmarkPingPong50ms(b *testing.B) {
	client, server, _ := pipe(b, linkemu.Config{RTT: 50 * time.Millisecond, Rate: 125_000_000})
	b.ResetTimer()
	rtts := pingPong(b, client, server, b.N)
	b.StopTimer()
	var worst time.Duration
	for _, d := range rtts {
		worst = max(worst, d)
	}
	b.ReportMetric(float64(worst)/1e6, "max-ms")
}
