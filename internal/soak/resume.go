package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	"github.com/braidmux/braid/internal/cutrelay"
	"github.com/braidmux/braid/session"
)

// resumable is a resumable client and server session (-resume) talking
// through a relay that a goroutine cuts every 0.2-3 s.
type resumable struct {
	cli, srv *session.Session
	l        *session.Listener
	relay    *cutrelay.Relay
	stop     chan struct{} // closed to stop cutting
	stopped  chan struct{} // closed when the cutting goroutine has returned
	cuts     atomic.Int64  // cuts that reset a live connection
}

// startResumable starts a Listener on loopback, a relay in front of it, a
// client session dialled through the relay, and the goroutine that cuts
// it.
func startResumable(ctx context.Context, cfg *session.Config, rng *rand.Rand, life time.Duration) (*resumable, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &resumable{l: session.NewListener(ln, cfg), stop: make(chan struct{}), stopped: make(chan struct{})}
	if r.relay, err = cutrelay.New(ln.Addr().String(), nil); err != nil {
		r.l.Close()
		return nil, err
	}
	type accepted struct {
		s   *session.Session
		err error
	}
	acc := make(chan accepted, 1)
	go func() {
		s, err := r.l.Accept()
		acc <- accepted{s, err}
	}()
	if r.cli, err = session.Dial(ctx, r.relay.Dial, cfg); err != nil {
		r.l.Close() // ends the Accept
		r.relay.Close()
		<-acc
		return nil, fmt.Errorf("dial: %w", err)
	}
	a := <-acc
	if a.err != nil {
		r.cli.Close()
		r.l.Close()
		r.relay.Close()
		return nil, fmt.Errorf("accept: %w", a.err)
	}
	r.srv = a.s
	crng := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
	go r.cutLoop(crng, life)
	return r, nil
}

// cutLoop cuts the connection at random moments until stop is closed.
func (r *resumable) cutLoop(rng *rand.Rand, life time.Duration) {
	defer close(r.stopped)
	for {
		pause := 200*time.Millisecond + time.Duration(rng.Int64N(int64(2800*time.Millisecond)))
		t := time.NewTimer(min(pause, life))
		select {
		case <-r.stop:
			t.Stop()
			return
		case <-t.C:
		}
		if r.relay.Cut() > 0 {
			r.cuts.Add(1)
		}
	}
}

// check stops the cutting and checks that the session came back from
// every cut: a Ping gets through, and both sides counted at least one
// resume (if anything was cut) and no more than the cuts (a cut during a
// resume handshake costs that attempt, not a resume). The server may
// count one more than the client: a cut can take the server's ACCEPTED
// after the server has switched to the new connection.
func (r *resumable) check() error {
	close(r.stop)
	<-r.stopped
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := r.cli.Ping(ctx); err != nil {
		return fmt.Errorf("no PING answer after the last cut: %w", err)
	}
	cuts := r.cuts.Load()
	cr, sr := int64(r.cli.Stats().Resumes), int64(r.srv.Stats().Resumes)
	var errs []error
	if cuts > 0 && cr == 0 {
		errs = append(errs, fmt.Errorf("%d cuts and no resume", cuts))
	}
	if cr > cuts {
		errs = append(errs, fmt.Errorf("client resumed %d times after %d cuts", cr, cuts))
	}
	if sr < cr || sr > cuts {
		errs = append(errs, fmt.Errorf("server resumed %d times, client %d, after %d cuts", sr, cr, cuts))
	}
	fmt.Printf("  %d cuts, resumed %d times (server %d)\n", cuts, cr, sr)
	return errors.Join(errs...)
}

// close releases the Listener and the relay (the sessions are closed by
// runSession).
func (r *resumable) close() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.stopped
	r.cli.Close()
	r.srv.Close()
	r.l.Close()
	r.relay.Close()
}
