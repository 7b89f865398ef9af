package yamux_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braidmux/braid/yamux"
	hyamux "github.com/hashicorp/yamux"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// quiet returns a config that logs nowhere.
func quiet() *yamux.Config {
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	return cfg
}

func hquiet() *hyamux.Config {
	cfg := hyamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	return cfg
}

// listener is a loopback listener closed when the test ends.
func listener(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// echoServer is the accept loop of the issue: one Server per connection,
// returning at once, and one goroutine per session echoing each stream
// until the peer closes it. It returns when ln is closed, after every
// session it started has ended.
func echoServer(ln net.Listener, cfg *yamux.Config, sessions chan<- *yamux.Session) {
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	var all []*yamux.Session
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range all {
			s.Close()
		}
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s, err := yamux.Server(c, cfg)
		if err != nil {
			c.Close()
			return
		}
		mu.Lock()
		all = append(all, s)
		mu.Unlock()
		if sessions != nil {
			sessions <- s
		}
		wg.Go(func() { serveEcho(s) })
	}
}

func serveEcho(s *yamux.Session) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := s.Accept()
		if err != nil {
			return
		}
		wg.Go(func() {
			io.Copy(st, st)
			st.Close()
		})
	}
}

// startEchoServer runs echoServer on a fresh listener until the test
// ends.
func startEchoServer(t testing.TB, cfg *yamux.Config) string {
	ln := listener(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		echoServer(ln, cfg, nil)
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

// opener is the part of a session the echo checks need, so real yamux
// sessions and this package's can be driven alike.
type opener interface {
	Open() (net.Conn, error)
}

// echoStreams opens n streams on sess at once and checks each echoes a
// message of its own, written then half-closed with Close (yamux's
// idiom: s.Close(); io.ReadAll(s)).
func echoStreams(t *testing.T, sess opener, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			st, err := sess.Open()
			if err != nil {
				errs <- fmt.Errorf("stream %d: Open: %w", i, err)
				return
			}
			st.SetDeadline(time.Now().Add(20 * time.Second))
			msg := bytes.Repeat([]byte{byte(i)}, 1000+i*97)
			if _, err := st.Write(msg); err != nil {
				errs <- fmt.Errorf("stream %d: Write: %w", i, err)
				return
			}
			if err := st.Close(); err != nil {
				errs <- fmt.Errorf("stream %d: Close: %w", i, err)
				return
			}
			got, err := io.ReadAll(st)
			if err != nil {
				errs <- fmt.Errorf("stream %d: ReadAll after Close: %w", i, err)
				return
			}
			if !bytes.Equal(got, msg) {
				errs <- fmt.Errorf("stream %d: echo of %d bytes came back as %d bytes", i, len(msg), len(got))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestMixedFleet: a real hashicorp/yamux client and a braid client (this
// package's Client) each open 100 streams at once to one server built
// with this package on one listener; every stream echoes correctly.
func TestMixedFleet(t *testing.T) {
	ln := listener(t)
	sessions := make(chan *yamux.Session, 2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		echoServer(ln, quiet(), sessions)
	}()
	defer func() {
		ln.Close()
		<-done
	}()

	hc, err := hyamux.Client(dial(t, ln.Addr().String()), hquiet())
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	bc, err := yamux.Client(dial(t, ln.Addr().String()), quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()

	var wg sync.WaitGroup
	wg.Go(func() { t.Run("yamux-client", func(t *testing.T) { echoStreams(t, hc, 100) }) })
	wg.Go(func() { t.Run("braid-client", func(t *testing.T) { echoStreams(t, bc, 100) }) })
	wg.Wait()

	if p := bc.Protocol(); p != yamux.ProtocolBraid {
		t.Errorf("braid client's session speaks %v", p)
	}
	got := map[yamux.Protocol]int{}
	for range 2 {
		s := <-sessions
		got[s.Protocol()]++
	}
	if got[yamux.ProtocolBraid] != 1 || got[yamux.ProtocolYamux] != 1 {
		t.Errorf("server sessions by protocol: %v; want one braid, one yamux", got)
	}
}

// TestClientAgainstYamuxServer: this package's Client with ProtocolYamux
// against a real hashicorp/yamux server, 100 streams.
func TestClientAgainstYamuxServer(t *testing.T) {
	ln := listener(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		defer wg.Wait()
		var all []*hyamux.Session
		defer func() {
			for _, s := range all {
				s.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, _ := hyamux.Server(c, hquiet())
			all = append(all, s)
			wg.Go(func() {
				for {
					st, err := s.Accept()
					if err != nil {
						return
					}
					go func() {
						io.Copy(st, st)
						st.Close()
					}()
				}
			})
		}
	}()
	defer func() {
		ln.Close()
		<-done
	}()
	cfg := quiet()
	cfg.Protocol = yamux.ProtocolYamux
	c, err := yamux.Client(dial(t, ln.Addr().String()), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoStreams(t, c, 100)
	if p := c.Protocol(); p != yamux.ProtocolYamux {
		t.Errorf("Protocol() = %v, want yamux", p)
	}
	if _, err := c.Ping(); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// TestSilentClientDoesNotStall: one client connects and sends nothing;
// a second client is served at once (the issue measured 9.96 s with
// session.Server in the loop; the goal is < 50 ms, required < 1 s here
// to stay robust on a loaded machine).
func TestSilentClientDoesNotStall(t *testing.T) {
	addr := startEchoServer(t, quiet())
	silent := dial(t, addr)
	defer silent.Close()

	start := time.Now()
	c, err := yamux.Client(dial(t, addr), quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := c.Open()
	if err != nil {
		t.Fatal(err)
	}
	st.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := st.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(st, buf); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("second client served %v after connecting, with a silent client ahead of it", took)
	if took > time.Second {
		t.Errorf("second client served after %v; want well under 1 s (goal 50 ms)", took)
	}
}

// BenchmarkServedBehindSilentClient: one op is a client connecting,
// starting a session and getting one echo from an accept loop that has
// a silent client connected.
func BenchmarkServedBehindSilentClient(b *testing.B) {
	addr := startEchoServer(b, quiet())
	silent := dial(b, addr)
	defer silent.Close()
	buf := make([]byte, 1)
	for b.Loop() {
		c, err := yamux.Client(dial(b, addr), quiet())
		if err != nil {
			b.Fatal(err)
		}
		st, err := c.Open()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Write([]byte{1}); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(st, buf); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// pair returns a client and server session of this package over
// loopback TCP (braid wire).
func pair(t *testing.T, ccfg, scfg *yamux.Config) (*yamux.Session, *yamux.Session) {
	t.Helper()
	ln := listener(t)
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	cc := dial(t, ln.Addr().String())
	sc := <-ch
	if sc == nil {
		t.Fatal("accept failed")
	}
	s, err := yamux.Server(sc, scfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := yamux.Client(cc, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		s.Close()
	})
	return c, s
}

func streams(t *testing.T, c, s *yamux.Session) (*yamux.Stream, *yamux.Stream) {
	t.Helper()
	a, err := c.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	b, err := s.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(b, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// TestCloseIsHalfClose: yamux's idiom s.Close(); io.ReadAll(s) gets the
// reply, and the stream is released once both sides closed.
func TestCloseIsHalfClose(t *testing.T) {
	c, s := pair(t, quiet(), quiet())
	a, b := streams(t, c, s)
	a.Write([]byte("question"))
	a.Close()
	if _, err := a.Write([]byte("x")); err != yamux.ErrStreamClosed {
		t.Errorf("Write after Close = %v, want ErrStreamClosed", err)
	}
	b.SetDeadline(time.Now().Add(5 * time.Second))
	q, err := io.ReadAll(b)
	if err != nil || string(q) != "question" {
		t.Fatalf("server read %q, %v", q, err)
	}
	b.Write([]byte("answer"))
	b.Close()
	a.SetDeadline(time.Now().Add(5 * time.Second))
	ans, err := io.ReadAll(a)
	if err != nil || string(ans) != "answer" {
		t.Fatalf("client read %q, %v after its Close; want the answer", ans, err)
	}
	if !poll(2*time.Second, func() bool { return c.NumStreams() == 0 && s.NumStreams() == 0 }) {
		t.Errorf("NumStreams = %d, %d after both sides closed", c.NumStreams(), s.NumStreams())
	}
}

// TestStreamCloseTimeout: a stream whose peer never closes its side is
// reset StreamCloseTimeout after this side's Close.
func TestStreamCloseTimeout(t *testing.T) {
	cfg := quiet()
	cfg.StreamCloseTimeout = 50 * time.Millisecond
	c, s := pair(t, cfg, quiet())
	a, b := streams(t, c, s)
	a.Close()
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(b); err != nil {
		t.Fatalf("peer reading to EOF: %v", err)
	}
	// b never closes: a is reset, and b's Write then fails.
	if !poll(5*time.Second, func() bool { return c.NumStreams() == 0 }) {
		t.Fatalf("stream still counted %v after StreamCloseTimeout", 5*time.Second)
	}
	if !poll(5*time.Second, func() bool {
		_, err := b.Write([]byte("x"))
		return err == yamux.ErrConnectionReset
	}) {
		t.Error("peer's Write never failed with ErrConnectionReset")
	}
}

func poll(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// TestErrors: errors are yamux's variables, comparable with ==, and
// also what the standard library understands.
func TestErrors(t *testing.T) {
	c, s := pair(t, quiet(), quiet())
	a, _ := streams(t, c, s)

	a.SetReadDeadline(time.Now().Add(-time.Second))
	_, err := a.Read(make([]byte, 1))
	var ne net.Error
	if err != yamux.ErrTimeout || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("Read past deadline = %v; want ErrTimeout, os.ErrDeadlineExceeded, Timeout()", err)
	}
	a.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := a.Write([]byte("x")); err != yamux.ErrTimeout {
		t.Errorf("Write past deadline = %v; want ErrTimeout", err)
	}
	a.SetDeadline(time.Time{})

	if err := s.GoAway(); err != nil {
		t.Fatal(err)
	}
	if !poll(5*time.Second, func() bool {
		st, err := c.OpenStream()
		if st != nil {
			st.Close()
		}
		return err == yamux.ErrRemoteGoAway
	}) {
		t.Error("OpenStream after the peer's GoAway never failed with ErrRemoteGoAway")
	}

	acc := make(chan error, 1)
	go func() { _, err := c.Accept(); acc <- err }()
	rd := make(chan error, 1)
	go func() { _, err := a.Read(make([]byte, 1)); rd <- err }()
	c.Close()
	if err := <-acc; err != yamux.ErrSessionShutdown || !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on closed session = %v; want ErrSessionShutdown (net.ErrClosed)", err)
	}
	if err := <-rd; err != yamux.ErrSessionShutdown {
		t.Errorf("Read on closed session = %v; want ErrSessionShutdown", err)
	}
	if _, err := c.Open(); err != yamux.ErrSessionShutdown {
		t.Errorf("Open on closed session = %v; want ErrSessionShutdown", err)
	}
	if _, err := c.Ping(); err != yamux.ErrSessionShutdown {
		t.Errorf("Ping on closed session = %v; want ErrSessionShutdown", err)
	}
	if !c.IsClosed() {
		t.Error("IsClosed false after Close")
	}
	select {
	case <-c.CloseChan():
	default:
		t.Error("CloseChan open after Close")
	}
}

// TestStreamOpenTimeout: an Open that waits for a full peer backlog
// fails with ErrTimeout after StreamOpenTimeout; the session goes on.
func TestStreamOpenTimeout(t *testing.T) {
	ccfg := quiet()
	ccfg.StreamOpenTimeout = 100 * time.Millisecond
	scfg := quiet()
	scfg.AcceptBacklog = 2
	c, s := pair(t, ccfg, scfg)
	for i := range 2 {
		if _, err := c.OpenStream(); err != nil {
			t.Fatalf("Open %d within the backlog: %v", i, err)
		}
	}
	start := time.Now()
	_, err := c.OpenStream()
	if err != yamux.ErrTimeout {
		t.Fatalf("Open beyond the peer's backlog = %v, want ErrTimeout", err)
	}
	if took := time.Since(start); took < 90*time.Millisecond || took > 5*time.Second {
		t.Errorf("Open failed after %v with StreamOpenTimeout 100ms", took)
	}
	if _, err := s.Accept(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ping(); err != nil {
		t.Errorf("session unusable after an Open timed out: %v", err)
	}
}

// TestFailedHandshake: Server returns at once; the first Accept returns
// the handshake's error, and the session is closed.
func TestFailedHandshake(t *testing.T) {
	cfg := quiet()
	cfg.HandshakeTimeout = time.Second
	ln := listener(t)
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	cc := dial(t, ln.Addr().String())
	defer cc.Close()
	s, err := yamux.Server(<-ch, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cc.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	_, err = s.Accept()
	if err == nil || !strings.Contains(err.Error(), "handshake") {
		t.Errorf("Accept after an HTTP request = %v; want a handshake error", err)
	}
	if _, err2 := s.Open(); err2 == nil || err2.Error() != err.Error() {
		t.Errorf("Open = %v; want the same error as Accept", err2)
	}
	select {
	case <-s.CloseChan():
	case <-time.After(5 * time.Second):
		t.Error("session not closed after its handshake failed")
	}
}

// TestClientHintsAtYamuxServer: a braid client reaching a yamux server
// is told what to set.
func TestClientHintsAtYamuxServer(t *testing.T) {
	ln := listener(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s, _ := hyamux.Server(c, hquiet())
		<-s.CloseChan() // the braid HELLO is an invalid yamux version
	}()
	defer func() { ln.Close(); <-done }()
	c, err := yamux.Client(dial(t, ln.Addr().String()), quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Open()
	if err == nil || !strings.Contains(err.Error(), "ProtocolYamux") {
		t.Errorf("Open against a yamux server = %v; want a hint to set ProtocolYamux", err)
	}
}

// TestCloseDuringStart: Close while the server waits for the first byte
// returns at once and leaves nothing running.
func TestCloseDuringStart(t *testing.T) {
	ln := listener(t)
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	cc := dial(t, ln.Addr().String())
	defer cc.Close()
	s, err := yamux.Server(<-ch, quiet())
	if err != nil {
		t.Fatal(err)
	}
	acc := make(chan error, 1)
	go func() { _, err := s.Accept(); acc <- err }()
	start := time.Now()
	s.Close()
	if took := time.Since(start); took > time.Second {
		t.Errorf("Close took %v", took)
	}
	if err := <-acc; err != yamux.ErrSessionShutdown {
		t.Errorf("Accept = %v, want ErrSessionShutdown", err)
	}
}

// TestSilentYamuxClientServedAfterHandshakeTimeout: the documented limit
// of detection. A yamux client that waits for the server to open the
// first stream is served once HandshakeTimeout has passed without a
// byte from it.
func TestSilentYamuxClientServedAfterHandshakeTimeout(t *testing.T) {
	cfg := quiet()
	cfg.HandshakeTimeout = 200 * time.Millisecond
	ln := listener(t)
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	hc, err := hyamux.Client(dial(t, ln.Addr().String()), hquiet())
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	s, err := yamux.Server(<-ch, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	go func() {
		st, err := hc.Accept()
		if err == nil {
			io.Copy(st, st)
			st.Close()
		}
	}()
	start := time.Now()
	st, err := s.Open()
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	st.SetDeadline(time.Now().Add(5 * time.Second))
	st.Write([]byte("ok"))
	st.Close()
	got, err := io.ReadAll(st)
	if err != nil || string(got) != "ok" {
		t.Fatalf("echo from the yamux client: %q, %v", got, err)
	}
	if s.Protocol() != yamux.ProtocolYamux {
		t.Errorf("Protocol() = %v, want yamux", s.Protocol())
	}
	if took < 150*time.Millisecond {
		t.Errorf("Open returned after %v, before HandshakeTimeout", took)
	}
	t.Logf("server's first Open to a silent yamux client returned after %v (HandshakeTimeout %v)", took, cfg.HandshakeTimeout)
}

// TestReadWriteCloser: a session over two io.Pipes (not a net.Conn):
// braid runs without deadlines, addresses are placeholders.
func TestReadWriteCloser(t *testing.T) {
	type rwc struct {
		io.Reader
		io.WriteCloser
	}
	r1, w1 := io.Pipe()
	r2, w2 := io.Pipe()
	a := &rwc{r1, w2}
	b := &rwc{r2, w1}
	c, err := yamux.Client(a, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := yamux.Server(b, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	go serveEcho(s)
	echoStreams(t, c, 10)
	if got := c.LocalAddr().String(); got != "yamux:local" {
		t.Errorf("LocalAddr = %q", got)
	}
	if got := s.RemoteAddr().String(); got != "yamux:remote" {
		t.Errorf("RemoteAddr = %q", got)
	}
	if s.Protocol() != yamux.ProtocolBraid {
		t.Errorf("Protocol() = %v", s.Protocol())
	}
	if _, err := c.Ping(); err != nil {
		t.Errorf("Ping: %v", err)
	}
	// Deadlines on streams still work (braid's own timers).
	st, err := c.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	st.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := st.Read(make([]byte, 1)); err != yamux.ErrTimeout {
		t.Errorf("Read past deadline = %v", err)
	}
}

// TestVerifyConfig: yamux's checks, with clear errors.
func TestVerifyConfig(t *testing.T) {
	for name, mod := range map[string]func(*yamux.Config){
		"backlog":   func(c *yamux.Config) { c.AcceptBacklog = 0 },
		"keepalive": func(c *yamux.Config) { c.KeepAliveInterval = 0 },
		"window":    func(c *yamux.Config) { c.MaxStreamWindowSize = 1000 },
		"both logs": func(c *yamux.Config) { c.Logger = nil; c.LogOutput = io.Discard; c.Logger = testLogger{} },
		"no log":    func(c *yamux.Config) { c.LogOutput = nil },
		"protocol":  func(c *yamux.Config) { c.Protocol = 9 },
	} {
		cfg := yamux.DefaultConfig()
		mod(cfg)
		if err := yamux.VerifyConfig(cfg); err == nil {
			t.Errorf("%s: VerifyConfig accepted %+v", name, cfg)
		}
		if _, err := yamux.Server(nopRWC{}, cfg); err == nil {
			t.Errorf("%s: Server accepted an invalid config", name)
		}
	}
	if err := yamux.VerifyConfig(yamux.DefaultConfig()); err != nil {
		t.Errorf("DefaultConfig: %v", err)
	}
}

type testLogger struct{}

func (testLogger) Print(...interface{})          {}
func (testLogger) Printf(string, ...interface{}) {}
func (testLogger) Println(...interface{})        {}

type nopRWC struct{}

func (nopRWC) Read([]byte) (int, error)    { return 0, io.EOF }
func (nopRWC) Write(p []byte) (int, error) { return len(p), nil }
func (nopRWC) Close() error                { return nil }

// TestOpenStreamWithContext: an Open waiting for room in the peer's
// backlog gives up with its context, leaving no stream behind.
func TestOpenStreamWithContext(t *testing.T) {
	scfg := quiet()
	scfg.AcceptBacklog = 1
	c, s := pair(t, quiet(), scfg)
	if _, err := c.OpenStream(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.OpenStreamWithContext(ctx); err != context.DeadlineExceeded {
		t.Fatalf("OpenStreamWithContext beyond the backlog = %v, want context.DeadlineExceeded", err)
	}
	if _, err := s.Accept(); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if st, err := s.AcceptStreamWithContext(ctx2); err != context.DeadlineExceeded {
		t.Errorf("second Accept = %v, %v; the abandoned Open left a stream behind", st, err)
	}
}
