package tunbench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braidmux/braid/internal/tunbench"
	"go.uber.org/goleak"
)

var (
	binDir    string
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	var err error
	binDir, err = os.MkdirTemp("", "tunbench-test-")
	if err != nil {
		panic(err)
	}
	code := m.Run()
	if code == 0 {
		// Everything Bench and Demo start must be gone when they return.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
		if left := processesOf(binPath); len(left) > 0 {
			fmt.Fprintln(os.Stderr, "braid processes left running:", left)
			code = 1
		}
	}
	os.RemoveAll(binDir)
	os.Exit(code)
}

// processesOf returns the PIDs of running processes whose command is
// binary (Linux only; nil elsewhere or if binary is "").
func processesOf(binary string) []string {
	if binary == "" {
		return nil
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var pids []string
	for _, d := range dirs {
		cmdline, err := os.ReadFile(d + "/cmdline")
		if err != nil {
			continue
		}
		if arg0, _, _ := bytes.Cut(cmdline, []byte{0}); string(arg0) == binary {
			pids = append(pids, filepath.Base(d))
		}
	}
	return pids
}

// braidBinary builds cmd/braid once per test run and returns its path.
func braidBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the braid binary; skipped with -short")
	}
	buildOnce.Do(func() {
		gobin, err := exec.LookPath("go")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(binDir, "braid")
		out, err := exec.Command(gobin, "build", "-o", binPath, "github.com/braidmux/braid/cmd/braid").CombinedOutput()
		if err != nil {
			buildErr = err
			binPath = ""
			t.Logf("go build output:\n%s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build cmd/braid: %v", buildErr)
	}
	return binPath
}

func TestBenchQuick(t *testing.T) {
	bin := braidBinary(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	r, err := tunbench.Bench(ctx, tunbench.Options{Binary: bin, Out: &out, Rounds: 1, Quick: true})
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"download_1conn", "download_parallel", "echo_p50", "echo_p99", "loaded_echo_p50",
		"loaded_echo_p99", "conn_rate", "rss_client_idle", "rss_server_idle", "rss_client_base", "rss_server_base"}
	if len(r.Metrics) != len(keys) {
		t.Errorf("%d metrics, want %d", len(r.Metrics), len(keys))
	}
	for _, k := range keys {
		m := r.Metric(k)
		if m == nil {
			t.Errorf("metric %s missing", k)
			continue
		}
		if m.Braid <= 0 || len(m.BraidRounds) != 1 {
			t.Errorf("%s: braid %v (rounds %v), want > 0 from 1 round", k, m.Braid, m.BraidRounds)
		}
		if m.HasDirect && (m.Direct <= 0 || m.Ratio <= 0) {
			t.Errorf("%s: direct %v ratio %v, want > 0", k, m.Direct, m.Ratio)
		}
		if !strings.Contains(out.String(), m.Name) {
			t.Errorf("the table lacks the row %q", m.Name)
		}
	}
	for _, want := range []string{"metric", "direct", "braid", "ratio", "goal", "machine:", "go:", "command:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if len(r.Warnings) != 0 {
		t.Errorf("warnings: %q", r.Warnings)
	}
}

func TestBenchJSON(t *testing.T) {
	bin := braidBinary(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	r, err := tunbench.Bench(ctx, tunbench.Options{Binary: bin, Out: &out, Rounds: 1, Quick: true, JSON: true, Bytes: 4 << 20})
	if err != nil {
		t.Fatalf("%v\noutput:\n%s", err, out.String())
	}
	var got tunbench.Report
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("the output is not one JSON report: %v", err)
	}
	if dec.More() {
		t.Error("more than one JSON document")
	}
	if got.Bytes != 4<<20 || len(got.Metrics) != len(r.Metrics) || got.Metric("conn_rate") == nil || got.Metric("conn_rate").Braid <= 0 {
		t.Errorf("decoded report %+v differs from the returned one %+v", got, *r)
	}
}

func TestDemo(t *testing.T) {
	bin := braidBinary(t)
	var out bytes.Buffer
	start := time.Now()
	if err := tunbench.Demo(t.Context(), bin, &out); err != nil {
		t.Fatalf("%v\noutput:\n%s", err, out.String())
	}
	t.Logf("took %v; output:\n%s", time.Since(start), out.String())
	for _, want := range []string{"SHA-256 verified", "braid server --listen 127.0.0.1:", "--fingerprint SHA256:", "p99", "half-close", "reconnected in", "both exited with status 0", "next: braid help"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "\x1b[") {
		t.Error("terminal escapes written to a buffer")
	}
}

func TestErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes; skipped with -short")
	}
	if runtime.GOOS == "windows" {
		t.Skip("uses shell scripts")
	}
	script := func(body string) string {
		p := filepath.Join(t.TempDir(), "fake-braid")
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, binary string
		timeout      time.Duration
		want         string
	}{
		{"missing binary", filepath.Join(t.TempDir(), "nothing-here"), time.Minute, "start braid server"},
		{"exits at once", script("echo 'level=WARN msg=\"bad flag\"' >&2; exit 1"), time.Minute, "exited"},
		{"logs an error, then hangs", script("echo 'level=ERROR msg=\"authentication failed\"' >&2; exec sleep 60"), time.Minute, "authentication failed"},
		{"never ready", script("exec sleep 60"), 2 * time.Second, "did not log"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, run := range []struct {
				name string
				f    func(ctx context.Context) error
			}{
				{"bench", func(ctx context.Context) error {
					_, err := tunbench.Bench(ctx, tunbench.Options{Binary: tc.binary, Out: &bytes.Buffer{}, Quick: true, Rounds: 1})
					return err
				}},
				{"demo", func(ctx context.Context) error { return tunbench.Demo(ctx, tc.binary, &bytes.Buffer{}) }},
			} {
				ctx, cancel := context.WithTimeout(t.Context(), tc.timeout)
				start := time.Now()
				err := run.f(ctx)
				cancel()
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s: error %v, want one mentioning %q", run.name, err, tc.want)
				}
				// The fake sleeps 60 s: returning well before means it was
				// stopped, not waited out.
				if d := time.Since(start); d > tc.timeout/2+10*time.Second {
					t.Errorf("%s: took %v", run.name, d)
				}
			}
		})
	}
}

func TestBenchOptions(t *testing.T) {
	for _, o := range []tunbench.Options{
		{},
		{Binary: "braid", Rounds: -1},
		{Binary: "braid", Bytes: 1000},
	} {
		if _, err := tunbench.Bench(t.Context(), o); err == nil {
			t.Errorf("Bench(%+v) succeeded, want an error", o)
		}
	}
	if err := tunbench.Demo(t.Context(), "", &bytes.Buffer{}); err == nil {
		t.Error("Demo without a binary succeeded")
	}
}

// cancelOn is an io.Writer that cancels a context once the output so far
// contains a marker.
type cancelOn struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker string
	cancel context.CancelFunc
}

func (w *cancelOn) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.marker) {
		w.cancel()
	}
	return len(p), nil
}

// TestCancel cancels Bench and Demo in the middle of a transfer: they
// must return promptly with the cancellation, leaving nothing running
// (TestMain checks for goroutines and processes left behind).
func TestCancel(t *testing.T) {
	bin := braidBinary(t)
	for _, tc := range []struct {
		name, marker string
		run          func(ctx context.Context, out *cancelOn) error
	}{
		{"bench", "round 1 of", func(ctx context.Context, out *cancelOn) error {
			_, err := tunbench.Bench(ctx, tunbench.Options{Binary: bin, Out: out, Rounds: 1})
			return err
		}},
		{"demo", "2. Download", func(ctx context.Context, out *cancelOn) error {
			return tunbench.Demo(ctx, bin, out)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			out := &cancelOn{marker: tc.marker, cancel: cancel}
			start := time.Now()
			err := tc.run(ctx, out)
			if !errors.Is(err, context.Canceled) && (err == nil || !strings.Contains(err.Error(), "context canceled")) {
				t.Errorf("error %v, want the cancellation", err)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %v to return after the cancellation", d)
			}
		})
	}
}
