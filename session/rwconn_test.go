package session_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/braidmux/braid/session"
)

// pipeEnd is one end of two io.Pipes: an io.ReadWriteCloser that is not
// a net.Conn, like a process's stdin and stdout.
type pipeEnd struct {
	*io.PipeReader
	*io.PipeWriter
}

func (p pipeEnd) Close() error {
	p.PipeWriter.Close()
	return p.PipeReader.Close()
}

func pipeEnds() (pipeEnd, pipeEnd) {
	r1, w1 := io.Pipe()
	r2, w2 := io.Pipe()
	return pipeEnd{r1, w2}, pipeEnd{r2, w1}
}

// A session runs over any io.ReadWriteCloser through RWConn.
func ExampleRWConn() {
	a, b := pipeEnds() // e.g. the stdin/stdout of a child process
	go func() {
		srv, err := session.Server(session.RWConn(b), nil)
		if err != nil {
			return
		}
		defer srv.Close()
		st, err := srv.AcceptStream(context.Background())
		if err != nil {
			return
		}
		io.Copy(st, st) // echo
		st.Close()
	}()
	cli, err := session.Client(session.RWConn(a), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	st, err := cli.OpenStream(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	st.Write([]byte("hello over a pipe"))
	st.CloseWrite()
	reply, _ := io.ReadAll(st)
	fmt.Printf("%s (%s)\n", reply, cli.RemoteAddr().Network())
	// Output: hello over a pipe (rwc)
}

func TestRWConn(t *testing.T) {
	a, b := pipeEnds()
	type res struct {
		s   *session.Session
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := session.Server(session.RWConn(b), nil)
		ch <- res{s, err}
	}()
	cli, err := session.Client(session.RWConn(a), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	srv := r.s
	conn := session.RWConn(a)
	if err := conn.SetReadDeadline(time.Now()); !errors.Is(err, session.ErrNoDeadlines) {
		t.Fatalf("SetReadDeadline on an io.ReadWriteCloser: %v, want ErrNoDeadlines", err)
	}
	if got := cli.LocalAddr().Network(); got != "rwc" {
		t.Fatalf("LocalAddr().Network() = %q, want rwc", got)
	}

	// Data both ways, and a stream read deadline (which the session
	// keeps itself: the conn has none).
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	errc := make(chan error, 1)
	go func() {
		st, err := srv.AcceptStream(context.Background())
		if err != nil {
			errc <- err
			return
		}
		_, err = io.Copy(st, st)
		st.CloseWrite()
		errc <- err
	}()
	st, err := cli.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		st.Write(want)
		st.CloseWrite()
	}()
	got, err := io.ReadAll(st)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("echo: %d of %d bytes, %v", len(got), len(want), err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	st2, err := cli.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st2.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := st2.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past its deadline: %v", err)
	}

	// Close ends both sides, although the conn has no deadlines.
	cli.Close()
	select {
	case <-srv.CloseChan():
	case <-time.After(5 * time.Second):
		t.Fatal("server session still open 5 s after the client closed")
	}
	srv.Close()
}
