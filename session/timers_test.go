package session

import (
	"errors"
	"io"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/braidmux/braid/frame"
)

// Timer tests in fake time: each runs in a synctest bubble over net.Pipe
// (made in the bubble, so every goroutine of the session blocks durably),
// where time.Sleep moves the bubble's clock once everything else is
// blocked. Times are exact: a timer set for d fires at d, and the checks
// "not before" look at the session an instant (1 ms) before.
//
// synctest.Test also fails a test whose session leaves a goroutine
// running once its cleanups (Session.Close) are done.

// justBefore is how long before a timer's due time "not yet" is checked.
const justBefore = time.Millisecond

// sleepUntil sleeps until the bubble's clock reads at, then waits for
// every goroutine of the bubble to block, so that whatever a timer due by
// then set off has happened.
func sleepUntil(at time.Time) {
	time.Sleep(time.Until(at))
	synctest.Wait()
}

// pipePeer is newFakePeerOn over a net.Pipe, for use inside a bubble.
func pipePeer(t *testing.T, cfg *Config, o fakeOpts) *fakePeer {
	t.Helper()
	mine, theirs := net.Pipe()
	return newFakePeerOn(t, mine, theirs, cfg, o)
}

// resetsOn returns the RESET frames the session sent on stream id.
func resetsOn(fp *fakePeer, id uint32) []frame.Frame {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	var rs []frame.Frame
	for _, f := range fp.frames {
		if f.Type == frame.Reset && f.StreamID == id {
			rs = append(rs, f)
		}
	}
	return rs
}

// TestKeepaliveSynctest: a peer that never answers PINGs (and sends
// nothing else) is given up after KeepAliveTimeout at the earliest and
// KeepAliveInterval+KeepAliveTimeout at the latest; one that answers keeps
// the session up indefinitely.
func TestKeepaliveSynctest(t *testing.T) {
	const interval, timeout = 15 * time.Second, 10 * time.Second
	cfg := &Config{KeepAliveInterval: interval, KeepAliveTimeout: timeout}

	t.Run("SilentPeer", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fp := pipePeer(t, cfg, fakeOpts{noPingAnswer: true})
			start := time.Now()
			var took time.Duration
			ended := make(chan struct{})
			go func() {
				<-fp.sess.CloseChan()
				took = time.Since(start)
				close(ended)
			}()

			sleepUntil(start.Add(timeout - justBefore))
			if fp.sess.IsClosed() {
				t.Fatalf("session closed %v after start, before KeepAliveTimeout (%v): %v", time.Since(start), timeout, fp.sess.Err())
			}
			sleepUntil(start.Add(interval + timeout))
			select {
			case <-ended:
			default:
				t.Fatalf("session still open %v after start; a silent peer must be given up by KeepAliveInterval+KeepAliveTimeout", time.Since(start))
			}
			if took < timeout {
				t.Fatalf("session closed %v after start, before KeepAliveTimeout (%v)", took, timeout)
			}
			t.Logf("silent peer given up after %v", took)
			err := fp.sess.Err()
			if !errors.Is(err, ErrKeepAliveTimeout) || !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Err() = %v, want ErrKeepAliveTimeout matching net.ErrClosed", err)
			}
			fp.mu.Lock()
			pings := len(fp.pings)
			fp.mu.Unlock()
			if pings == 0 {
				t.Fatal("the session sent no PING before giving up")
			}
		})
	})

	t.Run("AnsweringPeer", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fp := pipePeer(t, cfg, fakeOpts{})
			start := time.Now()
			const alive = 10 * time.Minute
			sleepUntil(start.Add(alive))
			if fp.sess.IsClosed() {
				t.Fatalf("session with an answering peer closed %v after start: %v", time.Since(start), fp.sess.Err())
			}
			// Keepalive ran all along: a PING at least every interval.
			fp.mu.Lock()
			pings := len(fp.pings)
			fp.mu.Unlock()
			if want := int(alive / interval); pings < want {
				t.Fatalf("the session sent %d PINGs in %v, want at least %d (one per KeepAliveInterval %v)", pings, alive, want, interval)
			}
			// And the session still works.
			if err := fp.write(syn(2, []byte("hi"), 0)); err != nil {
				t.Fatal(err)
			}
			st := accept(t, fp.sess)
			if got := string(readN(t, st, 2)); got != "hi" {
				t.Fatalf("read %q, want %q", got, "hi")
			}
		})
	})
}

// TestStreamCloseTimeoutSynctest: a stream closed here whose peer never
// closes its side is reset with CANCEL at StreamCloseTimeout, not before;
// one whose peer closes in time is never reset.
func TestStreamCloseTimeoutSynctest(t *testing.T) {
	const closeTimeout = time.Minute
	// The slack a design may take beyond StreamCloseTimeout (a sweep
	// rather than a timer per stream, say).
	const slack = time.Second
	cfg := &Config{StreamCloseTimeout: closeTimeout, KeepAliveInterval: -1}

	// setup opens stream 1 from the fake peer, accepts it, closes it here
	// at the returned time and waits for the FIN.
	setup := func(t *testing.T) (*fakePeer, *Stream, time.Time) {
		fp := pipePeer(t, cfg, fakeOpts{client: true})
		if err := fp.write(syn(1, nil, 0)); err != nil {
			t.Fatal(err)
		}
		st := accept(t, fp.sess)
		closedAt := time.Now()
		if err := st.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		fp.waitFor("FIN of stream 1", func() bool {
			_, ok := fp.findFrameLocked(func(f *frame.Frame) bool {
				return f.Type == frame.Data && f.StreamID == 1 && f.Flags.Has(frame.FlagFIN)
			})
			return ok
		})
		return fp, st, closedAt
	}

	t.Run("PeerNeverCloses", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fp, _, closedAt := setup(t)
			sleepUntil(closedAt.Add(closeTimeout - justBefore))
			if rs := resetsOn(fp, 1); len(rs) != 0 {
				t.Fatalf("RESET %v on stream 1 %v after Close, before StreamCloseTimeout (%v)", &rs[0], time.Since(closedAt), closeTimeout)
			}
			if n := fp.sess.NumStreams(); n != 1 {
				t.Fatalf("NumStreams = %d before StreamCloseTimeout, want 1 (the peer has not closed)", n)
			}
			sleepUntil(closedAt.Add(closeTimeout + slack))
			rs := resetsOn(fp, 1)
			if len(rs) != 1 || rs[0].ErrorCode != frame.Cancel {
				t.Fatalf("%v after Close the session sent RESETs %v on stream 1, want one RESET CANCEL", time.Since(closedAt), rs)
			}
			if n := fp.sess.NumStreams(); n != 0 {
				t.Fatalf("NumStreams = %d after the close timeout, want 0", n)
			}
			fp.ping(0xc105e) // the session lives on
		})
	})

	t.Run("PeerClosesInTime", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fp, _, closedAt := setup(t)
			sleepUntil(closedAt.Add(closeTimeout - 10*time.Second))
			if err := fp.write(data(1, nil, frame.FlagFIN)); err != nil {
				t.Fatal(err)
			}
			fp.ping(0xf1)
			if n := fp.sess.NumStreams(); n != 0 {
				t.Fatalf("NumStreams = %d once both sides closed, want 0", n)
			}
			sleepUntil(closedAt.Add(3 * closeTimeout))
			if rs := resetsOn(fp, 1); len(rs) != 0 {
				t.Fatalf("RESET %v on stream 1, whose peer closed in time", &rs[0])
			}
			fp.ping(0xf2)
		})
	})
}

// TestDeadlineSynctest: Read and Write deadlines fire at their time, not
// before, including a deadline moved while the call is blocked.
func TestDeadlineSynctest(t *testing.T) {
	const d = 3 * time.Second

	// pair returns a client stream and the server's end of it, over a
	// net.Pipe. The server's receive window is the minimum, so a Write of
	// more blocks on flow control while nobody reads.
	pair := func(t *testing.T) (*Stream, *Stream) {
		c1, c2 := net.Pipe()
		c, s := sessionPairOn(t, c1, c2, nil, &Config{InitialStreamWindow: 1024, MaxStreamWindow: 1024})
		st := open(t, c)
		if _, err := st.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
		peer := accept(t, s)
		readN(t, peer, 1)
		return st, peer
	}

	// blocked calls f in a goroutine and returns its outcome's channel,
	// checking that f does not return before the bubble is idle.
	blocked := func(t *testing.T, what string, f func() (int, error)) <-chan result {
		ch := make(chan result, 1)
		go func() {
			n, err := f()
			ch <- result{n: n, err: err}
		}()
		synctest.Wait()
		select {
		case r := <-ch:
			t.Fatalf("%s returned at once (%d, %v); want it blocked", what, r.n, r.err)
		default:
		}
		return ch
	}

	// firesAt checks that the call behind ch is still blocked just before
	// at and has failed with a timeout at exactly at.
	firesAt := func(t *testing.T, what string, ch <-chan result, at time.Time) result {
		t.Helper()
		sleepUntil(at.Add(-justBefore))
		select {
		case r := <-ch:
			t.Fatalf("%s returned (%d, %v) %v before its deadline", what, r.n, r.err, time.Until(at))
		default:
		}
		sleepUntil(at)
		select {
		case r := <-ch:
			wantTimeout(t, what, r.err)
			return r
		default:
			t.Fatalf("%s still blocked at its deadline", what)
			return result{}
		}
	}

	t.Run("Read", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st, _ := pair(t)
			at := time.Now().Add(d)
			st.SetReadDeadline(at)
			ch := blocked(t, "Read", func() (int, error) { return st.Read(make([]byte, 10)) })
			if r := firesAt(t, "Read", ch, at); r.n != 0 {
				t.Fatalf("Read returned %d bytes with the timeout", r.n)
			}
			// The deadline stays passed: a new Read fails at once.
			if _, err := st.Read(make([]byte, 10)); err == nil {
				t.Fatal("Read after the deadline passed succeeded")
			} else {
				wantTimeout(t, "Read after the deadline", err)
			}
		})
	})

	t.Run("ReadDeadlineMovedWhileBlocked", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st, _ := pair(t)
			start := time.Now()
			st.SetReadDeadline(start.Add(d))
			ch := blocked(t, "Read", func() (int, error) { return st.Read(make([]byte, 10)) })
			sleepUntil(start.Add(time.Second))
			later := start.Add(2 * d)
			st.SetReadDeadline(later)
			firesAt(t, "Read with its deadline moved later", ch, later)

			// Moved earlier while blocked: fires at the earlier time.
			start = time.Now()
			st.SetReadDeadline(start.Add(time.Hour))
			ch = blocked(t, "Read", func() (int, error) { return st.Read(make([]byte, 10)) })
			sleepUntil(start.Add(time.Second))
			earlier := start.Add(d)
			st.SetReadDeadline(earlier)
			firesAt(t, "Read with its deadline moved earlier", ch, earlier)
		})
	})

	t.Run("Write", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st, _ := pair(t)
			at := time.Now().Add(d)
			st.SetWriteDeadline(at)
			p := make([]byte, 64<<10)
			ch := blocked(t, "Write", func() (int, error) { return st.Write(p) })
			if r := firesAt(t, "Write blocked on flow control", ch, at); r.n >= len(p) {
				t.Fatalf("Write returned n = %d with the timeout, want less than %d", r.n, len(p))
			}
		})
	})

	t.Run("ReadUnblockedByData", func(t *testing.T) {
		// A deadline that has not passed does not disturb a Read that
		// data satisfies, nor does it fire afterwards.
		synctest.Test(t, func(t *testing.T) {
			st, peer := pair(t)
			start := time.Now()
			st.SetReadDeadline(start.Add(d))
			ch := blocked(t, "Read", func() (int, error) { return st.Read(make([]byte, 10)) })
			sleepUntil(start.Add(time.Second))
			if _, err := peer.Write([]byte("abc")); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			select {
			case r := <-ch:
				if r.n != 3 || r.err != nil {
					t.Fatalf("Read = (%d, %v), want (3, nil)", r.n, r.err)
				}
			default:
				t.Fatal("Read still blocked after data arrived")
			}
			st.SetReadDeadline(time.Time{})
			ch = blocked(t, "Read with no deadline", func() (int, error) { return st.Read(make([]byte, 10)) })
			sleepUntil(start.Add(10 * d))
			select {
			case r := <-ch:
				t.Fatalf("Read with the deadline cleared returned (%d, %v)", r.n, r.err)
			default:
			}
			peer.Write([]byte("z")) // let the Read go
			if r := <-ch; r.n != 1 || r.err != nil {
				t.Fatalf("Read = (%d, %v), want (1, nil)", r.n, r.err)
			}
		})
	})
}

// TestHandshakeTimeoutSynctest: Client and Server facing a peer that
// sends nothing fail with ErrHandshake at HandshakeTimeout (not before,
// and at most hsSlack after), and close the connection.
func TestHandshakeTimeoutSynctest(t *testing.T) {
	const hs = 7 * time.Second
	const hsSlack = 100 * time.Millisecond // beyond HandshakeTimeout, for a design's clean-up
	cfg := &Config{HandshakeTimeout: hs}
	for _, role := range []string{"Client", "Server"} {
		for _, reads := range []bool{true, false} {
			name := role + "/PeerReads"
			if !reads {
				name = role + "/PeerDeaf" // reads nothing either: even the HELLO write blocks
			}
			t.Run(name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					mine, theirs := net.Pipe()
					defer mine.Close()
					drained := make(chan struct{})
					if reads {
						go func() {
							defer close(drained)
							io.Copy(io.Discard, mine)
						}()
					}
					start := time.Now()
					var err error
					var took time.Duration
					returned := make(chan struct{})
					go func() {
						if role == "Client" {
							_, err = Client(theirs, cfg)
						} else {
							_, err = Server(theirs, cfg)
						}
						took = time.Since(start)
						close(returned)
					}()
					sleepUntil(start.Add(hs - justBefore))
					select {
					case <-returned:
						t.Fatalf("%s returned %v after %v, before HandshakeTimeout (%v)", role, err, took, hs)
					default:
					}
					sleepUntil(start.Add(hs + hsSlack))
					select {
					case <-returned:
					default:
						t.Fatalf("%s still waiting %v after start (HandshakeTimeout %v)", role, time.Since(start), hs)
					}
					if !errors.Is(err, ErrHandshake) {
						t.Fatalf("%s: err = %v, want ErrHandshake", role, err)
					}
					t.Logf("%s gave up after %v", role, took)
					// The session closed the connection.
					if reads {
						<-drained
					} else {
						mine.SetReadDeadline(time.Now().Add(time.Second))
						buf := make([]byte, 64)
						for {
							if _, err := mine.Read(buf); err != nil {
								if !errors.Is(err, io.EOF) {
									t.Fatalf("reading the peer's end: %v, want io.EOF (the session closed its end)", err)
								}
								break
							}
						}
					}
				})
			})
		}
	}
}
