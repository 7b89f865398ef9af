package session

import (
	"context"
	"errors"
	"net"
	"testing"
	"testing/synctest"
	"time"
)

// TestStreamOpenTimeoutSynctest: Open waits for room in the peer's accept
// backlog for StreamOpenTimeout, not forever, then fails with
// ErrStreamOpenTimeout; the session goes on, and an Open that finds room
// succeeds. OpenStream follows its context instead.
func TestStreamOpenTimeoutSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const openTimeout = 3 * time.Second
		c1, c2 := net.Pipe()
		type res struct {
			s   *Session
			err error
		}
		ch := make(chan res, 1)
		go func() {
			s, err := Server(c2, &Config{AcceptBacklog: 1, KeepAliveInterval: -1})
			ch <- res{s, err}
		}()
		cli, err := Client(c1, &Config{StreamOpenTimeout: openTimeout, KeepAliveInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		srv := r.s
		defer srv.Close()
		defer cli.Close()

		if _, err := cli.Open(); err != nil { // fills the peer's backlog of 1
			t.Fatal(err)
		}
		synctest.Wait() // the HELLO's backlog is known; the SYN is out
		start := time.Now()
		errc := make(chan error, 1)
		go func() {
			_, err := cli.Open()
			errc <- err
		}()
		sleepUntil(start.Add(openTimeout - justBefore))
		select {
		case err := <-errc:
			t.Fatalf("Open returned %v before StreamOpenTimeout", err)
		default:
		}
		sleepUntil(start.Add(openTimeout))
		select {
		case err := <-errc:
			if !errors.Is(err, ErrStreamOpenTimeout) {
				t.Fatalf("Open after StreamOpenTimeout: %v, want ErrStreamOpenTimeout", err)
			}
		default:
			t.Fatal("Open still waiting after StreamOpenTimeout")
		}

		// OpenStream waits as long as its context says.
		ctx, cancel := context.WithTimeout(context.Background(), 10*openTimeout)
		defer cancel()
		go func() {
			_, err := cli.OpenStream(ctx)
			errc <- err
		}()
		sleepUntil(start.Add(5 * openTimeout))
		select {
		case err := <-errc:
			t.Fatalf("OpenStream with a longer context returned %v after StreamOpenTimeout", err)
		default:
		}
		// Room appears: the waiting OpenStream succeeds.
		if _, err := srv.AcceptStream(context.Background()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		select {
		case err := <-errc:
			if err != nil {
				t.Fatalf("OpenStream once the backlog had room: %v", err)
			}
		default:
			t.Fatal("OpenStream still waiting after the peer accepted a stream")
		}
		if cli.IsClosed() {
			t.Fatal("the session closed after an Open timed out")
		}
	})
}
