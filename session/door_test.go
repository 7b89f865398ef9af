package session_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/braidmux/braid/session"
)

// Errors at the door: a braid side that meets something else is told
// what in words, in the handshake. One test per kind of peer.

// listen returns a loopback listener closed when the test ends.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// dialClient runs session.Client against addr and returns its error.
func dialClient(t *testing.T, addr string) error {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s, err := session.Client(c, &session.Config{HandshakeTimeout: 5 * time.Second})
	if err == nil {
		s.Close()
		t.Fatal("the handshake succeeded against a peer that does not speak braid")
	}
	return err
}

func wantDoorError(t *testing.T, err error, words string) {
	t.Helper()
	if !errors.Is(err, session.ErrHandshake) {
		t.Fatalf("error %q does not match ErrHandshake", err)
	}
	if !strings.Contains(err.Error(), words) {
		t.Fatalf("error %q does not say %q", err, words)
	}
}

func TestDoorYamuxServer(t *testing.T) {
	ln := listen(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		cfg := yamux.DefaultConfig()
		cfg.LogOutput = io.Discard
		s, err := yamux.Server(c, cfg)
		if err != nil {
			c.Close()
			return
		}
		<-s.CloseChan() // it ends on reading our HELLO
	}()
	wantDoorError(t, dialClient(t, ln.Addr().String()), "yamux")
	<-done
}

func TestDoorYamuxClient(t *testing.T) {
	ln := listen(t)
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	ys, err := yamux.Client(c1, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ys.Close()
	// Opening a stream sends a yamux SYN: the first bytes the server
	// reads. (yamux ends its session on reading the server's HELLO.)
	if _, err := ys.Open(); err != nil {
		t.Fatal(err)
	}
	_, err = session.Server(c2, &session.Config{HandshakeTimeout: 5 * time.Second})
	wantDoorError(t, err, "peer speaks yamux")
}

func TestDoorHTTPServer(t *testing.T) {
	ln := listen(t)
	srv := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	wantDoorError(t, dialClient(t, ln.Addr().String()), "peer answered with HTTP")
}

func TestDoorEchoServer(t *testing.T) {
	ln := listen(t)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	wantDoorError(t, dialClient(t, ln.Addr().String()), "peer echoed our HELLO")
}

func TestDoorTwoClients(t *testing.T) {
	c1, c2 := net.Pipe()
	errc := make(chan error, 1)
	go func() {
		s, err := session.Client(c2, &session.Config{HandshakeTimeout: 5 * time.Second})
		if err == nil {
			s.Close()
		}
		errc <- err
	}()
	_, err := session.Client(c1, &session.Config{HandshakeTimeout: 5 * time.Second})
	wantDoorError(t, err, "both sides are clients")
	wantDoorError(t, <-errc, "both sides are clients")

	c3, c4 := net.Pipe()
	go func() {
		s, err := session.Server(c4, &session.Config{HandshakeTimeout: 5 * time.Second})
		if err == nil {
			s.Close()
		}
		errc <- err
	}()
	_, err = session.Server(c3, &session.Config{HandshakeTimeout: 5 * time.Second})
	wantDoorError(t, err, "both sides are servers")
	wantDoorError(t, <-errc, "both sides are servers")
}

// A client and a server still agree, of course (and the stream works).
func TestDoorClientServer(t *testing.T) {
	c1, c2 := net.Pipe()
	go func() {
		s, err := session.Server(c2, nil)
		if err != nil {
			return
		}
		defer s.Close()
		st, err := s.AcceptStream(context.Background())
		if err == nil {
			io.Copy(st, st)
			st.Close()
		}
	}()
	c, err := session.Client(c1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte("hi"))
	st.CloseWrite()
	if b, err := io.ReadAll(st); err != nil || string(b) != "hi" {
		t.Fatalf("echo: %q, %v", b, err)
	}
}
