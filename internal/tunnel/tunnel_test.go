package tunnel_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/proxy"

	"github.com/braidmux/braid/internal/auth"
	"github.com/braidmux/braid/internal/tunnel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testToken = "0123456789abcdef-test-token"

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type testServer struct {
	*tunnel.Server
	addr string
	done chan error
}

func startServer(t *testing.T, cfg tunnel.ServerConfig) *testServer {
	t.Helper()
	return startServerAt(t, "127.0.0.1:0", cfg)
}

// startServerAt is startServer listening on addr.
func startServerAt(t *testing.T, addr string, cfg tunnel.ServerConfig) *testServer {
	t.Helper()
	if cfg.Users == nil {
		u, err := auth.SingleToken(testToken)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Users = u
	}
	srv, err := tunnel.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: srv, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-ts.done; !errors.Is(err, tunnel.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ts
}

// cutDialer dials addr and remembers the connections so a test can cut
// the link under a running client.
type cutDialer struct {
	addr  string
	mu    sync.Mutex
	conns []net.Conn
	dials int
}

func (d *cutDialer) dial(ctx context.Context) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.conns = append(d.conns, c)
	d.dials++
	d.mu.Unlock()
	return c, nil
}

func (d *cutDialer) cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		c.Close()
	}
	d.conns = nil
}

type testClient struct {
	*tunnel.Client
	cancel context.CancelFunc
	done   chan error
}

func startClient(t *testing.T, cfg tunnel.ClientConfig) *testClient {
	t.Helper()
	if cfg.Token == "" {
		cfg.Token = testToken
	}
	if cfg.ReconnectMax == 0 {
		cfg.ReconnectMax = 50 * time.Millisecond
	}
	cl, err := tunnel.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tc := &testClient{Client: cl, cancel: cancel, done: make(chan error, 1)}
	go func() { tc.done <- cl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-tc.done:
		case <-time.After(15 * time.Second):
			t.Error("client Run did not return after cancel")
		}
	})
	return tc
}

// listen returns forward i's listening address once it is known.
func (c *testClient) listen(t *testing.T, i int) string {
	t.Helper()
	var addr string
	waitFor(t, "forward to be ready", 10*time.Second, func() bool {
		addr = c.Snapshot().Forwards[i].Listen
		return addr != ""
	})
	return addr
}

func mustForward(t *testing.T, k tunnel.Kind, spec string) tunnel.Forward {
	t.Helper()
	f, err := tunnel.ParseForward(k, spec)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// tcpServer serves each connection to 127.0.0.1:0 with handle (which
// must return once the connection is closed) until the test ends.
func tcpServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	return tcpServerOn(t, "127.0.0.1:0", handle)
}

// tcpServerOn is tcpServer listening on addr.
func tcpServerOn(t *testing.T, addr string, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// echoTarget answers each connection with what it reads, half-closing
// after the client's FIN.
func echoTarget(t *testing.T) string { return tcpServer(t, echoConn) }

// echoConn echoes c until its FIN, then half-closes. A plain copy loop:
// io.Copy would splice through pipes the runtime caches, which the fd
// count of the leak test would see.
func echoConn(c net.Conn) {
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			c.Write(buf[:n])
		}
		if err != nil {
			break
		}
	}
	c.(*net.TCPConn).CloseWrite()
}

// hashTarget reads until EOF, then answers with the SHA-256 of what it
// read and closes: a request that relies on half-close.
func hashTarget(t *testing.T) string {
	return tcpServer(t, func(c net.Conn) {
		h := sha256.New()
		if _, err := io.Copy(h, c); err != nil {
			return
		}
		c.Write(h.Sum(nil))
	})
}

func echoOnce(t *testing.T, addr string, msg []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("echo through %s: %v", addr, err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo through %s: got %q, want %q", addr, got, msg)
	}
}

func TestLocalForwardHalfClose(t *testing.T) {
	srv := startServer(t, tunnel.ServerConfig{})
	target := hashTarget(t)
	d := &cutDialer{addr: srv.addr}
	cl := startClient(t, tunnel.ClientConfig{Dial: d.dial, Forwards: []tunnel.Forward{
		mustForward(t, tunnel.Local, "0:"+target),
	}})
	addr := cl.listen(t, 0)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	payload := bytes.Repeat([]byte("braid half-close "), 1<<16) // 1 MiB
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the answer after CloseWrite: %v", err)
	}
	want := sha256.Sum256(payload)
	if !bytes.Equal(got, want[:]) {
		t.Fatalf("answer %x, want %x", got, want)
	}
	s := cl.Snapshot().Forwards[0]
	if s.BytesUp != uint64(len(payload)) || s.BytesDown != 32 {
		t.Errorf("forward counted up %d down %d, want %d and 32", s.BytesUp, s.BytesDown, len(payload))
	}
}

func TestRefusedTargetResetsLocal(t *testing.T) {
	srv := startServer(t, tunnel.ServerConfig{})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close() // nothing listens there now
	d := &cutDialer{addr: srv.addr}
	var logs syncBuffer
	cl := startClient(t, tunnel.ClientConfig{Dial: d.dial, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Forwards: []tunnel.Forward{mustForward(t, tunnel.Local, "0:"+closed)}})
	expectNoData(t, cl.listen(t, 0))
	waitFor(t, "failure to be counted", 5*time.Second, func() bool { return cl.Snapshot().Forwards[0].Failed == 1 })
	// The client learns why, not just that the stream was reset.
	waitFor(t, "the reason in the client's log", 5*time.Second, func() bool {
		return strings.Contains(logs.String(), "server cannot connect to "+closed)
	})
}

// syncBuffer is a bytes.Buffer safe for concurrent use (a log sink).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestRemoteForward(t *testing.T) {
	srv := startServer(t, tunnel.ServerConfig{})
	target := hashTarget(t)
	d := &cutDialer{addr: srv.addr}
	cl := startClient(t, tunnel.ClientConfig{Dial: d.dial, Forwards: []tunnel.Forward{
		mustForward(t, tunnel.Remote, "0:"+target),
	}})
	c, err := net.Dial("tcp", cl.listen(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	payload := bytes.Repeat([]byte{7}, 1<<20)
	c.Write(payload)
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	want := sha256.Sum256(payload)
	if err != nil || !bytes.Equal(got, want[:]) {
		t.Fatalf("-R answer %x, %v", got, err)
	}
	// Up is client side to server side: for -R, the target's answer.
	waitFor(t, "the client's counters", 5*time.Second, func() bool {
		f := cl.Snapshot().Forwards[0]
		return f.BytesDown == 1<<20 && f.BytesUp == 32 && f.Open == 0 && f.Total == 1
	})
	var found bool
	waitFor(t, "the server's counters", 5*time.Second, func() bool {
		for _, f := range srv.Snapshot().Forwards {
			found = found || f.Kind == "remote" && f.Total == 1 && f.BytesDown == 1<<20 && f.BytesUp == 32
		}
		return found
	})
}

func TestRemoteBindOnAllInterfacesRefusedByDefault(t *testing.T) {
	srv := startServer(t, tunnel.ServerConfig{})
	d := &cutDialer{addr: srv.addr}
	cl := startClient(t, tunnel.ClientConfig{Dial: d.dial, Forwards: []tunnel.Forward{
		mustForward(t, tunnel.Remote, "*:0:127.0.0.1:1"),
		mustForward(t, tunnel.Remote, "0:127.0.0.1:1"),
	}})
	cl.listen(t, 1) // the loopback one is bound
	if l := cl.Snapshot().Forwards[0].Listen; l != "" {
		t.Fatalf("-R on every interface was bound at %s; the default allows loopback only", l)
	}
}

func TestPolicyDeniesLocal(t *testing.T) {
	target := echoTarget(t)
	_, port, _ := net.SplitHostPort(target)
	rule, err := auth.ParseRule("L:127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, tunnel.ServerConfig{Policy: &auth.Policy{Global: []auth.Rule{rule}}})
	d := &cutDialer{addr: srv.addr}
	cl := startClient(t, tunnel.ClientConfig{Dial: d.dial, Forwards: []tunnel.Forward{
		mustForward(t, tunnel.Local, "0:127.0.0.1:"+port),
	}})
	expectNoData(t, cl.listen(t, 0))
}

func TestWrongTokenEndsRun(t *testing.T) {
	srv := startServer(t, tunnel.ServerConfig{})
	d := &cutDialer{addr: srv.addr}
	cl := startClient(t, tunnel.ClientConfig{Dial: d.dial, Token: "not-the-token-at-all"})
	select {
	case err := <-cl.done:
		var ae *tunnel.AuthError
		if !errors.As(err, &ae) || !strings.Contains(err.Error(), "authentication failed") {
			t.Fatalf("Run returned %v, want an *AuthError saying authentication failed", err)
		}
		cl.done <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("client with a wrong token kept running")
	}
	if n := srv.Snapshot().AuthFailures; n != 1 {
		t.Errorf("server counted %d auth failures, want 1", n)
	}
}

func TestSilentConnectionClosedAtAuthTimeout(t *testing.T) {
	srv := startServer(t, tunnel.ServerConfig{AuthTimeout: 200 * time.Millisecond, MaxUnauthenticated: 2})
	// Two silent connections fill the unauthenticated slots; a third is
	// closed at once; after the timeout all are closed.
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", srv.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("silent connection %d still open after 5 s (auth timeout 200 ms)", i)
		}
	}
	waitFor(t, "unauthenticated count to return to 0", 5*time.Second, func() bool {
		return srv.Snapshot().Unauthenticated == 0
	})
}

// expectNoData connects to addr, sends a little, and checks the tunnel
// refuses the connection: a reset or close with no data, never a hang.
// A reset can arrive before connect returns.
func expectNoData(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.ECONNRESET) {
			return
		}
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("hello"))
	n, err := c.Read(make([]byte, 16))
	if err == nil {
		t.Fatalf("refused forward delivered %d bytes", n)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("refused forward hung instead of resetting the connection")
	}
}

func fdList() []string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		out = append(out, e.Name()+"="+l)
	}
	return out
}

// fds counts this process's open file descriptors.
func fds(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// TestNoLeaksAcrossReconnects cuts the link 100 times; each time the
// client reconnects, an -L and an -R connection carry an echo and a
// refused forward fails. Goroutines and file descriptors return to
// where they started.
func TestNoLeaksAcrossReconnects(t *testing.T) {
	target := echoTarget(t)
	rule, _ := auth.ParseRule("LR:127.0.0.1:*")
	srv := startServer(t, tunnel.ServerConfig{Policy: &auth.Policy{Global: []auth.Rule{rule}}})
	d := &cutDialer{addr: srv.addr}
	cl := startClient(t, tunnel.ClientConfig{Dial: d.dial, Forwards: []tunnel.Forward{
		mustForward(t, tunnel.Local, "0:"+target),
		mustForward(t, tunnel.Remote, "0:"+target),
		mustForward(t, tunnel.Local, "0:192.0.2.1:80"), // denied by the rule
	}})
	local := cl.listen(t, 0)
	cl.listen(t, 1)
	echoOnce(t, local, []byte("warm up"))
	runtime.GC()
	g0, f0 := runtime.NumGoroutine(), fds(t)
	const rounds = 100
	for i := range rounds {
		d.cut()
		waitFor(t, "reconnect", 10*time.Second, func() bool {
			return cl.Snapshot().Reconnects == uint64(i+1) && cl.Snapshot().Connected
		})
		echoOnce(t, local, []byte("after reconnect"))
		echoOnce(t, cl.listen(t, 1), []byte("-R after reconnect"))
		expectNoData(t, cl.listen(t, 2))
	}
	waitFor(t, "server to see one session", 10*time.Second, func() bool { return srv.Snapshot().Sessions == 1 })
	var g, f int
	deadline := time.Now().Add(10 * time.Second)
	for {
		g, f = runtime.NumGoroutine(), fds(t)
		if g <= g0 && f <= f0 {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("after %d reconnects: goroutines %d (start %d), fds %d (start %d): %v\n%s", rounds, g, g0, f, f0, fdList(), buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("after %d reconnects: goroutines %d (start %d), fds %d (start %d)", rounds, g, g0, f, f0)
}

// TestReconnectReplacesStaleSession: the link dies without either side
// noticing (the server still holds the old session and its -R port);
// the reconnecting client gets the same fixed -R port at once.
func TestReconnectReplacesStaleSession(t *testing.T) {
	target := echoTarget(t)
	srv := startServer(t, tunnel.ServerConfig{KeepAlive: time.Hour, KeepAliveTimeout: time.Hour})
	free, _ := net.Listen("tcp", "127.0.0.1:0")
	port := free.Addr().(*net.TCPAddr).Port
	free.Close()
	// A relay that can drop the link silently: it stops copying but keeps
	// the server side open.
	relay := newBlackholeRelay(t, srv.addr)
	cl := startClient(t, tunnel.ClientConfig{Dial: relay.dial,
		KeepAlive: 50 * time.Millisecond, KeepAliveTimeout: 200 * time.Millisecond,
		Forwards: []tunnel.Forward{mustForward(t, tunnel.Remote, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))+":"+target)}})
	addr := cl.listen(t, 0)
	echoOnce(t, addr, []byte("before"))
	relay.blackhole()
	waitFor(t, "client to reconnect", 10*time.Second, func() bool { return cl.Snapshot().Reconnects >= 1 && cl.Snapshot().Connected })
	if got := cl.listen(t, 0); got != addr {
		t.Fatalf("-R bound at %s after reconnect, want the same %s", got, addr)
	}
	echoOnce(t, addr, []byte("after"))
}

// blackholeRelay relays client connections to a server and can stop
// relaying without closing anything, as a dead link does.
type blackholeRelay struct {
	target string
	mu     sync.Mutex
	holes  []chan struct{}
	wg     sync.WaitGroup
	conns  []net.Conn
}

func newBlackholeRelay(t *testing.T, target string) *blackholeRelay {
	r := &blackholeRelay{target: target}
	t.Cleanup(func() {
		r.mu.Lock()
		for _, c := range r.conns {
			c.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

func (r *blackholeRelay) dial(ctx context.Context) (net.Conn, error) {
	a, b := net.Pipe()
	var nd net.Dialer
	up, err := nd.DialContext(ctx, "tcp", r.target)
	if err != nil {
		return nil, err
	}
	hole := make(chan struct{})
	r.mu.Lock()
	r.holes = append(r.holes, hole)
	r.conns = append(r.conns, b, up)
	r.mu.Unlock()
	cp := func(dst, src net.Conn) {
		defer r.wg.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			select {
			case <-hole:
				// Swallow everything from now on.
				if err != nil {
					return
				}
				continue
			default:
			}
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				dst.Close()
				return
			}
		}
	}
	r.wg.Add(2)
	go cp(up, b)
	go cp(b, up)
	return a, nil
}

func (r *blackholeRelay) blackhole() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.holes {
		close(h)
	}
	r.holes = nil
}

func TestShutdownDrains(t *testing.T) {
	target := hashTarget(t)
	srv := startServer(t, tunnel.ServerConfig{})
	d := &cutDialer{addr: srv.addr}
	cl := startClient(t, tunnel.ClientConfig{Dial: d.dial, Forwards: []tunnel.Forward{mustForward(t, tunnel.Local, "0:"+target)}})
	c, err := net.Dial("tcp", cl.listen(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("in flight"))
	waitFor(t, "connection to open on the server", 5*time.Second, func() bool { return srv.Snapshot().Forwards[0].Open == 1 })
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	// The live connection still completes.
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	want := sha256.Sum256([]byte("in flight"))
	if err != nil || !bytes.Equal(got, want[:]) {
		t.Fatalf("live connection during shutdown: %x, %v", got, err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestIPv6AndNames: -L listening on ::1 to an IPv6 target, and -D
// (SOCKS5) to an IPv6 literal and to a name the server resolves.
func TestIPv6AndNames(t *testing.T) {
	ln6, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatalf("no IPv6 loopback on this machine: %v", err)
	}
	ln6.Close()
	target6 := tcpServerOn(t, "[::1]:0", echoConn)
	target4 := echoTarget(t)
	_, port4, _ := net.SplitHostPort(target4)
	srv := startServer(t, tunnel.ServerConfig{})
	d := &cutDialer{addr: srv.addr}
	cl := startClient(t, tunnel.ClientConfig{Dial: d.dial, Forwards: []tunnel.Forward{
		mustForward(t, tunnel.Local, "[::1]:0:"+target6),
		mustForward(t, tunnel.Dynamic, "[::1]:0"),
	}})
	l := cl.listen(t, 0)
	if host, _, _ := net.SplitHostPort(l); host != "::1" {
		t.Fatalf("-L [::1]:0:... listens on %s", l)
	}
	echoOnce(t, l, []byte("over IPv6"))

	socks, err := proxy.SOCKS5("tcp", cl.listen(t, 1), nil, &net.Dialer{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, dest := range []string{target6, "localhost:" + port4} {
		c, err := socks.Dial("tcp", dest)
		if err != nil {
			t.Fatalf("SOCKS5 CONNECT %s: %v", dest, err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		msg := []byte("via -D to " + dest)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("SOCKS5 echo via %s: %q, %v", dest, got, err)
		}
		c.Close()
	}
}

// TestChurnHoldsNoMemory opens and closes many connections through -L;
// afterwards the process (client and server in it) holds no memory for
// them: a finished stream must not wait minutes for a close timer.
func TestChurnHoldsNoMemory(t *testing.T) {
	target := echoTarget(t)
	srv := startServer(t, tunnel.ServerConfig{})
	d := &cutDialer{addr: srv.addr}
	cl := startClient(t, tunnel.ClientConfig{Dial: d.dial, Forwards: []tunnel.Forward{mustForward(t, tunnel.Local, "0:"+target)}})
	addr := cl.listen(t, 0)
	churn := func(n int) {
		for range n {
			echoOnce(t, addr, []byte{1})
		}
		waitFor(t, "connections to end", 10*time.Second, func() bool {
			return cl.Snapshot().Forwards[0].Open == 0 && srv.Snapshot().Forwards[0].Open == 0 &&
				srv.Snapshot().Session.OpenStreams <= 1
		})
	}
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	churn(200) // warm up pools and caches
	before := heap()
	const n = 3000
	churn(n)
	after := heap()
	grew := int64(after) - int64(before)
	t.Logf("heap after %d connections: %+d bytes (%d per connection)", n, grew, grew/n)
	if grew > n*300 {
		t.Fatalf("%d finished connections still hold %d bytes of heap (%d each)", n, grew, grew/n)
	}
}

// TestPerClientCaps: a client gets at most MaxForwards -R forwards and
// MaxConns open connections; what is over is refused, the rest works.
func TestPerClientCaps(t *testing.T) {
	target := echoTarget(t)
	srv := startServer(t, tunnel.ServerConfig{MaxForwards: 2, MaxConns: 2})
	d := &cutDialer{addr: srv.addr}
	var logs syncBuffer
	cl := startClient(t, tunnel.ClientConfig{Dial: d.dial, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Forwards: []tunnel.Forward{
			mustForward(t, tunnel.Local, "0:"+target),
			mustForward(t, tunnel.Remote, "0:"+target),
			mustForward(t, tunnel.Remote, "0:"+target),
			mustForward(t, tunnel.Remote, "0:"+target),
		}})
	cl.listen(t, 1)
	cl.listen(t, 2)
	waitFor(t, "the third -R to be refused", 5*time.Second, func() bool {
		return strings.Contains(logs.String(), "at most 2 forwards")
	})
	if l := cl.Snapshot().Forwards[3].Listen; l != "" {
		t.Fatalf("third -R forward bound at %s; the cap is 2", l)
	}

	// Two connections held open use up the connection cap.
	local := cl.listen(t, 0)
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", local)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte("x"))
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	expectNoData(t, local)
	waitFor(t, "the refusal's reason in the client's log", 5*time.Second, func() bool {
		return strings.Contains(logs.String(), "too many open connections")
	})
	// Closing one makes room again.
	held[0].Close()
	waitFor(t, "room for a connection", 5*time.Second, func() bool { return srv.Snapshot().Forwards[0].Open < 2 })
	echoOnce(t, local, []byte("room again"))
}
