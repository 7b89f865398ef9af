package cutrelay_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/braidmux/braid/internal/cutrelay"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 10 * time.Second

// target is a loopback TCP server that runs handle on each connection it
// accepts and hands the connection's result to results.
type target struct {
	ln      net.Listener
	results chan result
	wg      sync.WaitGroup
	once    sync.Once

	mu    sync.Mutex
	conns []net.Conn
}

// result is what a handler saw: the bytes it read and the error that
// ended its reading.
type result struct {
	got []byte
	err error
}

// startTarget starts a target whose handler reads until an error,
// after writing reply (if any) and half-closing when the client's side
// ends in order.
func startTarget(t *testing.T, reply []byte) *target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{ln: ln, results: make(chan result, 16)}
	tg.wg.Add(1)
	go func() {
		defer tg.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tg.mu.Lock()
			tg.conns = append(tg.conns, c)
			tg.mu.Unlock()
			tg.wg.Add(1)
			go func() {
				defer tg.wg.Done()
				defer c.Close()
				got, err := io.ReadAll(c) // err is nil at io.EOF
				if err == nil && reply != nil {
					c.Write(reply)
					c.(*net.TCPConn).CloseWrite()
				}
				tg.results <- result{got, err}
			}()
		}
	}()
	t.Cleanup(tg.stop)
	return tg
}

func (tg *target) addr() string { return tg.ln.Addr().String() }

// stop closes the listener and every accepted connection and waits for
// the handlers.
func (tg *target) stop() {
	tg.once.Do(func() {
		tg.ln.Close()
		tg.mu.Lock()
		for _, c := range tg.conns {
			c.Close()
		}
		tg.mu.Unlock()
		tg.wg.Wait()
	})
}

// next returns the next handler's result.
func (tg *target) next(t *testing.T) result {
	t.Helper()
	select {
	case r := <-tg.results:
		return r
	case <-time.After(wait):
		t.Fatal("the target's handler did not finish")
		return result{}
	}
}

func dial(t *testing.T, r *cutrelay.Relay) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", r.Addr(), wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(wait))
	return c.(*net.TCPConn)
}

// pollUntil polls cond until it holds or wait passes.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// expectRefused dials r and checks that the connection is reset at once:
// the reset may arrive before the dial returns, or be what the first
// Read sees.
func expectRefused(t *testing.T, r *cutrelay.Relay) {
	t.Helper()
	c, err := net.DialTimeout("tcp", r.Addr(), wait)
	if err == nil {
		defer c.Close()
		c.SetDeadline(time.Now().Add(wait))
		_, err = c.Read(make([]byte, 1))
	}
	if !isReset(err) {
		t.Errorf("a refused connection: %v, want a reset", err)
	}
}

// isReset reports whether err is what a reset connection reports: an
// error that is not the io.EOF of an orderly close.
func isReset(err error) bool { return err != nil && !errors.Is(err, io.EOF) }

func TestNewRejectsNonLoopback(t *testing.T) {
	for _, addr := range []string{"192.0.2.1:80", "example.com:80", "no-port"} {
		if r, err := cutrelay.New(addr, nil); err == nil {
			r.Close()
			t.Errorf("New(%q) succeeded, want an error", addr)
		}
	}
}

// TestCutResetsBothSides: after Cut, the client and the server each see
// a reset, not an orderly close, and the counters say what passed.
func TestCutResetsBothSides(t *testing.T) {
	tg := startTarget(t, nil)
	r := cutrelay.Start(t, tg.addr(), nil)
	c := dial(t, r)
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "the bytes to pass", func() bool { return r.Passed(cutrelay.ToServer) == 5 })
	if n := r.Live(); n != 1 {
		t.Fatalf("Live = %d, want 1", n)
	}
	if n := r.Cut(); n != 1 {
		t.Fatalf("Cut = %d, want 1", n)
	}
	if _, err := c.Read(make([]byte, 1)); !isReset(err) {
		t.Errorf("client Read after Cut: %v, want a reset", err)
	}
	if res := tg.next(t); !isReset(res.err) || string(res.got) != "hello" {
		t.Errorf("server read %q then %v, want \"hello\" then a reset", res.got, res.err)
	}
	if live, acc := r.Live(), r.Accepted(); live != 0 || acc != 1 {
		t.Errorf("Live %d, Accepted %d; want 0, 1", live, acc)
	}
}

// TestDownRefuses: while down, a connection is reset at once and never
// reaches the target; after Up it is relayed again.
func TestDownRefuses(t *testing.T) {
	tg := startTarget(t, []byte("pong"))
	r := cutrelay.Start(t, tg.addr(), nil)
	r.Down()
	expectRefused(t, r)
	if n := r.Refused(); n != 1 {
		t.Errorf("Refused = %d, want 1", n)
	}
	if n := r.Accepted(); n != 0 {
		t.Errorf("Accepted = %d while down, want 0", n)
	}

	r.Up()
	c := dial(t, r)
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "pong" {
		t.Fatalf("after Up: read %q, %v; want \"pong\"", got, err)
	}
	if res := tg.next(t); res.err != nil || string(res.got) != "ping" {
		t.Errorf("server read %q, %v; want \"ping\"", res.got, res.err)
	}
	if n := r.Accepted(); n != 1 {
		t.Errorf("Accepted = %d, want 1", n)
	}
	// The orderly close passed through: the pair is gone.
	pollUntil(t, "the pair to end", func() bool { return r.Live() == 0 })
}

// TestCutNextAfterExact: the armed connection is cut after exactly n
// bytes in the armed direction, however the sender's writes are split.
func TestCutNextAfterExact(t *testing.T) {
	tg := startTarget(t, nil)
	r := cutrelay.Start(t, tg.addr(), nil)
	const n = 1000
	done := r.CutNextAfter(cutrelay.ToServer, n)
	c := dial(t, r)
	data := make([]byte, 3000)
	rand.NewChaCha8([32]byte{1}).Read(data)
	for _, chunk := range [][]byte{data[:10], data[10:999], data[999:]} {
		if _, err := c.Write(chunk); err != nil {
			break // the cut may land while we write
		}
	}
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("the connection was not cut")
	}
	res := tg.next(t)
	if !isReset(res.err) || !bytes.Equal(res.got, data[:n]) {
		t.Errorf("server read %d bytes then %v, want the first %d then a reset", len(res.got), res.err, n)
	}
	if got := r.Passed(cutrelay.ToServer); got != n {
		t.Errorf("Passed = %d, want %d", got, n)
	}
	if got := r.Conn(0).Carried(cutrelay.ToServer); got != n {
		t.Errorf("Carried = %d, want %d", got, n)
	}

	// Only the next connection was armed.
	c = dial(t, r)
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	if res := tg.next(t); res.err != nil || !bytes.Equal(res.got, data) {
		t.Errorf("second connection: server read %d bytes, %v; want all %d", len(res.got), res.err, len(data))
	}
}

// TestRecording: Conn.Recorded returns the first Config.Record bytes each
// direction carried, and Carried counts them all.
func TestRecording(t *testing.T) {
	reply := make([]byte, 2000)
	rand.NewChaCha8([32]byte{2}).Read(reply)
	tg := startTarget(t, reply)
	const record = 2500
	r := cutrelay.Start(t, tg.addr(), &cutrelay.Config{Record: record})
	if r.Conn(0) != nil {
		t.Fatal("Conn(0) before any connection is not nil")
	}
	sent := make([]byte, 3000)
	rand.NewChaCha8([32]byte{3}).Read(sent)
	c := dial(t, r)
	if _, err := c.Write(sent); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, reply) {
		t.Fatalf("client read %d bytes, %v; want the %d of the reply", len(got), err, len(reply))
	}
	tg.next(t)
	rc := r.Conn(0)
	if rc == nil || r.Conn(1) != nil {
		t.Fatalf("Conn(0) = %v, Conn(1) = %v; want one connection", rc, r.Conn(1))
	}
	if rec := rc.Recorded(cutrelay.ToServer); !bytes.Equal(rec, sent[:record]) {
		t.Errorf("recorded %d bytes client→server, want the first %d sent", len(rec), record)
	}
	if rec := rc.Recorded(cutrelay.ToClient); !bytes.Equal(rec, reply) {
		t.Errorf("recorded %d bytes server→client, want the %d replied", len(rec), len(reply))
	}
	if up, down := rc.Carried(cutrelay.ToServer), rc.Carried(cutrelay.ToClient); up != 3000 || down != 2000 {
		t.Errorf("Carried %d/%d, want 3000/2000", up, down)
	}
}

// TestBlackholeAndAbandon: a black hole swallows what the sender writes;
// Abandon resets the client and leaves the server's side silent until
// the server closes it.
func TestBlackholeAndAbandon(t *testing.T) {
	tg := startTarget(t, nil)
	r := cutrelay.Start(t, tg.addr(), nil)
	c := dial(t, r)
	pollUntil(t, "the connection to be relayed", func() bool { return r.Live() == 1 })
	r.Blackhole(cutrelay.ToServer)
	if _, err := c.Write(make([]byte, 500)); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "the bytes to be swallowed", func() bool { return r.Dropped(cutrelay.ToServer) == 500 })
	if n := r.Passed(cutrelay.ToServer); n != 0 {
		t.Errorf("Passed = %d through a black hole, want 0", n)
	}
	if n := r.Abandon(); n != 1 {
		t.Fatalf("Abandon = %d, want 1", n)
	}
	if _, err := c.Read(make([]byte, 1)); !isReset(err) {
		t.Errorf("client Read after Abandon: %v, want a reset", err)
	}
	if live, orphans := r.Live(), r.Orphans(); live != 0 || orphans != 1 {
		t.Errorf("Live %d, Orphans %d; want 0, 1", live, orphans)
	}
	tg.stop() // the server closes its side
	pollUntil(t, "the orphan to go", func() bool { return r.Orphans() == 0 })
}

// TestCloseLeavesNoGoroutines: Close with connections live, black-holed
// and abandoned returns once every goroutine of the relay has exited.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	tg := startTarget(t, nil)
	r, err := cutrelay.New(tg.addr(), &cutrelay.Config{Record: 64})
	if err != nil {
		t.Fatal(err)
	}
	var cs []net.Conn
	for range 4 {
		c, err := r.Dial(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("x"))
		cs = append(cs, c)
	}
	pollUntil(t, "four connections", func() bool { return r.Live() == 4 })
	r.Blackhole(cutrelay.ToClient)
	r.Abandon()
	for range 2 {
		c, err := r.Dial(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cs = append(cs, c)
	}
	pollUntil(t, "two more connections", func() bool { return r.Live() == 2 && r.Orphans() == 4 })
	r.CutNextAfter(cutrelay.ToServer, 10) // armed, never taken
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if live, orphans := r.Live(), r.Orphans(); live != 0 || orphans != 0 {
		t.Errorf("after Close: Live %d, Orphans %d; want 0, 0", live, orphans)
	}
	for _, c := range cs {
		c.Close()
	}
	tg.stop()
	goleak.VerifyNone(t, leaks)
}

// TestMaxLive: connections beyond Config.MaxLive are refused at once.
func TestMaxLive(t *testing.T) {
	tg := startTarget(t, nil)
	r := cutrelay.Start(t, tg.addr(), &cutrelay.Config{MaxLive: 1})
	dial(t, r)
	pollUntil(t, "the first connection", func() bool { return r.Live() == 1 })
	expectRefused(t, r)
	if n := r.Refused(); n != 1 {
		t.Errorf("Refused = %d, want 1", n)
	}
}
