package session

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair returns two connected TCP conns on loopback.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		ch <- c
	}()
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case c2 := <-ch:
		return c1, c2
	case err := <-errc:
		t.Fatal(err)
	}
	return nil, nil
}

// sessionPair returns a connected client and server session over TCP
// loopback; both are closed when the test ends.
func sessionPair(t testing.TB, ccfg, scfg *Config) (*Session, *Session) {
	t.Helper()
	c1, c2 := tcpPair(t)
	return sessionPairOn(t, c1, c2, ccfg, scfg)
}

func sessionPairOn(t testing.TB, c1, c2 net.Conn, ccfg, scfg *Config) (*Session, *Session) {
	t.Helper()
	type res struct {
		s   *Session
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := Server(c2, scfg)
		ch <- res{s, err}
	}()
	cs, err := Client(c1, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() {
		cs.Close()
		r.s.Close()
	})
	return cs, r.s
}

// failAfter bounds every wait in these tests. It only fires when a test
// is failing; passing tests never wait for it.
const failAfter = 10 * time.Second

// result is the outcome of a call made in another goroutine.
type result struct {
	n     int
	err   error
	write bool   // the call was a Stream.Write
	call  string // which call, for failure messages
}

// waitResult waits for a call's outcome, failing the test after d.
func waitResult(t testing.TB, ch <-chan result, d time.Duration, what string) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
		return result{}
	}
}

// waitClosed waits for a session to end by itself.
func waitClosed(t testing.TB, s *Session, what string) {
	t.Helper()
	select {
	case <-s.CloseChan():
	case <-time.After(failAfter):
		t.Fatalf("%s: session did not close", what)
	}
}

// eventually polls cond until it holds, failing the test after failAfter.
// For state with no channel to wait on (counters, NumStreams).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// accept accepts one stream, failing the test if none comes.
func accept(t testing.TB, s *Session) *Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	st, err := s.AcceptStream(ctx)
	if err != nil {
		t.Fatalf("AcceptStream: %v", err)
	}
	return st
}

// open opens one stream, failing the test on error.
func open(t testing.TB, s *Session) *Stream {
	t.Helper()
	st, err := s.OpenStream(context.Background())
	if err != nil {
		t.Fatalf("OpenStream: %v", err)
	}
	return st
}

// pattern returns n pseudo-random bytes determined by seed.
func pattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// readN reads exactly n bytes from st with a deadline of failAfter.
func readN(t testing.TB, st *Stream, n int) []byte {
	t.Helper()
	st.SetReadDeadline(time.Now().Add(failAfter))
	defer st.SetReadDeadline(time.Time{})
	b := make([]byte, n)
	if _, err := io.ReadFull(st, b); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return b
}

// wantStreamError checks err is a *StreamError with code and remote.
func wantStreamError(t testing.TB, what string, err error, code uint32, remote bool) {
	t.Helper()
	var se *StreamError
	if !errors.As(err, &se) {
		t.Fatalf("%s: err = %v (%T), want *StreamError", what, err, err)
	}
	if se.Code != code || se.Remote != remote {
		t.Fatalf("%s: err = %+v, want Code %#x Remote %v", what, *se, code, remote)
	}
}

// wantTimeout checks err is a deadline error in both of the ways the
// standard library recognizes.
func wantTimeout(t testing.TB, what string, err error) {
	t.Helper()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: err = %v, want os.ErrDeadlineExceeded", what, err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s: err = %v is not a net.Error with Timeout() true", what, err)
	}
}
