package session

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/braidmux/braid/frame"
)

// Tests of a peer that stalls in the middle of a DATA frame: it sends the
// frame's header (which announces a 32 KiB payload) and part of the
// payload, or none of it, and then nothing more, keeping the connection
// open. A Read waiting on that stream, even one whose buffer is big enough
// for the payload to be read straight into it, must still end when its
// deadline passes, when the stream is closed, and when the session is
// closed, and it must never hand out bytes of the frame that was cut
// short. Everything is observed through the public API and a fake peer
// built on package frame.

// stallBound is how long a Read may take to notice its deadline or a
// Close once the peer has stalled. The point is that it is not blocked
// until the peer sends more; the bound is generous for a loaded machine
// running -race.
const stallBound = 2 * time.Second

// stallPayload is the payload length the stalled frame's header announces.
const stallPayload = 32 << 10

// stallReadBuf is the size of the Reads' buffers: room for the whole
// stalled payload, so a design may read it straight into a Read's buffer.
const stallReadBuf = 64 << 10

// readOutcome is what one Read returned.
type readOutcome struct {
	b   []byte // copy of the bytes returned
	err error
}

// stallCase is a way of stalling: full is sent completely, then the
// stalled frame's header and the first partial bytes of its payload.
type stallCase struct {
	name    string
	full    []byte // payload of a complete frame sent first (nil: none)
	partial int    // bytes of the stalled frame's payload sent
}

var stallCases = []stallCase{
	{name: "Partial1K", partial: 1 << 10},
	{name: "HeaderOnly", partial: 0},
	{name: "CompleteThenPartial", full: pattern(7, 100), partial: 1 << 10},
}

// stallConns are the connections the tests run over: loopback TCP, and
// net.Pipe (synchronous, no buffering).
var stallConns = []struct {
	name string
	pair func(t testing.TB) (mine, theirs net.Conn)
}{
	{"TCP", func(t testing.TB) (net.Conn, net.Conn) { return tcpPair(t) }},
	{"Pipe", func(testing.TB) (net.Conn, net.Conn) { return net.Pipe() }},
}

// stallEnv is one stall test's world: a Server session under test, the
// fake client peer, and stream 1, which the peer opened and the session
// accepted.
type stallEnv struct {
	t    *testing.T
	fp   *fakePeer
	st   *Stream // stream 1, on which the peer stalls
	full []byte  // payload of the complete frame sent before the stall
	rest []byte  // the stalled frame's unsent tail

	leaked bool // a Read returned bytes of the stalled frame (reported)

	// A bystander: stream 3, with a Read blocked on it from the start,
	// when the case asks for one (nil otherwise). Whichever goroutine
	// reads the connection, a Read of another stream may be the one
	// filling stream 1's buffer when the peer stalls.
	other   *Stream
	otherCh <-chan readOutcome
}

func newStallEnv(t *testing.T, mine, theirs net.Conn, bystander bool) *stallEnv {
	t.Helper()
	// No keepalive, and the fake answers no PINGs: while the session is
	// in the middle of the stalled frame, any byte the fake sent would be
	// read as payload, and the peer would no longer be stalled.
	cfg := &Config{KeepAliveInterval: -1}
	fp := newFakePeerOn(t, mine, theirs, cfg, fakeOpts{client: true, noPingAnswer: true})
	e := &stallEnv{t: t, fp: fp}
	fs := []frame.Frame{syn(1, nil, 0)}
	if bystander {
		fs = append(fs, syn(3, nil, 0))
	}
	if err := fp.write(fs...); err != nil {
		t.Fatalf("fake peer: SYN: %v", err)
	}
	for _, f := range fs {
		st := accept(t, fp.sess)
		if st.ID() != f.StreamID {
			t.Fatalf("accepted stream %d, want %d", st.ID(), f.StreamID)
		}
		if st.ID() == 1 {
			e.st = st
		} else {
			e.other = st
		}
	}
	if bystander {
		e.otherCh = startReads(e.other)
		readerFirst()
	}
	return e
}

// bystanderBlocked checks that the bystander's Read, if any, is still
// waiting: nothing was sent on its stream and nothing closed it.
func (e *stallEnv) bystanderBlocked() {
	e.t.Helper()
	if e.other == nil {
		return
	}
	select {
	case r := <-e.otherCh:
		e.t.Fatalf("Read of the bystander stream returned %d bytes, err %v; want it still blocked", len(r.b), r.err)
	default:
	}
}

// bystanderClosed checks that the bystander's Read, if any, failed with
// an error matching net.ErrClosed once the session was closed.
func (e *stallEnv) bystanderClosed() {
	e.t.Helper()
	if e.other == nil {
		return
	}
	select {
	case r := <-e.otherCh:
		if len(r.b) > 0 || !errors.Is(r.err, net.ErrClosed) {
			e.t.Fatalf("Read of the bystander stream returned %d bytes, err %v; want none and an error matching net.ErrClosed", len(r.b), r.err)
		}
	case <-time.After(stallBound):
		e.t.Fatalf("Read of the bystander stream still blocked %v after the session was closed", stallBound)
	}
}

// stall sends c's complete frame, if any, and the start of the stalled
// frame, in one write.
func (e *stallEnv) stall(c stallCase) {
	e.t.Helper()
	var b []byte
	if c.full != nil {
		f := data(1, c.full, 0)
		b = f.Append(b)
		e.full = c.full
	}
	f := data(1, pattern(8, stallPayload), 0)
	enc := f.Append(nil)
	cut := len(enc) - stallPayload + c.partial
	b = append(b, enc[:cut]...)
	e.rest = enc[cut:]
	if err := e.fp.writeRaw(b); err != nil {
		e.t.Fatalf("fake peer: writing the stalled frame: %v", err)
	}
}

// startReads calls Read on st in a goroutine, again and again while it
// returns data with no error, and sends every outcome on the channel it
// returns. The goroutine stops after the first error.
func startReads(st *Stream) <-chan readOutcome {
	ch := make(chan readOutcome, 64)
	started := make(chan struct{})
	go func() {
		buf := make([]byte, stallReadBuf)
		close(started)
		for {
			n, err := st.Read(buf)
			ch <- readOutcome{b: bytes.Clone(buf[:n]), err: err}
			if err != nil {
				return
			}
		}
	}()
	<-started
	return ch
}

// readerFirst gives the Read goroutine a head start so that it is most
// likely blocked in Read, its buffer offered, before the stalled frame
// arrives: the case where a design may be filling that very buffer when
// the peer stalls. The assertions hold in either order; only the case
// exercised depends on it.
func readerFirst() { time.Sleep(20 * time.Millisecond) }

// got accumulates what Reads returned and checks it is a prefix of the
// complete frame's payload: not one byte of the stalled frame. A breach
// is reported once, and the test goes on to check the timing too.
func (e *stallEnv) got(sofar *[]byte, r readOutcome) {
	e.t.Helper()
	*sofar = append(*sofar, r.b...)
	if !e.leaked && !bytes.HasPrefix(e.full, *sofar) {
		e.leaked = true
		e.t.Errorf("Reads returned %d bytes (the last %d with err %v); want only a prefix of the %d bytes of the complete frame, never bytes of the frame cut short",
			len(*sofar), len(r.b), r.err, len(e.full))
	}
}

// waitErr collects Read outcomes until one with an error, which it
// returns, failing the test if none comes within d.
func (e *stallEnv) waitErr(ch <-chan readOutcome, sofar *[]byte, d time.Duration, what string) error {
	e.t.Helper()
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	for {
		select {
		case r := <-ch:
			e.got(sofar, r)
			if r.err != nil {
				return r.err
			}
		case <-timeout.C:
			e.t.Fatalf("%s: Read still blocked after %v while the peer stalls mid-frame", what, d)
			return nil
		}
	}
}

// stillBlocked checks that the Reads on ch do not fail within d: with no
// deadline and nothing closed, a stalled peer is no reason to return.
func (e *stallEnv) stillBlocked(ch <-chan readOutcome, sofar *[]byte, d time.Duration) {
	e.t.Helper()
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	for {
		select {
		case r := <-ch:
			e.got(sofar, r)
			if r.err != nil {
				e.t.Fatalf("Read with no deadline failed while the peer merely stalls: %v", r.err)
			}
		case <-timeout.C:
			return
		}
	}
}

// noMoreData checks that Reads after the stream or session ended fail and
// return nothing.
func (e *stallEnv) noMoreData(what string) {
	e.t.Helper()
	buf := make([]byte, stallReadBuf)
	for i := range 3 {
		e.st.SetReadDeadline(time.Now().Add(stallBound))
		n, err := e.st.Read(buf)
		if err == nil || n > 0 {
			e.t.Fatalf("%s: Read %d returned %d bytes, err %v; want 0 bytes and an error", what, i, n, err)
		}
		if !errors.Is(err, net.ErrClosed) {
			e.t.Fatalf("%s: Read %d: err = %v, want one matching net.ErrClosed", what, i, err)
		}
	}
}

// eachStall runs f for every connection kind and stall case, with and
// without a bystander.
func eachStall(t *testing.T, f func(t *testing.T, e *stallEnv, c stallCase)) {
	for _, cn := range stallConns {
		for _, c := range stallCases {
			for _, bystander := range []bool{false, true} {
				name := fmt.Sprintf("%s/%s/Alone", cn.name, c.name)
				if bystander {
					name = fmt.Sprintf("%s/%s/Bystander", cn.name, c.name)
				}
				t.Run(name, func(t *testing.T) {
					mine, theirs := cn.pair(t)
					f(t, newStallEnv(t, mine, theirs, bystander), c)
				})
			}
		}
	}
}

// TestStallReadDeadline: (a) a Read with a deadline, waiting when the peer
// stalls mid-frame, fails with a deadline error promptly, having returned
// at most the complete frame; so does a Read begun after the stall, and a
// blocked Read whose deadline is set while it waits. (b) Then a Read with no deadline, blocked, fails with an error
// matching net.ErrClosed when the stream is closed from another goroutine,
// and no Read returns data afterwards, even once the peer completes the
// frame.
func TestStallReadDeadline(t *testing.T) {
	eachStall(t, func(t *testing.T, e *stallEnv, c stallCase) {
		var sofar []byte

		// (a) The Read is waiting when the frame arrives. Its deadline
		// leaves room for readerFirst's head start.
		e.st.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		ch := startReads(e.st)
		readerFirst()
		e.stall(c)
		wantTimeout(t, "Read waiting when the peer stalled", e.waitErr(ch, &sofar, stallBound, "Read with a 100ms deadline"))

		// A Read that starts after the stall times out too.
		e.st.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		ch = startReads(e.st)
		wantTimeout(t, "Read begun after the stall", e.waitErr(ch, &sofar, stallBound, "Read with a 50ms deadline"))

		// So does a blocked Read whose deadline is set while it waits.
		e.st.SetReadDeadline(time.Time{})
		ch = startReads(e.st)
		e.stillBlocked(ch, &sofar, 50*time.Millisecond)
		e.st.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		wantTimeout(t, "blocked Read given a deadline", e.waitErr(ch, &sofar, stallBound, "blocked Read given a 50ms deadline"))

		// (b) No deadline: the Read blocks until the stream is closed.
		e.st.SetReadDeadline(time.Time{})
		ch = startReads(e.st)
		e.stillBlocked(ch, &sofar, 50*time.Millisecond)
		closed := make(chan error, 1)
		go func() { closed <- e.st.Close() }()
		err := e.waitErr(ch, &sofar, stallBound, "Read blocked when the stream was closed")
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read blocked when the stream was closed: err = %v, want one matching net.ErrClosed", err)
		}
		if err := <-closed; err != nil {
			t.Fatalf("Stream.Close: %v", err)
		}
		e.afterStreamClose()
	})
}

// TestStallStreamClose: a Read with no deadline, waiting when the peer
// stalls mid-frame, fails with an error matching net.ErrClosed promptly
// when the stream is closed from another goroutine; no later Read returns
// data, and the session lives on.
func TestStallStreamClose(t *testing.T) {
	eachStall(t, func(t *testing.T, e *stallEnv, c stallCase) {
		var sofar []byte
		ch := startReads(e.st)
		readerFirst()
		e.stall(c)
		e.stillBlocked(ch, &sofar, 50*time.Millisecond)
		closed := make(chan error, 1)
		go func() { closed <- e.st.Close() }()
		err := e.waitErr(ch, &sofar, stallBound, "Read blocked when the stream was closed")
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read blocked when the stream was closed: err = %v, want one matching net.ErrClosed", err)
		}
		if err := <-closed; err != nil {
			t.Fatalf("Stream.Close: %v", err)
		}
		e.afterStreamClose()
	})
}

// afterStreamClose completes the stalled frame from the peer, checks the
// session is still alive (a PING is answered, so the frame has been
// taken in), and that no Read on the closed stream returns data.
func (e *stallEnv) afterStreamClose() {
	e.t.Helper()
	if err := e.fp.writeRaw(e.rest); err != nil {
		e.t.Fatalf("fake peer: completing the stalled frame: %v", err)
	}
	e.fp.ping(0x57a11)
	if e.fp.sess.IsClosed() {
		e.t.Fatalf("session closed after a stream Close: %v", e.fp.sess.Err())
	}
	e.noMoreData("after Stream.Close")
	e.bystanderBlocked()
}

// TestStallSessionClose: a Read with no deadline, waiting when the peer
// stalls mid-frame, fails with an error matching net.ErrClosed promptly
// when the session is closed from another goroutine, and no later Read
// returns data.
func TestStallSessionClose(t *testing.T) {
	eachStall(t, func(t *testing.T, e *stallEnv, c stallCase) {
		var sofar []byte
		ch := startReads(e.st)
		readerFirst()
		e.stall(c)
		e.stillBlocked(ch, &sofar, 50*time.Millisecond)
		closed := make(chan error, 1)
		go func() { closed <- e.fp.sess.Close() }()
		err := e.waitErr(ch, &sofar, stallBound, "Read blocked when the session was closed")
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read blocked when the session was closed: err = %v, want one matching net.ErrClosed", err)
		}
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("Session.Close: %v", err)
			}
		case <-time.After(failAfter):
			t.Fatal("Session.Close did not return")
		}
		e.noMoreData("after Session.Close")
		e.bystanderClosed()
	})
}
