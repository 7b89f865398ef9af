package session

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

func TestSmokeEcho(t *testing.T) {
	c, s := sessionPair(t, nil, nil)
	go func() {
		st, err := s.AcceptStream(context.Background())
		if err != nil {
			return
		}
		io.Copy(st, st)
		st.Close()
	}()
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("hello braid "), 100000)
	go func() { st.Write(msg); st.CloseWrite() }()
	got, err := io.ReadAll(st)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo mismatch: %d vs %d", len(got), len(msg))
	}
	st.Close()
}

func TestNettestConn(t *testing.T) {
	nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
		c1, c2 := tcpPair(t)
		type res struct {
			s   *Session
			err error
		}
		ch := make(chan res, 1)
		go func() { s, err := Server(c2, nil); ch <- res{s, err} }()
		cs, err := Client(c1, nil)
		if err != nil {
			return nil, nil, nil, err
		}
		r := <-ch
		if r.err != nil {
			return nil, nil, nil, r.err
		}
		a, err := cs.OpenStream(context.Background())
		if err != nil {
			return nil, nil, nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b, err := r.s.AcceptStream(ctx)
		if err != nil {
			return nil, nil, nil, err
		}
		return a, b, func() { cs.Close(); r.s.Close() }, nil
	})
}
