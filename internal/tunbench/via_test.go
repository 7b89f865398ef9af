package tunbench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braidmux/braid/internal/tunbench"
)

func TestParseVia(t *testing.T) {
	good := []struct {
		in   string
		want tunbench.Via
	}{
		{"ssh=127.0.0.1:19102", tunbench.Via{Name: "ssh", Addr: "127.0.0.1:19102"}},
		{"ssh=127.0.0.1:19102,42,4250", tunbench.Via{Name: "ssh", Addr: "127.0.0.1:19102", PIDs: []int{42, 4250}}},
		{"chisel-1.10=[::1]:9", tunbench.Via{Name: "chisel-1.10", Addr: "[::1]:9"}},
		{"a_b=localhost:65535,1", tunbench.Via{Name: "a_b", Addr: "localhost:65535", PIDs: []int{1}}},
	}
	for _, tc := range good {
		got, err := tunbench.ParseVia(tc.in)
		if err != nil || got.Name != tc.want.Name || got.Addr != tc.want.Addr || !slices.Equal(got.PIDs, tc.want.PIDs) {
			t.Errorf("ParseVia(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if s := got.String(); s != tc.in {
			t.Errorf("ParseVia(%q).String() = %q", tc.in, s)
		}
	}
	for _, in := range []string{
		"", "ssh", "=127.0.0.1:1", "ssh=", "ssh=127.0.0.1", "ssh=127.0.0.1:0", "ssh=127.0.0.1:70000",
		"ssh=:22", "ssh=127.0.0.1:22,", "ssh=127.0.0.1:22,x", "ssh=127.0.0.1:22,-3", "ssh=127.0.0.1:22,0",
		"direct=127.0.0.1:22", "braid=127.0.0.1:22", "s h=127.0.0.1:22", strings.Repeat("x", 33) + "=127.0.0.1:22",
	} {
		if v, err := tunbench.ParseVia(in); err == nil {
			t.Errorf("ParseVia(%q) = %+v, want an error", in, v)
		} else if !strings.Contains(err.Error(), "--via") {
			t.Errorf("ParseVia(%q): error %q does not name the flag", in, err)
		}
	}
}

func FuzzParseVia(f *testing.F) {
	for _, s := range []string{"ssh=127.0.0.1:19102,42,4250", "x=[::1]:1", "a=b:c,d", "ssh=h:1,+5,007", "=,,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := tunbench.ParseVia(s)
		if err != nil {
			return
		}
		again, err := tunbench.ParseVia(v.String())
		if err != nil || again.Name != v.Name || again.Addr != v.Addr || !slices.Equal(again.PIDs, v.PIDs) {
			t.Fatalf("ParseVia(%q) = %+v, but its String %q parses as %+v, %v", s, v, v.String(), again, err)
		}
	})
}

// proxy is a plain TCP forwarder on 127.0.0.1:0 to a fixed address, for
// use as a --via tunnel. close stops it and waits for its goroutines.
type proxy struct {
	ln    net.Listener
	to    string
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
}

func startProxy(t *testing.T, to string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, to: to, conns: map[net.Conn]bool{}}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.serve(c) })
		}
	})
	t.Cleanup(p.close)
	return p
}

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *proxy) serve(c net.Conn) {
	defer c.Close()
	if !p.track(c) {
		return
	}
	u, err := net.Dial("tcp", p.to)
	if err != nil {
		return
	}
	defer u.Close()
	if !p.track(u) {
		return
	}
	var wg sync.WaitGroup
	half := func(dst, src net.Conn) {
		io.Copy(dst, src)
		dst.(*net.TCPConn).CloseWrite()
	}
	wg.Go(func() { half(u, c) })
	half(c, u)
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// freePort returns a loopback address whose port was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestBenchVia measures two plain TCP forwarders as --via tunnels, one
// with PIDs (this process) and one without.
func TestBenchVia(t *testing.T) {
	bin := braidBinary(t)
	target := freePort(t)
	fwd, plain := startProxy(t, target), startProxy(t, target)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	for _, asJSON := range []bool{false, true} {
		var out bytes.Buffer
		r, err := tunbench.Bench(ctx, tunbench.Options{Binary: bin, Out: &out, Rounds: 2, Quick: true, Bytes: 4 << 20, JSON: asJSON,
			Target: target, Via: []tunbench.Via{
				{Name: "fwd", Addr: fwd.ln.Addr().String(), PIDs: []int{os.Getpid()}},
				{Name: "plain", Addr: plain.ln.Addr().String()},
			}})
		t.Logf("output:\n%s", out.String())
		if err != nil {
			t.Fatal(err)
		}
		if r.Target != target || len(r.Vias) != 2 {
			t.Errorf("report target %q vias %+v", r.Target, r.Vias)
		}
		for _, m := range r.Metrics {
			if len(m.Vias) != 2 || m.Vias[0].Name != "fwd" || m.Vias[1].Name != "plain" {
				t.Fatalf("%s: vias %+v, want fwd and plain", m.Key, m.Vias)
			}
			wantFwd := m.HasDirect || strings.HasPrefix(m.Key, "rss_total")
			wantPlain := m.HasDirect
			for i, want := range []bool{wantFwd, wantPlain} {
				f := m.Vias[i]
				if f.Measured != want {
					t.Errorf("%s via %s: measured %v, want %v", m.Key, f.Name, f.Measured, want)
				}
				rounds := 2
				if m.Key == "rss_total_base" {
					rounds = 1 // taken once, before the first round
				}
				if want && (f.Value <= 0 || len(f.Rounds) != rounds || f.BraidRatio <= 0) {
					t.Errorf("%s via %s: %+v, want a value from %d rounds and a ratio", m.Key, f.Name, f, rounds)
				}
			}
		}
		if m := r.Metric("rss_total_idle"); m == nil || m.Braid <= r.Metric("rss_client_idle").Braid {
			t.Errorf("rss_total_idle %+v, want braid client + server", m)
		}
		if asJSON {
			var got tunbench.Report
			dec := json.NewDecoder(&out)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("the output is not one JSON report: %v", err)
			}
			if m := got.Metric("echo_p50"); m == nil || len(m.Vias) != 2 || len(m.Vias[0].Rounds) != 2 || len(got.Vias) != 2 || got.Vias[0].PIDs[0] != os.Getpid() {
				t.Errorf("decoded report lacks the vias: %+v", got)
			}
			continue
		}
		for _, want := range []string{"braid/direct", "braid/fwd", " fwd ", " plain ", "via:      fwd at ", "target:   " + target,
			"client + server RSS, 100 idle connections", "direct, braid, fwd, plain in turn"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q", want)
			}
		}
	}
}

func TestBenchViaErrors(t *testing.T) {
	bin := braidBinary(t)
	target := freePort(t)
	// A listener that answers like some other bench target.
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer other.Close()
	wg.Go(func() {
		for {
			c, err := other.Accept()
			if err != nil {
				return
			}
			c.Write(make([]byte, 16))
			c.Close()
		}
	})
	closed := freePort(t)
	ok := tunbench.Via{Name: "v", Addr: other.Addr().String()}
	tests := []struct {
		name   string
		target string
		via    []tunbench.Via
		want   string
	}{
		{"no fixed target", "", []tunbench.Via{ok}, "fixed port"},
		{"bad target", "nowhere", nil, "--target"},
		{"twice the same name", target, []tunbench.Via{ok, ok}, "used twice"},
		{"bad name", target, []tunbench.Via{{Name: "braid", Addr: ok.Addr}}, "taken"},
		{"no such process", target, []tunbench.Via{{Name: "v", Addr: ok.Addr, PIDs: []int{1 << 30}}}, "is the process running"},
		{"nothing listening", target, []tunbench.Via{{Name: "v", Addr: closed}}, "is that tunnel running"},
		{"another target", target, []tunbench.Via{ok}, "some other bench target"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tunbench.Bench(t.Context(), tunbench.Options{Binary: bin, Out: io.Discard, Quick: true, Rounds: 1, Target: tc.target, Via: tc.via})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
