package linkemu_test

import (
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/braidmux/braid/internal/linkemu"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target string
		cfg    linkemu.Config
	}{
		{"negative RTT", "127.0.0.1:1", linkemu.Config{RTT: -time.Millisecond}},
		{"negative Rate", "127.0.0.1:1", linkemu.Config{Rate: -1}},
		{"negative Queue", "127.0.0.1:1", linkemu.Config{Queue: -1}},
		{"huge BDP", "127.0.0.1:1", linkemu.Config{RTT: time.Hour, Rate: 1 << 40}},
		{"no port", "127.0.0.1", linkemu.Config{}},
		{"not loopback", "192.0.2.1:80", linkemu.Config{}},
		{"host name", "example.com:80", linkemu.Config{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := linkemu.Listen(tc.target, tc.cfg)
			if err == nil {
				l.Close()
				t.Fatalf("Listen(%q, %+v) succeeded, want error", tc.target, tc.cfg)
			}
		})
	}
	for _, target := range []string{"127.0.0.1:1", "[::1]:1", "localhost:1"} {
		l, err := linkemu.Listen(target, linkemu.Config{})
		if err != nil {
			t.Fatalf("Listen(%q): %v", target, err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	}
}

// pipe returns a client/server pair through a link with cfg, closed at the
// end of the test.
func pipe(t testing.TB, cfg linkemu.Config) (client, server *net.TCPConn, l *linkemu.Link) {
	t.Helper()
	c, s, l, err := linkemu.PipeLink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn), l
}

// pingPong measures n round trips of a 1-byte message bounced by an echo
// on server.
func pingPong(t testing.TB, client, server net.Conn, n int) []time.Duration {
	t.Helper()
	echoErr := make(chan error, 1)
	go func() {
		var b [1]byte
		for range n {
			if _, err := io.ReadFull(server, b[:]); err != nil {
				echoErr <- err
				return
			}
			if _, err := server.Write(b[:]); err != nil {
				echoErr <- err
				return
			}
		}
		echoErr <- nil
	}()
	rtts := make([]time.Duration, 0, n)
	var b [1]byte
	for i := range n {
		start := time.Now()
		if _, err := client.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(client, b[:]); err != nil {
			t.Fatal(err)
		}
		rtts = append(rtts, time.Since(start))
		if b[0] != byte(i) {
			t.Fatalf("round trip %d echoed %d", i, b[0])
		}
	}
	if err := <-echoErr; err != nil {
		t.Fatal(err)
	}
	return rtts
}

func TestRoundTripLatency(t *testing.T) {
	for _, cfg := range []linkemu.Config{
		{RTT: 50 * time.Millisecond},
		{RTT: 50 * time.Millisecond, Rate: 125_000_000},
		{RTT: 20 * time.Millisecond, Rate: 12_500_000},
	} {
		client, server, _ := pipe(t, cfg)
		for i, rtt := range pingPong(t, client, server, 5) {
			// The lower bound is exact: each leg is held for RTT/2 after
			// the relay has read it. The upper bound allows for a loaded
			// machine; BenchmarkPingPong50ms measures precisely.
			if rtt < cfg.RTT || rtt > cfg.RTT+100*time.Millisecond {
				t.Errorf("%+v: round trip %d took %v, want %v (at most +100ms)", cfg, i, rtt, cfg.RTT)
			}
		}
	}
}

// transfer sends size pseudo-random bytes from client to server, half-closes,
// and returns the time from the first write until the server read EOF. It
// checks the bytes arrived intact (by CRC-32C, cheap enough not to slow a
// 1 Gbit/s transfer).
func transfer(t testing.TB, client, server *net.TCPConn, size int) time.Duration {
	t.Helper()
	type result struct {
		sum uint32
		n   int64
		at  time.Time
		err error
	}
	got := make(chan result, 1)
	go func() {
		h := crc32.New(castagnoli)
		n, err := io.Copy(h, server)
		got <- result{sum: h.Sum32(), n: n, at: time.Now(), err: err}
	}()
	rng := rand.NewChaCha8([32]byte{1})
	block := make([]byte, 1<<20)
	h := crc32.New(castagnoli)
	start := time.Now()
	for left := size; left > 0; {
		b := block[:min(left, len(block))]
		rng.Read(b)
		h.Write(b)
		if _, err := client.Write(b); err != nil {
			t.Fatal(err)
		}
		left -= len(b)
	}
	if err := client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.n != int64(size) || r.sum != h.Sum32() {
		t.Fatalf("server got %d bytes (CRC-32C %08x), want %d (%08x)", r.n, r.sum, size, h.Sum32())
	}
	return r.at.Sub(start)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func checkThroughput(t *testing.T, cfg linkemu.Config, size int, minFrac float64) {
	client, server, l := pipe(t, cfg)
	elapsed := transfer(t, client, server, size)
	rate := float64(size) / elapsed.Seconds()
	frac := rate / float64(cfg.Rate)
	t.Logf("%+v: %d bytes in %v = %.1f MB/s = %.1f%% of Rate", cfg, size, elapsed, rate/1e6, 100*frac)
	// The upper bound is near exact (the link cannot serialize faster than
	// Rate); the lower bound allows for a loaded 2-core machine. The
	// benchmarks give the precise figures.
	if frac < minFrac || frac > 1.10 {
		t.Errorf("throughput %.1f%% of Rate, want %.0f%%..110%%", 100*frac, 100*minFrac)
	}
	st := l.Stats()
	if st.Conns != 1 || st.ClientToServer.Read != int64(size) || st.ClientToServer.Written != int64(size) ||
		st.ServerToClient.Read != 0 || st.ServerToClient.Written != 0 {
		t.Errorf("Stats = %+v, want 1 conn and %d bytes to the server", st, size)
	}
}

func TestThroughput100Mbit10ms(t *testing.T) {
	checkThroughput(t, linkemu.Config{RTT: 10 * time.Millisecond, Rate: 12_500_000}, 8_000_000, 0.70)
}

func TestThroughput1Gbit50ms(t *testing.T) {
	minFrac := 0.70
	if raceEnabled {
		// The race detector slows the sender and the relay several-fold.
		minFrac = 0.50
	}
	checkThroughput(t, linkemu.Config{RTT: 50 * time.Millisecond, Rate: 125_000_000}, 64<<20, minFrac)
}

// TestBackpressure checks that a link whose destination does not read
// stops reading its source, holds no more than twice its capacity (the
// capacity in the link, the same again of bytes past their departure time
// that the destination does not take), and delivers everything once the
// destination reads again.
func TestBackpressure(t *testing.T) {
	const queue = 100_000
	cfg := linkemu.Config{RTT: 10 * time.Millisecond, Queue: queue} // unlimited Rate
	client, server, l := pipe(t, cfg)
	// Small endpoint buffers too, so that the bound below is tight.
	if err := client.SetWriteBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	if err := server.SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 4<<20)
	rand.NewChaCha8([32]byte{2}).Read(data)

	// Without backpressure the relay would swallow all 4 MiB at once.
	client.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	n, err := client.Write(data)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write of %d bytes to a stalled link: n=%d, err=%v; want a timeout", len(data), n, err)
	}
	st := l.Stats().ClientToServer
	held := st.Read - st.Written
	t.Logf("sender wrote %d bytes; link read %d, holds %d", n, st.Read, held)
	if held > 2*queue {
		t.Errorf("link holds %d bytes, more than twice its capacity %d", held, queue)
	}
	// Kernel buffers: 2 relay sockets × 2×128 KiB, 2 endpoint sockets ×
	// 2×64 KiB, plus the link: about 1 MB. Allow plenty.
	if n > 4<<20 {
		t.Errorf("sender wrote %d bytes into a stalled link, want at most 4 MiB", n)
	}

	client.SetWriteDeadline(time.Time{})
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(server)
		got <- b
	}()
	if _, err := client.Write(data[n:]); err != nil {
		t.Fatal(err)
	}
	client.CloseWrite()
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("server read %d bytes, not the %d written", len(b), len(data))
	}
}

// TestBidirectional runs both directions at once through a rate-limited
// link and checks both arrive intact and are counted.
func TestBidirectional(t *testing.T) {
	const size = 3 << 20
	client, server, l := pipe(t, linkemu.Config{RTT: 10 * time.Millisecond, Rate: 50_000_000})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); transfer(t, client, server, size) }()
	go func() { defer wg.Done(); transfer(t, server, client, size) }()
	wg.Wait()
	st := l.Stats()
	want := linkemu.Flow{Read: size, Written: size}
	if st.ClientToServer != want || st.ServerToClient != want {
		t.Errorf("Stats = %+v, want %+v each way", st, want)
	}
}

// TestHalfClose checks that a FIN crosses the link after the data before
// it, and that the other direction keeps working.
func TestHalfClose(t *testing.T) {
	const rtt = 40 * time.Millisecond
	client, server, _ := pipe(t, linkemu.Config{RTT: rtt})
	start := time.Now()
	if _, err := client.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	if err := client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	req, err := io.ReadAll(server)
	if err != nil || string(req) != "request" {
		t.Fatalf("server read %q, %v; want \"request\" and EOF", req, err)
	}
	if d := time.Since(start); d < rtt/2 {
		t.Errorf("request and EOF arrived after %v, before RTT/2 = %v", d, rtt/2)
	}
	if _, err := server.Write([]byte("response")); err != nil {
		t.Fatal(err)
	}
	if err := server.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	resp, err := io.ReadAll(client)
	if err != nil || string(resp) != "response" {
		t.Fatalf("client read %q, %v; want \"response\" and EOF", resp, err)
	}
	if d := time.Since(start); d < rtt {
		t.Errorf("response arrived %v after the request, before RTT = %v", d, rtt)
	}
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// TestResetInOrder checks that a reset from one end reaches the other end
// after the data sent before it.
func TestResetInOrder(t *testing.T) {
	const rtt = 40 * time.Millisecond
	client, server, _ := pipe(t, linkemu.Config{RTT: rtt})
	// Let the client send a request and the server read it, so that the
	// server has no unread data: its Close then means "reset".
	if _, err := client.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if _, err := io.ReadFull(server, b[:]); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := server.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	server.SetLinger(0)
	server.Close() // RST
	got, err := io.ReadAll(client)
	if string(got) != "last words" || !isReset(err) {
		t.Fatalf("client read %q, %v; want \"last words\" then ECONNRESET", got, err)
	}
	if d := time.Since(start); d < rtt/2 {
		t.Errorf("reset arrived after %v, before RTT/2 = %v", d, rtt/2)
	}
}

// TestDestinationGoneKeepsOtherDirection: the server sends a response and
// closes while the client is still sending. Writes to the server fail, but
// the response already in the link is still delivered, then the FIN.
func TestDestinationGoneKeepsOtherDirection(t *testing.T) {
	client, server, _ := pipe(t, linkemu.Config{RTT: 40 * time.Millisecond})
	if _, err := server.Write([]byte("response")); err != nil {
		t.Fatal(err)
	}
	if err := server.Close(); err != nil { // FIN: the server has read nothing
		t.Fatal(err)
	}
	// The client keeps sending until the relay notices the server is gone.
	writeErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := client.Write(buf); err != nil {
				writeErr <- err
				return
			}
		}
	}()
	resp, err := io.ReadAll(client)
	if string(resp) != "response" {
		t.Errorf("client read %q, %v; want \"response\"", resp, err)
	}
	if err := <-writeErr; !isReset(err) && !errors.Is(err, syscall.EPIPE) {
		t.Errorf("client write after the server left: %v, want ECONNRESET or EPIPE", err)
	}
}

func TestDialFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close() // nothing listens there now
	l, err := linkemu.Listen(target, linkemu.Config{RTT: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	if _, err := c.Read(b[:]); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read from a link whose target is down: %v, want the connection closed", err)
	}
}

// TestCloseResets closes a Link in the middle of transfers on several
// connections: the endpoints see a reset and the Link's goroutines are gone.
func TestCloseResets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l, err := linkemu.Listen(ln.Addr().String(), linkemu.Config{RTT: 20 * time.Millisecond, Rate: 10_000_000})
	if err != nil {
		t.Fatal(err)
	}
	const conns = 3
	var clients, servers []net.Conn
	for range conns {
		c, err := net.Dial("tcp", l.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		clients, servers = append(clients, c), append(servers, s)
	}
	// Make sure every relay is up and carrying data before closing.
	for i := range conns {
		if _, err := clients[i].Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		var b [1]byte
		if _, err := io.ReadFull(servers[i], b[:]); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*conns)
	for i := range conns {
		wg.Add(2)
		go func() { // a writer that would run forever
			defer wg.Done()
			buf := make([]byte, 32<<10)
			for {
				if _, err := clients[i].Write(buf); err != nil {
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			_, err := io.Copy(io.Discard, servers[i])
			errs <- err
		}()
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for range conns {
		if err := <-errs; !isReset(err) {
			t.Errorf("server read after Link.Close: %v, want ECONNRESET", err)
		}
	}
	wg.Wait()
	if st := l.Stats(); st.Conns != conns {
		t.Errorf("Stats().Conns = %d, want %d", st.Conns, conns)
	}
	if _, err := net.Dial("tcp", l.Addr()); err == nil {
		t.Error("Dial to a closed Link succeeded")
	}
	goleak.VerifyNone(t)
}

// TestManyConns runs echo traffic on several connections of one Link at
// once and checks the Stats totals.
func TestManyConns(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l, err := linkemu.Listen(ln.Addr().String(), linkemu.Config{RTT: 10 * time.Millisecond, Rate: 100_000_000})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var echoes sync.WaitGroup
	defer echoes.Wait()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			echoes.Add(1)
			go func() {
				defer echoes.Done()
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	const conns, size = 8, 256 << 10
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", l.Addr())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			data := make([]byte, size)
			rand.NewChaCha8([32]byte{byte(i)}).Read(data)
			go func() {
				c.Write(data)
				c.(*net.TCPConn).CloseWrite()
			}()
			got, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("conn %d: echo returned %d bytes, %v; want the %d sent", i, len(got), err, size)
			}
		}()
	}
	wg.Wait()
	want := linkemu.Flow{Read: conns * size, Written: conns * size}
	if st := l.Stats(); st.Conns != conns || st.ClientToServer != want || st.ServerToClient != want {
		t.Errorf("Stats = %+v, want %d conns and %+v each way", st, conns, want)
	}
}

func TestPipeCleanup(t *testing.T) {
	client, server, cleanup, err := linkemu.Pipe(linkemu.Config{RTT: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	var b [2]byte
	if _, err := io.ReadFull(server, b[:]); err != nil || string(b[:]) != "hi" {
		t.Fatalf("server read %q, %v", b[:], err)
	}
	cleanup()
	cleanup()
	if _, err := client.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after cleanup: %v, want net.ErrClosed", err)
	}
	if _, err := server.Read(b[:]); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after cleanup: %v, want net.ErrClosed", err)
	}
}

// TestSerialization checks that bytes queue behind earlier bytes at Rate:
// the last byte of a burst arrives no earlier than RTT/2 plus the burst's
// serialization time.
func TestSerialization(t *testing.T) {
	const (
		rtt   = 20 * time.Millisecond
		rate  = 1_000_000
		burst = 100_000
	)
	client, server, _ := pipe(t, linkemu.Config{RTT: rtt, Rate: rate})
	start := time.Now()
	if _, err := client.Write(make([]byte, burst)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(server, make([]byte, burst)); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	want := rtt/2 + burst*time.Second/rate // 110 ms
	if elapsed < want || elapsed > want+150*time.Millisecond {
		t.Errorf("%d bytes at %d B/s took %v, want %v (at most +150ms)", burst, rate, elapsed, want)
	}
}
