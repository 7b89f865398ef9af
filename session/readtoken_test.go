package session

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/braidmux/braid/frame"
)

// Tests of the read token (read.go): application goroutines that read the
// connection themselves, interrupts, and hand-overs.

// holder reports which stream's goroutine holds the read token (nil and
// false if none or the reader goroutine does).
func holder(s *Session) (*Stream, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rdOwner, s.rdApp
}

// waitHolder waits until a goroutine of st holds the read token, sending
// PINGs so that whoever holds it now reads a frame and passes it on.
func waitHolder(t *testing.T, fp *fakePeer, st *Stream) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for opaque := uint64(1000); ; opaque++ {
		if h, app := holder(fp.sess); h == st && app {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %d's Read never took the read token", st.ID())
		}
		fp.ping(opaque)
		time.Sleep(2 * time.Millisecond)
	}
}

// A Read whose deadline passes while it is reading a payload into its own
// buffer returns what has arrived; the rest of the frame reaches the next
// Read intact.
func TestReadTokenDeadlineMidPayload(t *testing.T) {
	fp := newFakePeer(t, nil, fakeOpts{client: true})
	if err := fp.write(syn(1, nil, 0)); err != nil {
		t.Fatal(err)
	}
	st := accept(t, fp.sess)
	payload := pattern(1, 8000)
	f := data(1, payload, 0)
	enc := f.Append(nil)
	hdr := len(enc) - len(payload)
	cut := len(enc) - 3000

	type result struct {
		got []byte
		err error
	}
	res := make(chan result, 1)
	go func() {
		buf := make([]byte, 16<<10)
		var got []byte
		for {
			n, err := st.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				res <- result{got, err}
				return
			}
		}
	}()
	waitHolder(t, fp, st)
	st.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if err := fp.writeRaw(enc[:cut]); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-res:
	case <-time.After(failAfter):
		t.Fatal("Read did not return at its deadline while reading a payload")
	}
	if !errors.Is(r.err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read error %v, want os.ErrDeadlineExceeded", r.err)
	}
	if !bytes.Equal(r.got, payload[:cut-hdr]) {
		t.Fatalf("before the deadline Read returned %d bytes, want the %d that arrived", len(r.got), cut-hdr)
	}

	st.SetReadDeadline(time.Time{})
	if err := fp.writeRaw(enc[cut:]); err != nil {
		t.Fatal(err)
	}
	rest := make([]byte, len(payload)-len(r.got))
	if _, err := io.ReadFull(st, rest); err != nil {
		t.Fatalf("reading the rest of the frame: %v", err)
	}
	if !bytes.Equal(rest, payload[len(r.got):]) {
		t.Fatal("the rest of the frame arrived corrupted")
	}
	fp.ping(7) // the session is healthy: a PING is answered
}

// twoStreamsFirstReading opens streams 1 and 3 from a fake peer and
// starts a Read on stream 1 that holds the read token; its error is sent
// on the channel returned.
func twoStreamsFirstReading(t *testing.T) (*fakePeer, *Stream, *Stream, chan error) {
	t.Helper()
	fp := newFakePeer(t, nil, fakeOpts{client: true})
	if err := fp.write(syn(1, nil, 0), syn(3, nil, 0)); err != nil {
		t.Fatal(err)
	}
	a, b := accept(t, fp.sess), accept(t, fp.sess)
	aErr := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 100))
		aErr <- err
	}()
	waitHolder(t, fp, a)
	return fp, a, b, aErr
}

// A Read interrupted while it is filling another stream's blocked Read
// hands over cleanly: the other Read gets the part that arrived, and the
// rest of the frame after it.
func TestReadTokenInterruptWhileFillingAnother(t *testing.T) {
	fp, a, b, aErr := twoStreamsFirstReading(t)

	payload := pattern(2, 10000)
	f := data(3, payload, 0)
	enc := f.Append(nil)
	cut := len(enc) - 4000
	bGot := make(chan []byte, 1)
	go func() {
		got := make([]byte, 0, len(payload))
		buf := make([]byte, 16<<10)
		for len(got) < len(payload) {
			n, err := b.Read(buf)
			if err != nil {
				t.Errorf("stream 3 Read: %v", err)
				break
			}
			got = append(got, buf[:n]...)
		}
		bGot <- got
	}()
	eventually(t, "stream 3's Read to offer its buffer", func() bool {
		fp.sess.mu.Lock()
		defer fp.sess.mu.Unlock()
		return b.rwait != nil
	})
	if err := fp.writeRaw(enc[:cut]); err != nil {
		t.Fatal(err)
	}
	eventually(t, "stream 1's Read to start filling stream 3's buffer", func() bool {
		fp.sess.mu.Lock()
		defer fp.sess.mu.Unlock()
		return b.filling
	})
	a.SetReadDeadline(time.Now()) // interrupts stream 1's Read mid-payload
	select {
	case err := <-aErr:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("stream 1 Read error %v, want os.ErrDeadlineExceeded", err)
		}
	case <-time.After(failAfter):
		t.Fatal("stream 1's Read did not return at its deadline")
	}
	if err := fp.writeRaw(enc[cut:]); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-bGot:
		if !bytes.Equal(got, payload) {
			t.Fatalf("stream 3 got %d bytes, not the %d sent", len(got), len(payload))
		}
	case <-time.After(failAfter):
		t.Fatal("stream 3 never got its data")
	}
}

// Closing a stream whose Read holds the read token ends that Read at
// once, and another stream's Read takes over reading.
func TestReadTokenCloseHolder(t *testing.T) {
	fp, a, b, aErr := twoStreamsFirstReading(t)
	bGot := make(chan error, 1)
	go func() {
		buf := make([]byte, 5)
		_, err := io.ReadFull(b, buf)
		if err == nil && string(buf) != "hello" {
			err = errors.New("stream 3 read " + string(buf))
		}
		bGot <- err
	}()
	a.Close()
	select {
	case err := <-aErr:
		if !errors.Is(err, ErrStreamClosed) {
			t.Fatalf("Read after Close: %v, want ErrStreamClosed", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Close did not end a Read blocked reading the connection")
	}
	if err := fp.write(data(3, []byte("hello"), 0)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-bGot:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(failAfter):
		t.Fatal("stream 3 never got its data after stream 1's Read gave up the token")
	}
}

// With no goroutine waiting for a frame, the session still reads: a PING
// is answered and a new stream is accepted.
func TestReadTokenIdleSessionStillReads(t *testing.T) {
	fp := newFakePeer(t, nil, fakeOpts{client: true})
	if err := fp.write(syn(1, []byte("x"), 0)); err != nil {
		t.Fatal(err)
	}
	st := accept(t, fp.sess)
	if _, err := io.ReadFull(st, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	// The Read returned the token; nobody waits now.
	for i := range uint64(20) {
		fp.ping(100 + i)
		time.Sleep(time.Duration(i%3) * readIdleDelay)
	}
	if err := fp.write(syn(3, nil, 0)); err != nil {
		t.Fatal(err)
	}
	if st := accept(t, fp.sess); st.ID() != 3 {
		t.Fatalf("accepted stream %d, want 3", st.ID())
	}
}

// A Write waiting for credit reads the window update itself.
func TestReadTokenWriteWaitsForCredit(t *testing.T) {
	h := fakeHello()
	h.InitialWindow = 4096
	fp := newFakePeer(t, nil, fakeOpts{client: true, hello: &h})
	if err := fp.write(syn(1, nil, 0)); err != nil {
		t.Fatal(err)
	}
	st := accept(t, fp.sess)
	done := make(chan error, 1)
	go func() {
		_, err := st.Write(make([]byte, 10000))
		done <- err
	}()
	fp.waitFor("the first window's worth of data", func() bool { return fp.data[1] == 4096 })
	waitHolder(t, fp, st) // the blocked Write takes the read token
	if err := fp.write(frame.Frame{Type: frame.WindowUpdate, StreamID: 1, WindowDelta: 8192}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(failAfter):
		t.Fatal("Write did not finish after the window update")
	}
	fp.waitFor("all the data", func() bool { return fp.data[1] == 10000 })
}
