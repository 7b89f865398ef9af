package main_test

// End-to-end tests of the braid tunnel binary, written against the CLI
// contract: every test builds nothing itself (TestMain builds the binary
// once), runs `braid server` and `braid client` as real processes with
// their own HOME / XDG directories and token, and talks to targets that run
// inside the test process on 127.0.0.1. Addresses are never guessed: every
// listener uses port 0 and the tests read the actual address from the log
// lines the contract fixes ("server listening", "forward ready").

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/proxy"
)

// braidBin is the binary built once by TestMain.
var braidBin string

const (
	// logWait bounds every wait for a log line.
	logWait = 15 * time.Second
	// bigSize is the size of the acceptance downloads.
	bigSize = 64 << 20
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "braid-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: cannot create temp dir: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	braidBin = filepath.Join(dir, "braid")

	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		if goTool, err = exec.LookPath("go"); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: no go tool found (GOROOT/bin/go or PATH): %v\n", err)
			return 1
		}
	}
	args := []string{"build", "-o", braidBin}
	if os.Getenv("BRAID_E2E_RACE") != "" {
		args = append(args, "-race")
	}
	args = append(args, ".")
	build := exec.Command(goTool, args...)
	out, err := build.CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAILED to build the braid binary (%s %s): %v\n%s\n",
			goTool, strings.Join(args, " "), err, out)
		return 1
	}
	return m.Run()
}

// parallelSem keeps at most three end-to-end tests running at once: each
// test runs two or three processes and moves tens of MiB.
var parallelSem = make(chan struct{}, 3)

func parallel(t *testing.T) {
	t.Helper()
	t.Parallel()
	parallelSem <- struct{}{}
	t.Cleanup(func() { <-parallelSem })
}

// ---------------------------------------------------------------------------
// Processes and their logs.

// syncBuffer is an io.Writer safe for one writer and many readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logLine is one complete stderr line of a braid process, with its slog
// text key=value pairs parsed.
type logLine struct {
	raw string
	kv  map[string]string
}

func (l logLine) String() string { return l.raw }

// parseLogfmt parses slog's text format: key=value pairs separated by
// spaces, values either bare or Go-quoted. A line that is a JSON object
// (--log-format json) is decoded as one, values formatted with fmt.Sprint.
func parseLogfmt(s string) map[string]string {
	kv := make(map[string]string)
	if strings.HasPrefix(s, "{") {
		var m map[string]any
		if json.Unmarshal([]byte(s), &m) == nil {
			for k, v := range m {
				kv[k] = fmt.Sprint(v)
			}
		}
		return kv
	}
	i := 0
	for i < len(s) {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ' ' {
			i++
		}
		if i >= len(s) || s[i] != '=' {
			continue
		}
		key := s[start:i]
		i++ // '='
		if i < len(s) && s[i] == '"' {
			j := i + 1
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				kv[key] = s[i:]
				return kv
			}
			v, err := strconv.Unquote(s[i : j+1])
			if err != nil {
				v = s[i+1 : j]
			}
			kv[key] = v
			i = j + 1
			continue
		}
		start = i
		for i < len(s) && s[i] != ' ' {
			i++
		}
		kv[key] = s[start:i]
	}
	return kv
}

// proc is one braid process started by a test.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	done   chan struct{} // closed when Wait has returned
}

// lines returns the complete stderr lines written so far.
func (p *proc) lines() []logLine {
	s := p.stderr.String()
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	} else {
		return nil
	}
	var out []logLine
	for _, raw := range strings.Split(s, "\n") {
		out = append(out, logLine{raw: raw, kv: parseLogfmt(raw)})
	}
	return out
}

// mark returns the number of complete stderr lines so far, for waits that
// must only see later lines.
func (p *proc) mark() int { return len(p.lines()) }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitCode is the exit status; only valid after done is closed.
func (p *proc) exitCode() int { return p.cmd.ProcessState.ExitCode() }

func (p *proc) tail() string {
	s := p.stderr.String()
	if len(s) > 8<<10 {
		s = "..." + s[len(s)-8<<10:]
	}
	return s
}

// waitLine polls p's stderr until a line at index >= from satisfies pred,
// up to timeout. It fails the test if the process exits first or the
// deadline passes.
func (p *proc) waitLine(t *testing.T, from int, timeout time.Duration, desc string, pred func(logLine) bool) logLine {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		exited := p.exited() // read before the lines: a final check after exit sees everything
		ls := p.lines()
		for i := from; i < len(ls); i++ {
			if pred(ls[i]) {
				return ls[i]
			}
		}
		if exited {
			t.Fatalf("%s exited (code %d) before logging %s; stderr:\n%s", p.name, p.exitCode(), desc, p.tail())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %s within %v; stderr:\n%s", p.name, desc, timeout, p.tail())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// findLine returns the first line at index >= from satisfying pred, if any.
func (p *proc) findLine(from int, pred func(logLine) bool) (logLine, bool) {
	ls := p.lines()
	for i := from; i < len(ls); i++ {
		if pred(ls[i]) {
			return ls[i], true
		}
	}
	return logLine{}, false
}

// waitLog polls p's stderr until re matches a line and returns the
// submatches of the first matching line.
func waitLog(t *testing.T, p *proc, re *regexp.Regexp) []string {
	t.Helper()
	var m []string
	p.waitLine(t, 0, logWait, fmt.Sprintf("a line matching %q", re), func(l logLine) bool {
		m = re.FindStringSubmatch(l.raw)
		return m != nil
	})
	return m
}

// waitExit waits up to timeout for p to exit and returns its exit code.
func (p *proc) waitExit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.exitCode()
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v; stderr:\n%s", p.name, timeout, p.tail())
		return -1
	}
}

func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !p.exited() {
		t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Kill()
	<-p.done
}

// stop is the cleanup of every process: SIGTERM, up to 5 s, SIGKILL, Wait.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func msgIs(msg string) func(logLine) bool {
	return func(l logLine) bool { return l.kv["msg"] == msg }
}

func forwardReady(kind, spec string) func(logLine) bool {
	want := kind + " " + spec
	return func(l logLine) bool {
		return l.kv["msg"] == "forward ready" && strings.TrimSpace(l.kv["forward"]) == want
	}
}

// ---------------------------------------------------------------------------
// Per-test environment.

// harness holds one test's isolated environment: HOME, XDG dirs, token.
type harness struct {
	t      *testing.T
	home   string
	state  string
	config string
	token  string
	procs  []*proc
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{
		t:      t,
		home:   t.TempDir(),
		state:  t.TempDir(),
		config: t.TempDir(),
		token:  randomToken(t),
	}
	return h
}

func randomToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// env returns the process environment: the test's own, without any
// BRAID_* variable, plus HOME, XDG dirs and BRAID_TOKEN. Each extra entry
// is KEY=VALUE (set, overriding) or -KEY (removed).
func (h *harness) env(extra ...string) []string {
	drop := map[string]bool{}
	set := []string{
		"HOME=" + h.home,
		"XDG_STATE_HOME=" + h.state,
		"XDG_CONFIG_HOME=" + h.config,
		"BRAID_TOKEN=" + h.token,
	}
	for _, e := range extra {
		if k, ok := strings.CutPrefix(e, "-"); ok {
			drop[k] = true
			continue
		}
		set = append(set, e)
	}
	var out []string
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		if k == "HOME" || k == "XDG_STATE_HOME" || k == "XDG_CONFIG_HOME" || strings.HasPrefix(k, "BRAID_") {
			continue
		}
		out = append(out, e)
	}
	for _, e := range set {
		k, _, _ := strings.Cut(e, "=")
		if !drop[k] {
			out = append(out, e)
		}
	}
	return out
}

// start runs the braid binary with args; the process is stopped in
// t.Cleanup, and its stderr logged if the test failed.
func (h *harness) start(name string, env []string, args ...string) *proc {
	t := h.t
	t.Helper()
	if env == nil {
		env = h.env()
	}
	p := &proc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(braidBin, args...)
	p.cmd.Env = env
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if strings.Contains(p.stderr.String(), "WARNING: DATA RACE") {
			t.Errorf("%s (built with BRAID_E2E_RACE=1) reported a data race", p.name)
		}
		if t.Failed() {
			t.Logf("---- %s (%s) stderr:\n%s", p.name, strings.Join(args, " "), p.stderr.String())
		}
	})
	h.procs = append(h.procs, p)
	return p
}

// run runs the binary to completion (bounded by 30 s) and returns its
// stdout, stderr and exit code.
func (h *harness) run(stdin string, env []string, args ...string) (string, string, int) {
	t := h.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, braidBin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("braid %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// startServer starts `braid server --listen 127.0.0.1:0 args...` and
// returns it with its listen address and fingerprint.
func (h *harness) startServer(env []string, args ...string) (p *proc, addr, fp string) {
	h.t.Helper()
	all := append([]string{"server", "--listen", "127.0.0.1:0", "--drain-timeout", "1s"}, args...)
	return h.startServerArgs(env, all...)
}

// startServerArgs starts braid with exactly args and waits for "server listening".
func (h *harness) startServerArgs(env []string, args ...string) (p *proc, addr, fp string) {
	h.t.Helper()
	if env == nil {
		env = h.env()
	}
	p = h.start("server", env, args...)
	l := p.waitLine(h.t, 0, logWait, `msg="server listening"`, msgIs("server listening"))
	addr, fp = l.kv["addr"], l.kv["fingerprint"]
	if addr == "" || !strings.HasPrefix(fp, "SHA256:") {
		h.t.Fatalf(`"server listening" line lacks addr= or fingerprint=SHA256:...: %s`, l)
	}
	return p, addr, fp
}

// startClient starts `braid client --server addr args...`.
func (h *harness) startClient(env []string, addr string, args ...string) *proc {
	h.t.Helper()
	if env == nil {
		env = h.env()
	}
	all := append([]string{"client", "--server", addr, "--drain-timeout", "1s", "--reconnect-max", "1s"}, args...)
	return h.start("client", env, all...)
}

// waitConnected waits for a "connected" line after from and checks server=.
func waitConnected(t *testing.T, c *proc, from int, addr string, timeout time.Duration) {
	t.Helper()
	l := c.waitLine(t, from, timeout, "msg=connected", msgIs("connected"))
	if got := l.kv["server"]; got != addr {
		t.Fatalf("connected line names server=%q, want %q: %s", got, addr, l)
	}
}

// waitReady waits for the "forward ready" line of kind+spec after from and
// returns its listen= address.
func waitReady(t *testing.T, c *proc, from int, kind, spec string) string {
	t.Helper()
	l := c.waitLine(t, from, logWait, fmt.Sprintf(`msg="forward ready" forward="%s %s"`, kind, spec), forwardReady(kind, spec))
	a := l.kv["listen"]
	if _, _, err := net.SplitHostPort(a); err != nil {
		t.Fatalf("forward ready line has no usable listen= address: %s", l)
	}
	return a
}

// ---------------------------------------------------------------------------
// Targets inside the test process.

// dataServer serves /data?size=N&seed=S: N deterministic pseudo-random
// bytes (ChaCha8 seeded by S), generated while sending.
type dataServer struct {
	srv  *httptest.Server
	port string
}

func chachaSeed(seed uint64) [32]byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	copy(s[8:], "braid-e2e-download-stream")
	return s
}

func newDataServer(t *testing.T) *dataServer {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		size, err1 := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
		seed, err2 := strconv.ParseUint(r.URL.Query().Get("seed"), 10, 64)
		if err1 != nil || err2 != nil || size < 0 || size > 1<<30 {
			http.Error(w, "bad size or seed", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = io.CopyN(w, mrand.NewChaCha8(chachaSeed(seed)), size)
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return &dataServer{srv: srv, port: port}
}

var hashCache sync.Map // [2]uint64{seed,size} -> [32]byte

func expectedHash(seed uint64, size int64) [32]byte {
	key := [2]uint64{seed, uint64(size)}
	if v, ok := hashCache.Load(key); ok {
		return v.([32]byte)
	}
	h := sha256.New()
	_, _ = io.CopyN(h, mrand.NewChaCha8(chachaSeed(seed)), size)
	var sum [32]byte
	h.Sum(sum[:0])
	hashCache.Store(key, sum)
	return sum
}

// httpClient returns a client that uses a new connection per request
// (dial, if non-nil, dials every connection).
func httpClient(t *testing.T, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
	tr := &http.Transport{DisableKeepAlives: true, DialContext: dial, Proxy: nil}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

// download GETs http://hostport/data and checks length and SHA-256.
func download(t *testing.T, c *http.Client, hostport string, seed uint64, size int64) {
	t.Helper()
	if err := tryDownload(c, hostport, seed, size); err != nil {
		t.Fatal(err)
	}
}

func tryDownload(c *http.Client, hostport string, seed uint64, size int64) error {
	url := fmt.Sprintf("http://%s/data?size=%d&seed=%d", hostport, size, seed)
	resp, err := c.Get(url)
	if err != nil {
		return fmt.Errorf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %s", url, resp.Status)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: body after %d bytes: %v", url, n, err)
	}
	if n != size {
		return fmt.Errorf("GET %s: got %d bytes, want %d", url, n, size)
	}
	want := expectedHash(seed, size)
	if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
		return fmt.Errorf("GET %s: SHA-256 %x, want %x", url, got, want)
	}
	return nil
}

// tcpTarget is a TCP server on 127.0.0.1:0 running handle per connection.
type tcpTarget struct {
	addr    string
	port    string
	accepts atomic.Int64
}

func newTCPTarget(t *testing.T, handle func(net.Conn)) *tcpTarget {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tt := &tcpTarget{addr: ln.Addr().String()}
	_, tt.port, _ = net.SplitHostPort(tt.addr)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tt.accepts.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return tt
}

// bannerTarget writes a banner to every connection and closes it.
func bannerTarget(t *testing.T) *tcpTarget {
	return newTCPTarget(t, func(c net.Conn) { _, _ = c.Write([]byte("TARGET-BYTES\n")) })
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	return port
}

// newGate returns the address of a TCP relay to upstream that holds every
// connection until open is called (open may be called more than once).
func newGate(t *testing.T, upstream string) (addr string, open func()) {
	t.Helper()
	opened := make(chan struct{})
	var once sync.Once
	open = func() { once.Do(func() { close(opened) }) }
	stop := make(chan struct{})
	tt := newTCPTarget(t, func(c net.Conn) {
		select {
		case <-opened:
		case <-stop:
			return
		}
		u, err := net.DialTimeout("tcp", upstream, 5*time.Second)
		if err != nil {
			return
		}
		defer u.Close()
		done := make(chan struct{})
		go func() {
			_, _ = io.Copy(u, c)
			_ = u.(*net.TCPConn).CloseWrite()
			close(done)
		}()
		_, _ = io.Copy(c, u)
		_ = c.(*net.TCPConn).CloseWrite()
		select {
		case <-done:
		case <-stop:
		}
	})
	// Registered after newTCPTarget's cleanup, so it runs first.
	t.Cleanup(func() { close(stop) })
	return tt.addr, open
}

// expectNoData dials addr and checks the connection ends (EOF or error)
// within timeout with no byte received.
func expectNoData(t *testing.T, addr string, timeout time.Duration) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return // refused outright: no data either
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	b, err := io.ReadAll(c)
	if len(b) > 0 {
		t.Fatalf("connection to %s carried %d bytes (%q): the forward must not reach the target", addr, len(b), b)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection to %s neither closed nor reset within %v", addr, timeout)
	}
}

func spec(bindPort, host, port string) string { return bindPort + ":" + host + ":" + port }

// ---------------------------------------------------------------------------
// 1. Downloads through -L, -R, -D.

func TestDownloadLocal(t *testing.T) {
	parallel(t)
	h := newHarness(t)
	ds := newDataServer(t)
	_, addr, _ := h.startServer(nil)
	sp := spec("0", "127.0.0.1", ds.port)
	c := h.startClient(nil, addr, "-L", sp)
	waitConnected(t, c, 0, addr, logWait)
	listen := waitReady(t, c, 0, "-L", sp)
	download(t, httpClient(t, nil), listen, 1, bigSize)
}

func TestDownloadRemote(t *testing.T) {
	parallel(t)
	h := newHarness(t)
	ds := newDataServer(t)
	_, addr, _ := h.startServer(nil)
	sp := spec("0", "127.0.0.1", ds.port)
	c := h.startClient(nil, addr, "-R", sp)
	waitConnected(t, c, 0, addr, logWait)
	listen := waitReady(t, c, 0, "-R", sp)
	download(t, httpClient(t, nil), listen, 2, bigSize)
}

func TestDownloadDynamic(t *testing.T) {
	parallel(t)
	h := newHarness(t)
	ds := newDataServer(t)
	_, addr, _ := h.startServer(nil)
	c := h.startClient(nil, addr, "-D", "0")
	waitConnected(t, c, 0, addr, logWait)
	listen := waitReady(t, c, 0, "-D", "0")
	d, err := proxy.SOCKS5("tcp", listen, nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	hc := httpClient(t, d.(proxy.ContextDialer).DialContext)
	download(t, hc, net.JoinHostPort("127.0.0.1", ds.port), 3, bigSize)
	// A domain name: x/net/proxy sends it unresolved, the server resolves it.
	download(t, hc, net.JoinHostPort("localhost", ds.port), 4, 8<<20)
}

// ---------------------------------------------------------------------------
// 2. Reconnect after the server restarts with the same state dir and address.

func TestReconnectAfterServerRestart(t *testing.T) {
	parallel(t)
	h := newHarness(t)
	ds := newDataServer(t)
	stateDir := t.TempDir()
	s1, addr, fp1 := h.startServer(nil, "--state-dir", stateDir)

	fixed := freePort(t)
	spR0 := spec("0", "127.0.0.1", ds.port)
	spRF := spec(fixed, "127.0.0.1", ds.port)
	spL := spec("0", "127.0.0.1", ds.port)
	c := h.startClient(nil, addr, "-R", spR0, "-R", spRF, "-L", spL)
	waitConnected(t, c, 0, addr, logWait)
	r0 := waitReady(t, c, 0, "-R", spR0)
	rf := waitReady(t, c, 0, "-R", spRF)
	lAddr := waitReady(t, c, 0, "-L", spL)
	if _, p, _ := net.SplitHostPort(rf); p != fixed {
		t.Fatalf("-R %s is listening on %s, want port %s", spRF, rf, fixed)
	}
	hc := httpClient(t, nil)
	download(t, hc, r0, 10, 1<<20)
	download(t, hc, rf, 11, 1<<20)
	download(t, hc, lAddr, 12, 1<<20)

	mark := c.mark()
	s1.kill(t)
	c.waitLine(t, mark, logWait, "msg=disconnected", msgIs("disconnected"))

	// The same state dir and the same address: the key and the known_hosts
	// entry are reused.
	s2, addr2, fp2 := h.startServerArgs(nil, "server", "--listen", addr, "--state-dir", stateDir, "--drain-timeout", "1s")
	t0 := time.Now()
	_ = s2
	if addr2 != addr {
		t.Fatalf("restarted server listens on %s, want %s", addr2, addr)
	}
	if fp2 != fp1 {
		t.Fatalf("restarted server with the same --state-dir has fingerprint %s, want %s", fp2, fp1)
	}
	waitConnected(t, c, mark, addr, 10*time.Second)
	r0b := waitReady(t, c, mark, "-R", spR0)
	rfb := waitReady(t, c, mark, "-R", spRF)
	if _, p, _ := net.SplitHostPort(rfb); p != fixed {
		t.Fatalf("after reconnect -R %s is listening on %s, want port %s", spRF, rfb, fixed)
	}
	download(t, hc, r0b, 13, 1<<20)
	download(t, hc, rfb, 14, 1<<20)
	download(t, hc, lAddr, 15, 1<<20)
	if el := time.Since(t0); el > 10*time.Second {
		t.Fatalf("-R forwards served again %v after the new server was listening, want < 10s", el)
	}
	if strings.Contains(c.stderr.String(), "server key changed") {
		t.Fatalf("client reported a changed key after a restart with the same state dir:\n%s", c.tail())
	}
	if strings.Contains(c.stderr.String(), "already in use") {
		t.Fatalf("client reported a port in use after the restart:\n%s", c.tail())
	}
}

// ---------------------------------------------------------------------------
// 3. Wrong token.

func TestWrongToken(t *testing.T) {
	parallel(t)
	h := newHarness(t)
	target := bannerTarget(t)
	_, addr, _ := h.startServer(nil)
	// The client reaches the server through a gate that holds its
	// connection until a local connection is waiting for the link.
	gateAddr, open := newGate(t, addr)
	sp := spec("0", "127.0.0.1", target.port)
	start := time.Now()
	c := h.startClient(h.env("BRAID_TOKEN="+randomToken(t)), gateAddr, "-L", sp)

	// The -L listener is up before the link; a connection to it must
	// never get the target's bytes, and must not keep the client from
	// exiting when the token is refused.
	type probeResult struct {
		n   int
		err error
	}
	probe := make(chan probeResult, 1)
	probing := false
	for !c.exited() {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("client with a wrong token still running 10s after start (a local -L connection waiting for the link: %v); "+
				"a refused login must end the client at once, not after that connection's --connect-wait; stderr:\n%s",
				probing, c.tail())
		}
		if l, ok := c.findLine(0, forwardReady("-L", sp)); ok && !probing {
			probing = true
			conn, err := net.DialTimeout("tcp", l.kv["listen"], 5*time.Second)
			if err != nil {
				t.Fatalf("connecting to the -L listener %s: %v", l.kv["listen"], err)
			}
			defer conn.Close()
			go func() {
				_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
				b, err := io.ReadAll(conn)
				probe <- probeResult{len(b), err}
			}()
			open()
		}
		if !probing && time.Since(start) > 5*time.Second {
			open() // no ready line for -L: let the login go ahead anyway
		}
		time.Sleep(10 * time.Millisecond)
	}
	if probing {
		select {
		case r := <-probe:
			if r.n > 0 {
				t.Fatalf("a connection to the -L listener of an unauthenticated client got %d bytes", r.n)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("a connection to the -L listener was still open 5s after the client exited")
		}
	}
	if code := c.exitCode(); code == 0 {
		t.Fatalf("client with a wrong token exited 0; stderr:\n%s", c.tail())
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("client with a wrong token took %v to exit, want < 10s", el)
	}
	if !strings.Contains(c.stderr.String(), "authentication failed") {
		t.Fatalf("client stderr lacks \"authentication failed\":\n%s", c.tail())
	}
	if n := target.accepts.Load(); n != 0 {
		t.Fatalf("target accepted %d connections for an unauthenticated client", n)
	}
}

// ---------------------------------------------------------------------------
// 4. Server key changed; --fingerprint pinning.

func TestServerKeyChanged(t *testing.T) {
	parallel(t)
	h := newHarness(t)
	sA, addr, fpA := h.startServer(nil)

	c1 := h.startClient(nil, addr)
	waitConnected(t, c1, 0, addr, logWait)
	c1.signal(t, syscall.SIGTERM)
	if code := c1.waitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("client exited %d after SIGTERM, want 0", code)
	}
	kh := filepath.Join(h.config, "braid", "known_hosts")
	if b, err := os.ReadFile(kh); err != nil || len(bytes.TrimSpace(b)) == 0 {
		t.Fatalf("trust on first use did not record %s (err %v, %d bytes)", kh, err, len(b))
	}

	sA.signal(t, syscall.SIGTERM)
	if code := sA.waitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("server A exited %d after SIGTERM, want 0", code)
	}
	_, addrB, fpB := h.startServerArgs(nil, "server", "--listen", addr, "--state-dir", t.TempDir(), "--drain-timeout", "1s")
	if addrB != addr {
		t.Fatalf("server B listens on %s, want %s", addrB, addr)
	}
	if fpB == fpA {
		t.Fatalf("servers with different state dirs share fingerprint %s", fpA)
	}

	c2 := h.startClient(nil, addr)
	if code := c2.waitExit(t, 10*time.Second); code == 0 {
		t.Fatalf("client exited 0 against a server whose key changed; stderr:\n%s", c2.tail())
	}
	if !strings.Contains(c2.stderr.String(), "server key changed") {
		t.Fatalf("client stderr lacks \"server key changed\":\n%s", c2.tail())
	}
	if _, ok := c2.findLine(0, msgIs("connected")); ok {
		t.Fatalf("client logged connected to a server whose key changed:\n%s", c2.tail())
	}

	// Pinning, with a known_hosts file of its own so only the pin decides.
	c3 := h.startClient(nil, addr, "--fingerprint", fpA, "--known-hosts", filepath.Join(t.TempDir(), "kh"))
	if code := c3.waitExit(t, 10*time.Second); code == 0 {
		t.Fatalf("client pinned to the wrong fingerprint exited 0; stderr:\n%s", c3.tail())
	}
	if _, ok := c3.findLine(0, msgIs("connected")); ok {
		t.Fatalf("client pinned to the wrong fingerprint logged connected:\n%s", c3.tail())
	}
	c4 := h.startClient(nil, addr, "--fingerprint", fpB, "--known-hosts", filepath.Join(t.TempDir(), "kh"))
	waitConnected(t, c4, 0, addr, logWait)
}

// ---------------------------------------------------------------------------
// 5. Allow rules, global and per user.

// expectRefusedL checks that -L spec (kind+spec) does not reach target: if
// the client opened a listener for it, a connection gets no data; and a
// warning naming the forward and the refusing rule set is logged.
func expectRefusedL(t *testing.T, c *proc, sp string, target *tcpTarget, ruleWords ...string) {
	t.Helper()
	deadline := time.Now().Add(logWait)
	probed := false
	for {
		if l, ok := c.findLine(0, forwardReady("-L", sp)); ok && !probed {
			probed = true
			expectNoData(t, l.kv["listen"], 5*time.Second)
		}
		if l, ok := c.findLine(0, func(l logLine) bool {
			return l.kv["level"] == "WARN" && strings.Contains(l.raw, sp)
		}); ok {
			lower := strings.ToLower(l.raw)
			for _, w := range ruleWords {
				if !strings.Contains(lower, strings.ToLower(w)) {
					t.Fatalf("refusal of -L %s does not name the rule set (%q): %s", sp, w, l)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no WARN line for the refused forward -L %s within %v (probed a listener: %v); stderr:\n%s",
				sp, logWait, probed, c.tail())
		}
		if c.exited() {
			t.Fatalf("client exited (code %d) on a refused -L forward; a refusal is not fatal:\n%s", c.exitCode(), c.tail())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := target.accepts.Load(); n != 0 {
		t.Fatalf("target of the refused forward -L %s accepted %d connections", sp, n)
	}
}

// expectRefusedR waits for "forward refused" for -R spec and checks the
// error names the rule set.
func expectRefusedR(t *testing.T, c *proc, sp string, ruleWords ...string) {
	t.Helper()
	want := "-R " + sp
	l := c.waitLine(t, 0, logWait, fmt.Sprintf(`msg="forward refused" forward=%q`, want), func(l logLine) bool {
		return l.kv["msg"] == "forward refused" && strings.TrimSpace(l.kv["forward"]) == want
	})
	if l.kv["level"] != "WARN" {
		t.Fatalf("forward refused is not logged at WARN: %s", l)
	}
	lower := strings.ToLower(l.raw)
	for _, w := range ruleWords {
		if !strings.Contains(lower, strings.ToLower(w)) {
			t.Fatalf("refusal of -R %s does not name the rule set (%q): %s", sp, w, l)
		}
	}
}

func TestAllowRules(t *testing.T) {
	parallel(t)
	t.Run("global", func(t *testing.T) {
		h := newHarness(t)
		ds := newDataServer(t)
		other := bannerTarget(t)
		_, addr, _ := h.startServer(nil,
			"--allow", "R:127.0.0.1:*", "--allow", "L:127.0.0.1:"+ds.port)
		spLA := spec("0", "127.0.0.1", ds.port)
		spLB := spec("0", "127.0.0.1", other.port)
		spRany := spec("0.0.0.0:0", "127.0.0.1", ds.port)
		spRlo := spec("0", "127.0.0.1", ds.port)
		c := h.startClient(nil, addr, "-L", spLA, "-L", spLB, "-R", spRany, "-R", spRlo)
		waitConnected(t, c, 0, addr, logWait)
		hc := httpClient(t, nil)
		download(t, hc, waitReady(t, c, 0, "-L", spLA), 20, 1<<20)
		download(t, hc, waitReady(t, c, 0, "-R", spRlo), 21, 1<<20)
		expectRefusedR(t, c, spRany, "allow")
		expectRefusedL(t, c, spLB, other, "allow")
		if c.exited() {
			t.Fatalf("client exited after refusals; they are not fatal")
		}
	})

	t.Run("per-user", func(t *testing.T) {
		h := newHarness(t)
		ds := newDataServer(t)
		aliceTok, _, code := h.run("", h.env(), "token")
		aliceTok = strings.TrimSpace(aliceTok)
		if code != 0 || aliceTok == "" {
			t.Fatalf("braid token: exit %d, output %q", code, aliceTok)
		}
		bobTok := randomToken(t)
		hash := func(tok string) string {
			out, errOut, code := h.run(tok+"\n", h.env(), "token", "--hash")
			out = strings.TrimSpace(out)
			if code != 0 || !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(out) {
				t.Fatalf("braid token --hash: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			sum := sha256.Sum256([]byte(tok))
			if want := "sha256:" + hex.EncodeToString(sum[:]); out != want {
				t.Fatalf("braid token --hash = %s, want %s", out, want)
			}
			return out
		}
		authFile := filepath.Join(t.TempDir(), "users.toml")
		authTOML := fmt.Sprintf(`[[user]]
name = "alice"
token_hash = %q
allow = ["R:127.0.0.1:9000-9100"]

[[user]]
name = "bob"
token_hash = %q
`, hash(aliceTok), hash(bobTok))
		if err := os.WriteFile(authFile, []byte(authTOML), 0o600); err != nil {
			t.Fatal(err)
		}
		_, addr, _ := h.startServer(h.env("-BRAID_TOKEN"), "--auth-file", authFile)

		// A free port inside alice's range and one outside it.
		var inRange string
		for p := 9000; p <= 9100 && inRange == ""; p++ {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err == nil {
				ln.Close()
				inRange = strconv.Itoa(p)
			}
		}
		if inRange == "" {
			t.Fatalf("no free port in 9000-9100 on 127.0.0.1")
		}
		outside := freePort(t)

		spAin := spec("127.0.0.1:"+inRange, "127.0.0.1", ds.port)
		spAout := spec("127.0.0.1:"+outside, "127.0.0.1", ds.port)
		alice := h.startClient(h.env("BRAID_TOKEN="+aliceTok), addr, "-R", spAin, "-R", spAout)
		waitConnected(t, alice, 0, addr, logWait)
		hc := httpClient(t, nil)
		download(t, hc, waitReady(t, alice, 0, "-R", spAin), 30, 1<<20)
		expectRefusedR(t, alice, spAout, "alice")

		spBlo := spec("127.0.0.1:"+outside, "127.0.0.1", ds.port)
		spBany := spec("0.0.0.0:0", "127.0.0.1", ds.port)
		bob := h.startClient(h.env("BRAID_TOKEN="+bobTok), addr, "-R", spBlo, "-R", spBany)
		waitConnected(t, bob, 0, addr, logWait)
		download(t, hc, waitReady(t, bob, 0, "-R", spBlo), 31, 1<<20)
		expectRefusedR(t, bob, spBany)

		// An unknown token is refused with an auth file too.
		eve := h.startClient(h.env("BRAID_TOKEN="+randomToken(t)), addr)
		if code := eve.waitExit(t, 10*time.Second); code == 0 || !strings.Contains(eve.stderr.String(), "authentication failed") {
			t.Fatalf("client with an unknown token: exit %d, stderr:\n%s", code, eve.tail())
		}
	})
}

// ---------------------------------------------------------------------------
// 6. Half-close, refused targets, cancelled downloads.

func TestHalfClose(t *testing.T) {
	parallel(t)
	h := newHarness(t)

	// Reads until EOF, answers with the SHA-256 of what it read, closes.
	hashT := newTCPTarget(t, func(c net.Conn) {
		sum := sha256.New()
		if _, err := io.Copy(sum, c); err != nil {
			return
		}
		_, _ = c.Write(sum.Sum(nil))
	})
	closedPort := freePort(t)
	// Writes until a write fails, then reports when.
	writeErr := make(chan time.Time, 4)
	writerT := newTCPTarget(t, func(c net.Conn) {
		buf := make([]byte, 32<<10)
		for total := 0; total < 4<<30; total += len(buf) {
			if _, err := c.Write(buf); err != nil {
				writeErr <- time.Now()
				return
			}
		}
	})

	_, addr, _ := h.startServer(nil)
	spH := spec("0", "127.0.0.1", hashT.port)
	spC := spec("0", "127.0.0.1", closedPort)
	spW := spec("0", "127.0.0.1", writerT.port)
	c := h.startClient(nil, addr, "-L", spH, "-L", spC, "-L", spW, "-R", spH, "-R", spC, "-R", spW)
	waitConnected(t, c, 0, addr, logWait)

	for _, kind := range []string{"-L", "-R"} {
		t.Run(kind+"/half-close", func(t *testing.T) {
			conn, err := net.Dial("tcp", waitReady(t, c, 0, kind, spH))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			payload := make([]byte, 1<<20)
			_, _ = rand.Read(payload)
			if _, err := conn.Write(payload); err != nil {
				t.Fatalf("write 1 MiB: %v", err)
			}
			if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatalf("CloseWrite: %v", err)
			}
			got, err := io.ReadAll(conn)
			if err != nil {
				t.Fatalf("after CloseWrite, reading the answer: %v (got %d bytes)", err, len(got))
			}
			want := sha256.Sum256(payload)
			if !bytes.Equal(got, want[:]) {
				t.Fatalf("answer after half-close = %x (%d bytes), want %x: the EOF did not reach the target or the answer was lost", got, len(got), want)
			}
		})

		t.Run(kind+"/refused-target", func(t *testing.T) {
			conn, err := net.Dial("tcp", waitReady(t, c, 0, kind, spC))
			if errors.Is(err, syscall.ECONNRESET) {
				return // reset before the dial even returned: immediate indeed
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := conn.Read(make([]byte, 64))
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("a connection forwarded to a closed port was not closed within 2s (it hangs)")
			}
			if n != 0 {
				t.Fatalf("a connection forwarded to a closed port read %d bytes", n)
			}
		})

		t.Run(kind+"/cancelled-download", func(t *testing.T) {
			for len(writeErr) > 0 {
				<-writeErr
			}
			conn, err := net.Dial("tcp", waitReady(t, c, 0, kind, spW))
			if err != nil {
				t.Fatal(err)
			}
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.ReadFull(conn, make([]byte, 1<<20)); err != nil {
				conn.Close()
				t.Fatalf("reading the first MiB: %v", err)
			}
			conn.Close()
			select {
			case <-writeErr:
			case <-time.After(5 * time.Second):
				t.Fatalf("target still writing 5s after the local side closed mid-download: the close was not passed through")
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 7. Graceful shutdown.

func TestGracefulShutdown(t *testing.T) {
	parallel(t)
	h := newHarness(t)
	// Echo target: holds the connection open as long as the peer does.
	echo := newTCPTarget(t, func(c net.Conn) { _, _ = io.Copy(c, c) })
	_, addr, _ := h.startServer(nil)
	sp := spec("0", "127.0.0.1", echo.port)
	c := h.startClient(nil, addr, "-L", sp, "--drain-timeout", "2s")
	waitConnected(t, c, 0, addr, logWait)
	conn, err := net.Dial("tcp", waitReady(t, c, 0, "-L", sp))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, make([]byte, 4)); err != nil {
		t.Fatalf("echo through -L: %v", err)
	}

	// SIGHUP only skips a backoff wait: the client keeps running and
	// forwarding.
	c.signal(t, syscall.SIGHUP)
	if _, err := conn.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, make([]byte, 4)); err != nil {
		t.Fatalf("echo through -L after SIGHUP: %v", err)
	}
	conn2, err := net.Dial("tcp", waitReady(t, c, 0, "-L", sp))
	if err != nil {
		t.Fatalf("new connection to -L after SIGHUP: %v", err)
	}
	_ = conn2.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn2.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn2, make([]byte, 4)); err != nil {
		t.Fatalf("echo through a new -L connection after SIGHUP: %v", err)
	}
	conn2.Close()
	if c.exited() {
		t.Fatalf("client exited (code %d) on SIGHUP", c.exitCode())
	}

	// A live connection: the client drains up to --drain-timeout, then exits 0.
	start := time.Now()
	c.signal(t, syscall.SIGTERM)
	if code := c.waitExit(t, 2*time.Second+5*time.Second); code != 0 {
		t.Fatalf("client exited %d after SIGTERM, want 0; stderr:\n%s", code, c.tail())
	}
	t.Logf("client exited %v after SIGTERM with one live connection (drain 2s)", time.Since(start).Round(time.Millisecond))

	// The server, with a client connected, also exits 0 on SIGTERM.
	s2, addr2, _ := h.startServer(nil, "--drain-timeout", "2s", "--state-dir", t.TempDir())
	c2 := h.startClient(nil, addr2, "--known-hosts", filepath.Join(t.TempDir(), "kh"))
	waitConnected(t, c2, 0, addr2, logWait)
	mark := c2.mark()
	s2.signal(t, syscall.SIGTERM)
	if code := s2.waitExit(t, 2*time.Second+5*time.Second); code != 0 {
		t.Fatalf("server exited %d after SIGTERM, want 0; stderr:\n%s", code, s2.tail())
	}
	c2.waitLine(t, mark, logWait, "msg=disconnected after the server stopped", msgIs("disconnected"))
	if c2.exited() {
		t.Fatalf("client exited (code %d) when the server stopped; it should reconnect", c2.exitCode())
	}
}

// ---------------------------------------------------------------------------
// 8. Config file and environment.

func TestConfigFileAndEnv(t *testing.T) {
	parallel(t)
	h := newHarness(t)
	ds := newDataServer(t)
	other := bannerTarget(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	serverConf := write("server.toml", fmt.Sprintf(`listen = "127.0.0.1:0"
allow = ["L:127.0.0.1:%s"]
drain-timeout = "1s"
`, ds.port))
	s, addr, _ := h.startServerArgs(nil, "server", "--config", serverConf)
	_ = s
	if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
		t.Fatalf("server from config listens on %s, want 127.0.0.1:<port>", addr)
	}
	sp := spec("0", "127.0.0.1", ds.port)
	spOther := spec("0", "127.0.0.1", other.port)
	fwd := fmt.Sprintf("\n[[forward]]\nlocal = %q\n", sp)
	hc := httpClient(t, nil)
	bad := "127.0.0.1:" + freePort(t) // nothing listens there

	runClient := func(t *testing.T, env []string, conf string, args ...string) *proc {
		t.Helper()
		all := append([]string{"client", "--config", conf}, args...)
		c := h.start("client", env, all...)
		waitConnected(t, c, 0, addr, logWait)
		download(t, hc, waitReady(t, c, 0, "-L", sp), 40, 1<<20)
		return c
	}
	stop := func(t *testing.T, c *proc) {
		t.Helper()
		c.signal(t, syscall.SIGTERM)
		if code := c.waitExit(t, 10*time.Second); code != 0 {
			t.Fatalf("client exited %d after SIGTERM", code)
		}
	}

	t.Run("file", func(t *testing.T) {
		conf := write("c1.toml", fmt.Sprintf("server = %q\ndrain-timeout = \"1s\"\n", addr)+fwd+
			fmt.Sprintf("\n[[forward]]\nlocal = %q\n", spOther))
		c := runClient(t, nil, conf)
		// The allow rule from the server's file is in force.
		expectRefusedL(t, c, spOther, other)
		stop(t, c)
	})
	t.Run("env-instead-of-flag", func(t *testing.T) {
		conf := write("c2.toml", "drain-timeout = \"1s\"\n"+fwd)
		stop(t, runClient(t, h.env("BRAID_SERVER="+addr), conf))
	})
	t.Run("env-over-file", func(t *testing.T) {
		conf := write("c3.toml", fmt.Sprintf("server = %q\n", bad)+fwd)
		stop(t, runClient(t, h.env("BRAID_SERVER="+addr), conf))
	})
	t.Run("flag-over-file", func(t *testing.T) {
		conf := write("c4.toml", fmt.Sprintf("server = %q\n", bad)+fwd)
		stop(t, runClient(t, nil, conf, "--server", addr))
	})
	t.Run("flag-over-env", func(t *testing.T) {
		conf := write("c5.toml", fwd)
		stop(t, runClient(t, h.env("BRAID_SERVER="+bad), conf, "--server", addr))
	})
}

// ---------------------------------------------------------------------------
// 9. version and help.

func TestVersionAndHelp(t *testing.T) {
	parallel(t)
	h := newHarness(t)
	out, errOut, code := h.run("", h.env(), "version")
	if code != 0 || strings.TrimSpace(out+errOut) == "" {
		t.Fatalf("braid version: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	common := []string{"--config", "--metrics", "--log-format", "--log-level"}
	flags := map[string][]string{
		"server": {"--listen", "--token-file", "--auth-file", "--tls-cert", "--tls-key", "--tls-client-ca",
			"--state-dir", "--allow", "--auth-timeout", "--max-unauthenticated", "--max-forwards", "--max-conns",
			"--drain-timeout", "--keepalive", "--keepalive-timeout"},
		"client": {"--server", "--token-file", "--fingerprint", "--known-hosts", "--tls-cert", "--tls-key",
			"--compress", "-L", "-R", "-D", "--keepalive", "--keepalive-timeout", "--reconnect-max",
			"--connect-wait", "--drain-timeout", "--status"},
	}
	for cmd, fl := range flags {
		out, errOut, code := h.run("", h.env(), "help", cmd)
		text := out + errOut
		if code != 0 {
			t.Errorf("braid help %s: exit %d\n%s", cmd, code, text)
		}
		for _, f := range append(fl, common...) {
			re := regexp.MustCompile(`(^|[\s,])` + regexp.QuoteMeta(f) + `\b`)
			if !re.MatchString(text) {
				t.Errorf("braid help %s does not mention %s", cmd, f)
			}
		}
		if t.Failed() {
			t.Logf("braid help %s output:\n%s", cmd, text)
		}
	}
	if _, _, code := h.run("", h.env(), "no-such-command"); code == 0 {
		t.Errorf("braid no-such-command exited 0")
	}
}

// ---------------------------------------------------------------------------
// JSON logs carry the same messages and keys.

func TestJSONLogs(t *testing.T) {
	parallel(t)
	h := newHarness(t)
	ds := newDataServer(t)
	s, addr, _ := h.startServer(nil, "--log-format", "json")
	if first := strings.SplitN(s.stderr.String(), "\n", 2)[0]; !json.Valid([]byte(first)) {
		t.Fatalf("server --log-format json wrote a line that is not JSON: %s", first)
	}
	sp := spec("0", "127.0.0.1", ds.port)
	c := h.startClient(nil, addr, "--log-format", "json", "-L", sp)
	waitConnected(t, c, 0, addr, logWait)
	download(t, httpClient(t, nil), waitReady(t, c, 0, "-L", sp), 50, 1<<20)
	for _, l := range c.lines() {
		if !json.Valid([]byte(l.raw)) {
			t.Fatalf("client --log-format json wrote a line that is not JSON: %s", l.raw)
		}
	}
}

// ---------------------------------------------------------------------------
// 11. Prometheus metrics on both sides.

func TestMetrics(t *testing.T) {
	parallel(t)
	h := newHarness(t)
	ds := newDataServer(t)
	s, addr, _ := h.startServer(nil, "--metrics", "127.0.0.1:0")
	sm := waitLog(t, s, regexp.MustCompile(`msg="metrics listening" addr=(\S+)`))[1]
	sp := spec("0", "127.0.0.1", ds.port)
	c := h.startClient(nil, addr, "-L", sp, "--metrics", "127.0.0.1:0")
	cm := waitLog(t, c, regexp.MustCompile(`msg="metrics listening" addr=(\S+)`))[1]
	waitConnected(t, c, 0, addr, logWait)
	hc := httpClient(t, nil)
	download(t, hc, waitReady(t, c, 0, "-L", sp), 50, 1<<20)

	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^braid_connected\{role="client"\} 1$`),
		regexp.MustCompile(`(?m)^braid_forward_connections_total\{forward="-L ` + regexp.QuoteMeta(sp) + `",kind="local",role="client"\} [1-9]`),
		regexp.MustCompile(`(?m)^braid_forward_bytes_total\{direction="down",forward="-L ` + regexp.QuoteMeta(sp) + `",kind="local",role="client"\} ` + million),
	} {
		if body := scrapeMetrics(t, cm); !want.MatchString(body) {
			t.Errorf("client metrics lack %s:\n%s", want, grepBraid(body))
		}
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^braid_sessions\{role="server"\} 1$`),
		regexp.MustCompile(`(?m)^braid_session_bytes_total\{direction="sent",role="server"\} ` + million),
	} {
		if body := scrapeMetrics(t, sm); !want.MatchString(body) {
			t.Errorf("server metrics lack %s:\n%s", want, grepBraid(body))
		}
	}
}

// million matches a Prometheus sample value of at least 1e6 (as the
// text format writes it: 1.048716e+06).
const million = `([1-9][0-9]{6,}|[1-9](\.[0-9]+)?e\+0[6-9])$`

func grepBraid(body string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "braid_") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
