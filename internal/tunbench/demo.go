package tunbench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/proxy"
	"golang.org/x/term"
)

// Demo sizes and bounds.
const (
	demoTimeout      = 55 * time.Second
	demoDownload     = 256 << 20 // bytes served by /download
	demoBlock        = 1 << 20   // the download repeats one random block
	demoRequests     = 200
	demoHalfClose    = 4 << 20 // bytes sent before the half-close
	demoHalfCloseMax = 64 << 20
)

// Demo shows the braid tunnel working on this machine, in about 15
// seconds: it starts a web server (in this process), a braid server and a
// braid client from binary with a -L forward to the web server and a -D
// SOCKS5 proxy, prints the shell commands that would do the same by hand,
// then downloads 256 MiB through -L (throughput, SHA-256 verified), makes
// 200 requests through -D (p50/p99 latency), checks that a half-closed
// connection still receives its answer, cuts the client's link (the
// client reaches the server through a relay in this process) and checks
// that it reconnects, stops everything and sums up.
// Progress goes to out, updated in place when out is a terminal.
//
// Demo returns an error naming the step that failed; it stops everything
// it started (children by PID, then waits for them) before returning, and
// gives up after 55 seconds. It may be called concurrently.
func Demo(ctx context.Context, binary string, out io.Writer) (err error) {
	if binary == "" {
		return errors.New("demo: no braid binary given")
	}
	began := time.Now()
	ctx, cancel := context.WithTimeoutCause(ctx, demoTimeout, fmt.Errorf("the demo did not finish within %v", demoTimeout))
	defer cancel()
	p := newPrinter(out)

	dir, err := os.MkdirTemp("", "braid-demo-")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer os.RemoveAll(dir)

	// 1. Start.
	tgt, err := startDemoTarget(ctx)
	if err != nil {
		return fmt.Errorf("demo: start the web server: %w", err)
	}
	defer tgt.close()
	rl, err := startRelay()
	if err != nil {
		return fmt.Errorf("demo: start the relay: %w", err)
	}
	defer rl.close()
	token := newToken()
	tun, err := startTunnel(ctx, binary, filepath.Join(dir, "home"), token, rl.to,
		forward{"-L", "0:" + tgt.httpAddr}, forward{"-D", "0"})
	if err != nil {
		return fmt.Errorf("demo: start braid: %w", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			tun.stop()
		}
	}()
	lAddr, dAddr := tun.listen["-L"], tun.listen["-D"]
	lPort, dPort := port(lAddr), port(dAddr)

	p.f("braid demo: a braid server and client on this machine, with a web server behind them.\n\n")
	p.f("1. Started\n")
	p.f("   web server (the target)  http://%s   GET /download (%s), GET /hello.json\n", tgt.httpAddr, mib(demoDownload))
	p.f("   answer-after-EOF service %s   (for step 4)\n", tgt.sumAddr)
	p.f("   braid server             %s   fingerprint %s\n", tun.serverAddr, tun.fingerprint)
	p.f("   braid client             -L %s → %s   -D (SOCKS5) %s\n", lAddr, tgt.httpAddr, dAddr)
	p.f("                            (it reaches the server through a relay in this process, %s, so that step 5 can cut the link)\n", rl.addr())
	p.f("   By hand, that is two terminals:\n")
	p.f("     # terminal 1: the server\n")
	p.f("     export BRAID_TOKEN=%s   # any secret; `braid token` makes one\n", token)
	p.f("     braid server --listen %s\n", tun.serverAddr)
	p.f("     # terminal 2: the client (same token; --fingerprint pins the server's key)\n")
	p.f("     export BRAID_TOKEN=%s\n", token)
	p.f("     braid client --server %s --fingerprint %s -L %s:%s -D %s\n\n", tun.serverAddr, tun.fingerprint, lPort, tgt.httpAddr, dPort)

	// 2. Download through -L.
	p.f("2. Download %s through -L   (like: curl -o /dev/null http://%s/download)\n", mib(demoDownload), lAddr)
	p.last = time.Now()
	dl, err := demoDownloadStep(ctx, p, "http://"+lAddr+"/download", tgt)
	if err != nil {
		return fmt.Errorf("demo step 2 (download through -L %s): %w", lAddr, err)
	}
	p.f("   %s in %.2f s = %.0f MiB/s; SHA-256 verified: %s (the same as the web server's)\n\n",
		mib(demoDownload), dl.elapsed.Seconds(), dl.mibps, dl.sum)

	// 3. Requests through -D.
	p.f("3. %d requests through -D (SOCKS5), each on a new connection   (like: curl --socks5 %s http://%s/hello.json)\n",
		demoRequests, dAddr, tgt.httpAddr)
	p.last = time.Now()
	lat, err := demoRequestsStep(ctx, p, dAddr, "http://"+tgt.httpAddr+"/hello.json")
	if err != nil {
		return fmt.Errorf("demo step 3 (requests through -D %s): %w", dAddr, err)
	}
	p.f("   %d of %d answered correctly; latency p50 %s, p99 %s\n\n", demoRequests, demoRequests, fmtMicros(lat.p50), fmtMicros(lat.p99))

	// 4. Half-close.
	p.f("4. Half-close through -D: send %s, close our sending side, then read the answer\n", mib(demoHalfClose))
	answer, err := demoHalfCloseStep(ctx, dAddr, tgt.sumAddr)
	if err != nil {
		return fmt.Errorf("demo step 4 (half-close through -D %s): %w", dAddr, err)
	}
	p.f("   the service read to EOF and answered %q: it matches what was sent\n\n", answer)

	// 5. Cut the link.
	p.f("5. Cut the link: the relay closes the client's connection to the server\n")
	gap, err := demoCutStep(ctx, tun, rl, "http://"+lAddr+"/hello.json?n=again")
	if err != nil {
		return fmt.Errorf("demo step 5 (cut the link): %w", err)
	}
	p.f("   the client logged \"disconnected\", was connected again %.0f ms after the cut, and -L answers again\n\n", float64(gap)/float64(time.Millisecond))

	// 6. Stop.
	p.f("6. Stop: SIGTERM to the client and the server\n")
	stopped = true
	if err := tun.stop(); err != nil {
		return fmt.Errorf("demo step 6 (stop): %w", err)
	}
	p.f("   both exited with status 0\n\n")

	p.f("Summary (%.1f s): a braid client and server, talking TLS, carried\n", time.Since(began).Seconds())
	p.f("   a %s download through -L at %.0f MiB/s, byte for byte (SHA-256 %s…),\n", mib(demoDownload), dl.mibps, dl.sum[:16])
	p.f("   %d SOCKS5 connections through -D at p50 %s / p99 %s per request,\n", demoRequests, fmtMicros(lat.p50), fmtMicros(lat.p99))
	p.f("   a half-closed connection that still got its answer,\n")
	p.f("   and a cut link, reconnected in %.0f ms.\n", float64(gap)/float64(time.Millisecond))
	p.f("next: braid help\n")
	return p.err
}

// port returns the port of a host:port address.
func port(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return p
}

func fmtMicros(d time.Duration) string { return fmt.Sprintf("%.0f µs", micros(d)) }

// printer writes the demo's output, remembering the first write error.
// A progress line is redrawn in place on a terminal, else printed at most
// once a second. Not safe for concurrent use.
type printer struct {
	w        io.Writer
	terminal bool
	err      error
	last     time.Time
	drawn    bool // a progress line is on screen (terminal only)
}

func newPrinter(w io.Writer) *printer {
	p := &printer{w: w}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.terminal = true
	}
	return p
}

func (p *printer) f(format string, args ...any) {
	if p.drawn {
		p.write("\r\x1b[K")
		p.drawn = false
	}
	p.write(fmt.Sprintf(format, args...))
}

func (p *printer) write(s string) {
	if p.err != nil {
		return
	}
	_, p.err = io.WriteString(p.w, s)
}

// progress shows a bar filled to done/total followed by text; it is
// redrawn at most every 100 ms on a terminal, else printed at most once a
// second.
func (p *printer) progress(done, total int64, text func() string) {
	now := time.Now()
	every := time.Second
	if p.terminal {
		every = 100 * time.Millisecond
	}
	if now.Sub(p.last) < every {
		return
	}
	p.last = now
	const width = 30
	fill := int(min(done, total) * width / max(total, 1))
	line := fmt.Sprintf("   [%s%s] %s", strings.Repeat("=", fill), strings.Repeat(" ", width-fill), text())
	if p.terminal {
		p.write("\r" + line + "\x1b[K")
		p.drawn = true
	} else {
		p.write(line + "\n")
	}
}

// demoTarget is the demo's far end: a web server and a service that reads
// a request to EOF and then answers with its length and SHA-256.
type demoTarget struct {
	httpAddr, sumAddr string
	block             []byte
	wantSum           chan [32]byte // the download's SHA-256, computed once in the background

	srv    *http.Server
	sumLn  net.Listener
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

func startDemoTarget(ctx context.Context) (*demoTarget, error) {
	t := &demoTarget{block: make([]byte, demoBlock), wantSum: make(chan [32]byte, 1)}
	_, _ = rand.Read(t.block) // never fails (crypto/rand)
	ctx, t.cancel = context.WithCancel(ctx)

	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		hl.Close()
		return nil, err
	}
	t.httpAddr, t.sumAddr, t.sumLn = hl.Addr().String(), sl.Addr().String(), sl

	mux := http.NewServeMux()
	mux.HandleFunc("GET /download", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(demoDownload))
		for range demoDownload / demoBlock {
			if _, err := w.Write(t.block); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("GET /hello.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"hello": "from the web server behind braid", "n": r.URL.Query().Get("n")})
	})
	t.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	t.wg.Go(func() { _ = t.srv.Serve(hl) })
	t.wg.Go(func() { t.serveSum(ctx) })
	t.wg.Go(func() {
		h := sha256.New()
		for range demoDownload / demoBlock {
			if ctx.Err() != nil {
				return
			}
			h.Write(t.block)
		}
		t.wantSum <- [32]byte(h.Sum(nil))
	})
	return t, nil
}

// serveSum serves the answer-after-EOF service until the listener closes.
func (t *demoTarget) serveSum(ctx context.Context) {
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := t.sumLn.Accept()
		if err != nil {
			return
		}
		conns.Go(func() {
			defer c.Close()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			h := sha256.New()
			n, err := io.Copy(h, io.LimitReader(c, demoHalfCloseMax))
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%d bytes, sha256 %x\n", n, h.Sum(nil))
		})
	}
}

func (t *demoTarget) close() {
	t.cancel()
	t.sumLn.Close()
	t.srv.Close()
	t.wg.Wait()
}

type downloadResult struct {
	elapsed time.Duration
	mibps   float64
	sum     string
}

func demoDownloadStep(ctx context.Context, p *printer, url string, tgt *demoTarget) (downloadResult, error) {
	tr := &http.Transport{Proxy: nil, DisableCompression: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return downloadResult{}, err
	}
	start := time.Now()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return downloadResult{}, ctxErr(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return downloadResult{}, fmt.Errorf("the web server answered %s", resp.Status)
	}
	h := sha256.New()
	buf := make([]byte, copyBufSize)
	var got int64
	for {
		n, err := resp.Body.Read(buf)
		h.Write(buf[:n])
		got += int64(n)
		p.progress(got, demoDownload, func() string {
			return fmt.Sprintf("%4d / %d MiB  %5.0f MiB/s", got>>20, demoDownload>>20, float64(got)/(1<<20)/time.Since(start).Seconds())
		})
		if err == io.EOF {
			break
		}
		if err != nil {
			return downloadResult{}, ctxErr(ctx, fmt.Errorf("after %d of %d bytes: %w", got, demoDownload, err))
		}
	}
	elapsed := time.Since(start)
	if got != demoDownload {
		return downloadResult{}, fmt.Errorf("received %d bytes, want %d", got, demoDownload)
	}
	var want [32]byte
	select {
	case want = <-tgt.wantSum:
	case <-ctx.Done():
		return downloadResult{}, context.Cause(ctx)
	}
	if gotSum := [32]byte(h.Sum(nil)); gotSum != want {
		return downloadResult{}, fmt.Errorf("SHA-256 mismatch: received %x, the web server sent %x", gotSum, want)
	}
	return downloadResult{elapsed: elapsed, mibps: float64(got) / (1 << 20) / elapsed.Seconds(), sum: hex.EncodeToString(want[:])}, nil
}

func socksDialer(socksAddr string) (*net.Dialer, proxy.Dialer, error) {
	d := &net.Dialer{}
	sd, err := proxy.SOCKS5("tcp", socksAddr, nil, d)
	return d, sd, err
}

func demoRequestsStep(ctx context.Context, p *printer, socksAddr, url string) (latency, error) {
	_, sd, err := socksDialer(socksAddr)
	if err != nil {
		return latency{}, err
	}
	cd, ok := sd.(proxy.ContextDialer)
	if !ok {
		return latency{}, errors.New("the SOCKS5 dialer cannot take a context")
	}
	tr := &http.Transport{Proxy: nil, DialContext: cd.DialContext, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	rtts := make([]time.Duration, 0, demoRequests)
	for i := range demoRequests {
		req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s?n=%d", url, i), nil)
		if err != nil {
			return latency{}, err
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return latency{}, ctxErr(ctx, fmt.Errorf("request %d: %w", i+1, err))
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		rtts = append(rtts, time.Since(start))
		if err != nil {
			return latency{}, ctxErr(ctx, fmt.Errorf("request %d: %w", i+1, err))
		}
		var v struct{ N string }
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &v) != nil || v.N != strconv.Itoa(i) {
			return latency{}, fmt.Errorf("request %d: unexpected answer %s %q", i+1, resp.Status, body)
		}
		p.progress(int64(i+1), demoRequests, func() string { return fmt.Sprintf("%3d / %d requests", i+1, demoRequests) })
	}
	slices.Sort(rtts)
	return latency{p50: percentile(rtts, 50), p99: percentile(rtts, 99)}, nil
}

// demoHalfCloseStep connects through the SOCKS5 proxy to the
// answer-after-EOF service, sends data, half-closes and checks the answer.
func demoHalfCloseStep(ctx context.Context, socksAddr, sumAddr string) (string, error) {
	d, sd, err := socksDialer(socksAddr)
	if err != nil {
		return "", err
	}
	wc, ok := sd.(interface {
		DialWithConn(ctx context.Context, c net.Conn, network, address string) (net.Addr, error)
	})
	if !ok {
		return "", errors.New("the SOCKS5 dialer cannot use an existing connection")
	}
	c, err := d.DialContext(ctx, "tcp", socksAddr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if _, err := wc.DialWithConn(ctx, c, "tcp", sumAddr); err != nil {
		return "", ctxErr(ctx, err)
	}
	data := make([]byte, demoHalfClose)
	_, _ = rand.Read(data) // never fails (crypto/rand)
	if _, err := c.Write(data); err != nil {
		return "", ctxErr(ctx, err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return "", ctxErr(ctx, err)
	}
	answer, err := io.ReadAll(io.LimitReader(c, 1024))
	if err != nil {
		return "", ctxErr(ctx, fmt.Errorf("reading the answer after the half-close: %w", err))
	}
	want := fmt.Sprintf("%d bytes, sha256 %x\n", len(data), sha256.Sum256(data))
	if !bytes.Equal(answer, []byte(want)) {
		if len(answer) == 0 {
			return "", errors.New("no answer: the connection was closed when we half-closed it (the answer was lost)")
		}
		return "", fmt.Errorf("answer %q, want %q", answer, want)
	}
	return strings.TrimSpace(string(answer)), nil
}

// demoCutStep cuts the client's link, waits for the client to log that it
// noticed and reconnected, and checks that -L works again with a request
// to url. It returns the time from the cut to the new connection.
func demoCutStep(ctx context.Context, tun *tunnel, rl *relay, url string) (time.Duration, error) {
	mark := tun.client.mark()
	start := time.Now()
	if rl.cut() == 0 {
		return 0, errors.New("the client has no connection through the relay to cut")
	}
	if _, err := tun.client.waitFrom(ctx, mark, "disconnected", nil); err != nil {
		return 0, err
	}
	if _, err := tun.client.waitFrom(ctx, mark, "connected", nil); err != nil {
		return 0, err
	}
	gap := time.Since(start)
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, ctxErr(ctx, fmt.Errorf("request through -L after reconnecting: %w", err))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if err != nil {
		return 0, ctxErr(ctx, fmt.Errorf("request through -L after reconnecting: %w", err))
	}
	var v struct{ N string }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &v) != nil || v.N != "again" {
		return 0, fmt.Errorf("request through -L after reconnecting: unexpected answer %s %q", resp.Status, body)
	}
	return gap, nil
}

// relay is a TCP relay on 127.0.0.1:0 between the demo's client and
// server, so that the demo can cut the link. Safe for concurrent use.
type relay struct {
	ln net.Listener
	wg sync.WaitGroup

	mu     sync.Mutex
	target string
	conns  map[net.Conn]struct{}
}

func startRelay() (*relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &relay{ln: ln, conns: make(map[net.Conn]struct{})}
	r.wg.Go(r.acceptLoop)
	return r, nil
}

func (r *relay) addr() string { return r.ln.Addr().String() }

// to makes the relay forward to target and returns the relay's address.
func (r *relay) to(target string) string {
	r.mu.Lock()
	r.target = target
	r.mu.Unlock()
	return r.addr()
}

func (r *relay) acceptLoop() {
	for {
		a, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		target := r.target
		r.mu.Unlock()
		b, err := net.DialTimeout("tcp", target, 10*time.Second)
		if err != nil {
			a.Close()
			continue
		}
		r.mu.Lock()
		if r.conns == nil { // closed meanwhile
			r.mu.Unlock()
			a.Close()
			b.Close()
			return
		}
		r.conns[a], r.conns[b] = struct{}{}, struct{}{}
		r.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
			r.mu.Lock()
			delete(r.conns, dst)
			delete(r.conns, src)
			r.mu.Unlock()
		}
		r.wg.Go(func() { pipe(a, b) })
		r.wg.Go(func() { pipe(b, a) })
	}
}

// cut closes every relayed connection and returns how many pairs it cut.
func (r *relay) cut() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.conns {
		c.Close()
	}
	n := len(r.conns) / 2
	clear(r.conns)
	return n
}

// close stops the relay and waits for its goroutines.
func (r *relay) close() {
	r.ln.Close()
	r.cut()
	r.mu.Lock()
	r.conns = nil
	r.mu.Unlock()
	r.wg.Wait()
}
