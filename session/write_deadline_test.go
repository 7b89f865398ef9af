package session

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/braidmux/braid/frame"
)

// TestWriteDeadlineStuckConnection: a Write with a deadline returns at
// its deadline even when the connection write that holds its bytes is
// stuck, because the peer stopped reading (issue #13, row 6: it used to
// return only when ConnectionWriteTimeout ended the session). The bytes
// it reports written are the ones handed to the connection; Close still
// returns promptly.
func TestWriteDeadlineStuckConnection(t *testing.T) {
	const deadline = 300 * time.Millisecond
	mine, theirs := tcpPair(t)
	type res struct {
		s   *Session
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := Client(theirs, &Config{KeepAliveInterval: -1, ConnectionWriteTimeout: 5 * time.Second})
		ch <- res{s, err}
	}()
	// The raw peer: a HELLO with windows far larger than the socket
	// buffers, then it reads the session's HELLO and nothing more.
	h := fakeHello()
	h.InitialWindow, h.SessionWindow = 1<<30, 1<<30
	if _, err := mine.Write(helloBytes(h)); err != nil {
		t.Fatal(err)
	}
	rd := frame.NewReader(mine, frame.MaxMaxFrameSize)
	if f, err := rd.ReadFrame(); err != nil || f.Type != frame.Hello {
		t.Fatalf("reading the session's HELLO: %v, %v", f, err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	sess := r.s
	defer mine.Close()

	st, err := sess.OpenStream(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 64<<20) // far more than loopback's socket buffers hold
	for round := range 2 {
		st.SetWriteDeadline(time.Now().Add(deadline))
		start := time.Now()
		n, err := st.Write(p)
		took := time.Since(start)
		t.Logf("round %d: Write returned %d bytes, %v after %v", round, n, err, took)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Write against a peer that does not read: %v, want a deadline error", err)
		}
		if took > deadline+time.Second {
			t.Fatalf("Write with a %v deadline returned after %v", deadline, took)
		}
		if n >= len(p) {
			t.Fatalf("Write reported all %d bytes written to a peer that does not read", n)
		}
	}
	start := time.Now()
	sess.Close()
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Session.Close took %v with a stuck connection write", took)
	}
}
