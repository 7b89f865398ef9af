package status_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"

	"github.com/braidmux/braid/internal/status"
	"github.com/braidmux/braid/internal/tunnel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a bytes.Buffer safe for concurrent use.
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

type snapVar struct {
	mu sync.Mutex
	s  tunnel.Snapshot
}

func (v *snapVar) get() tunnel.Snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.s
}

func (v *snapVar) set(s tunnel.Snapshot) {
	v.mu.Lock()
	v.s = s
	v.mu.Unlock()
}

// screen replays terminal output the way a VT100-style terminal with
// onlcr would show it: \n moves to column 0 of the next line; it knows
// the escapes the status block uses (cursor up, erase line, erase below)
// and fails on any other.
func screen(t *testing.T, out string) []string {
	t.Helper()
	var rows [][]rune
	row, col := 0, 0
	grow := func() {
		for len(rows) <= row {
			rows = append(rows, nil)
		}
	}
	for i := 0; i < len(out); {
		c := out[i]
		switch {
		case c == '\n':
			row, col = row+1, 0
			i++
		case c == '\r':
			col = 0
			i++
		case c == 0x1b:
			if i+1 >= len(out) || out[i+1] != '[' {
				t.Fatalf("unexpected escape at %d in %q", i, out)
			}
			j := i + 2
			for j < len(out) && out[j] >= '0' && out[j] <= '9' {
				j++
			}
			if j >= len(out) {
				t.Fatalf("truncated escape in %q", out)
			}
			n := 0
			if j > i+2 {
				n, _ = strconv.Atoi(out[i+2 : j])
			}
			grow()
			switch out[j] {
			case 'A':
				row = max(row-max(n, 1), 0)
			case 'K':
				if n == 2 {
					rows[row] = nil
				} else if col < len(rows[row]) {
					rows[row] = rows[row][:col]
				}
			case 'J':
				if col < len(rows[row]) {
					rows[row] = rows[row][:col]
				}
				rows = rows[:row+1]
			default:
				t.Fatalf("unexpected escape %q in %q", out[i:j+1], out)
			}
			i = j + 1
		default:
			r, size := utf8.DecodeRuneInString(out[i:])
			grow()
			for len(rows[row]) <= col {
				rows[row] = append(rows[row], ' ')
			}
			rows[row][col] = r
			col++
			i += size
		}
	}
	var lines []string
	for _, r := range rows {
		lines = append(lines, strings.TrimRight(string(r), " "))
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

func snapshot(up uint64) tunnel.Snapshot {
	return tunnel.Snapshot{Role: "client", Connected: true, Forwards: []tunnel.ForwardStats{
		{Name: "-L 8080:db:5432", Kind: "local", Open: 1, BytesUp: up},
		{Name: "-D 1080", Kind: "dynamic"},
	}}
}

func TestRunDrawsAndErases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out syncBuffer
		v := &snapVar{s: snapshot(0)}
		s := status.New(&out, v.get, true)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.Run(ctx, time.Second)
		}()

		synctest.Wait()
		scr := screen(t, out.String())
		if len(scr) != 3 || !strings.Contains(scr[0], "connected") ||
			!strings.Contains(scr[1], "-L 8080:db:5432") || !strings.Contains(scr[1], "up          -") {
			t.Fatalf("first draw:\n%s", strings.Join(scr, "\n"))
		}

		v.set(snapshot(2_000_000))
		time.Sleep(time.Second)
		synctest.Wait()
		scr = screen(t, out.String())
		if len(scr) != 3 || !strings.Contains(scr[1], "up   2.0 MB/s") {
			t.Fatalf("after 1s:\n%s", strings.Join(scr, "\n"))
		}

		// The next interval has no traffic: the rate drops to 0.
		time.Sleep(time.Second)
		synctest.Wait()
		scr = screen(t, out.String())
		if len(scr) != 3 || !strings.Contains(scr[1], "up      0 B/s") {
			t.Fatalf("after 2s:\n%s", strings.Join(scr, "\n"))
		}

		// Fewer forwards: the leftover line is cleared.
		s1 := snapshot(2_000_000)
		s1.Forwards = s1.Forwards[:1]
		v.set(s1)
		time.Sleep(time.Second)
		synctest.Wait()
		if scr = screen(t, out.String()); len(scr) != 2 {
			t.Fatalf("after shrinking:\n%s", strings.Join(scr, "\n"))
		}

		for _, l := range scr {
			if n := utf8.RuneCountInString(l); n >= 80 {
				t.Errorf("line of %d runes on an 80-column screen: %q", n, l)
			}
		}

		cancel()
		<-done
		if scr = screen(t, out.String()); len(scr) != 0 {
			t.Fatalf("after Run returned, screen still shows:\n%s", strings.Join(scr, "\n"))
		}
	})
}

func TestRunCapsLines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out syncBuffer
		snap := tunnel.Snapshot{Role: "server", Connected: true}
		for i := range 100 {
			snap.Forwards = append(snap.Forwards, tunnel.ForwardStats{Name: fmt.Sprintf("-R %d:h:1 (u)", 9000+i), Kind: "remote"})
		}
		s := status.New(&out, func() tunnel.Snapshot { return snap }, true)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.Run(ctx, time.Second)
		}()
		synctest.Wait()
		scr := screen(t, out.String())
		if len(scr) != 23 || !strings.Contains(scr[22], "and 79 more forwards") {
			t.Fatalf("100 forwards on a 24-line screen drew %d lines:\n%s", len(scr), strings.Join(scr, "\n"))
		}
		cancel()
		<-done
	})
}

func TestWriterInterleaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out syncBuffer
		v := &snapVar{s: snapshot(0)}
		s := status.New(&out, v.get, true)
		w := s.Writer(&out)

		// Before Run draws, logs pass straight through.
		fmt.Fprint(w, "log 0\n")

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.Run(ctx, time.Second)
		}()
		synctest.Wait()

		fmt.Fprint(w, "log 1\n")
		scr := screen(t, out.String())
		if len(scr) != 5 || scr[0] != "log 0" || scr[1] != "log 1" || !strings.Contains(scr[2], "braid client") {
			t.Fatalf("after a log line:\n%s", strings.Join(scr, "\n"))
		}

		// A line written in pieces is not split by the block, and the
		// block is not drawn (not even by a tick) until the line ends.
		fmt.Fprint(w, "log 2a ")
		time.Sleep(time.Second)
		synctest.Wait()
		fmt.Fprint(w, "log 2b\n")
		scr = screen(t, out.String())
		if len(scr) != 6 || scr[2] != "log 2a log 2b" || !strings.Contains(scr[3], "braid client") {
			t.Fatalf("after a log line in two writes:\n%s", strings.Join(scr, "\n"))
		}

		// Logs from another goroutine while the block redraws every second.
		logger := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			},
		}))
		logged := make(chan struct{})
		go func() {
			defer close(logged)
			for i := range 10 {
				logger.Info("tick", "i", i)
				time.Sleep(300 * time.Millisecond)
			}
		}()
		<-logged
		synctest.Wait()
		scr = screen(t, out.String())
		if len(scr) != 16 {
			t.Fatalf("after 10 slog lines, %d lines:\n%s", len(scr), strings.Join(scr, "\n"))
		}
		for i := range 10 {
			if want := fmt.Sprintf("level=INFO msg=tick i=%d", i); scr[3+i] != want {
				t.Errorf("line %d = %q, want %q", 3+i, scr[3+i], want)
			}
		}

		cancel()
		<-done
		fmt.Fprint(w, "after\n")
		scr = screen(t, out.String())
		if len(scr) != 14 || scr[13] != "after" {
			t.Fatalf("after Run returned:\n%s", strings.Join(scr, "\n"))
		}
	})
}

func TestWriterConcurrent(t *testing.T) {
	// Real time and real goroutines, for the race detector.
	var out syncBuffer
	s := status.New(&out, func() tunnel.Snapshot { return snapshot(0) }, true)
	w := s.Writer(&out)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx, time.Millisecond)
	}()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				fmt.Fprintf(w, "g%d line %d\n", g, i)
			}
		})
	}
	wg.Wait()
	cancel()
	<-done
	scr := screen(t, out.String())
	if len(scr) != 200 {
		t.Fatalf("got %d lines, want 200 log lines and no status", len(scr))
	}
	for _, l := range scr {
		var g, i int
		if _, err := fmt.Sscanf(l, "g%d line %d", &g, &i); err != nil {
			t.Fatalf("garbled line %q", l)
		}
	}
}

func TestDisabled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		called := false
		s := status.New(&out, func() tunnel.Snapshot { called = true; return snapshot(0) }, false)
		var inner bytes.Buffer
		if w := s.Writer(&inner); w != &inner {
			t.Errorf("disabled Writer wrapped its argument: %T", w)
		}
		s.Run(t.Context(), time.Second) // returns at once, or synctest reports a deadlock
		if out.Len() != 0 || called {
			t.Errorf("disabled Status drew %q (snap called: %v)", out.String(), called)
		}
	})
}

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "notatty")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if status.IsTerminal(f) {
		t.Error("a regular file is a terminal")
	}
	if status.IsTerminal(nil) {
		t.Error("nil is a terminal")
	}
}
