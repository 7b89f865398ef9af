package session

import (
	"net"
	"testing"
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
