package interop_test

import (
	"context"
	"net"
	"testing"

	"github.com/braidmux/braid/session"
)

// braidSessions returns a client and a server braid session over
// loopback TCP, closed when the test ends.
func braidSessions(tb testing.TB) (client, server *session.Session) {
	tb.Helper()
	c, s := tcpPair(tb)
	cs, ss, err := startPair(c, s,
		func(c net.Conn) (*session.Session, error) { return session.Client(c, nil) },
		func(c net.Conn) (*session.Session, error) { return session.Server(c, nil) })
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cs.Close()
		ss.Close()
	})
	return cs, ss
}

// streamDialer returns a dial function that opens a braid stream per
// connection, for grpc.WithContextDialer and http.Transport.DialContext.
func streamDialer(s *session.Session) func(ctx context.Context, _ string) (net.Conn, error) {
	return func(ctx context.Context, _ string) (net.Conn, error) {
		st, err := s.OpenStream(ctx)
		if err != nil {
			return nil, err
		}
		return st, nil
	}
}
