package session_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/braidmux/braid/frame"
)

// A peer that offers resumption, grants credit for everything it
// receives, but never acknowledges (no ACK frame) would make the server
// keep every byte it sent for replay. The replay buffer is capped (SPEC.md
// §16.3: the peer's session window plus 4 MiB), so the server stops
// sending DATA there: its Write blocks (and returns at its deadline)
// instead of holding its memory without bound.
func TestResumePeerThatNeverAcks(t *testing.T) {
	l := rspecListen(t, nil)
	c := rspecDial(t, l.Addr().String())
	srv := rspecAccept(t, l)

	st, err := srv.OpenStream(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	const total = 64 << 20
	wrote := make(chan error, 1)
	go func() {
		st.SetWriteDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 256<<10)
		var err error
		for n := 0; n < total && err == nil; n += len(buf) {
			_, err = st.Write(buf)
		}
		wrote <- err
	}()

	// The raw client: read every frame, give back credit for all DATA at
	// once (stream and session), answer PINGs, never ACK.
	var got int
	end := time.Now().Add(10 * time.Second)
	for {
		// Short reads, so that the Write's end is noticed once nothing
		// more comes.
		dl := time.Now().Add(100 * time.Millisecond)
		if dl.After(end) {
			dl = end
		}
		c.conn.SetReadDeadline(dl)
		f, err := c.rd.ReadFrame()
		if errors.Is(err, os.ErrDeadlineExceeded) && wrote != nil && time.Now().Before(end) {
			f, err = &frame.Frame{Type: frame.Type(255)}, nil // nothing this time: check the Write
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			t.Fatalf("raw client: %v", err)
		}
		switch f.Type {
		case frame.Data:
			if f.Flags.Has(frame.FlagSYN) {
				// Accept it, as an application would.
				c.writeTo(c.conn, &frame.Frame{Type: frame.Data, StreamID: f.StreamID, Flags: frame.FlagACK})
			}
			if n := len(f.Payload); n > 0 {
				got += n
				c.writeTo(c.conn, &frame.Frame{Type: frame.WindowUpdate, StreamID: f.StreamID, WindowDelta: uint32(n)})
				c.writeTo(c.conn, &frame.Frame{Type: frame.WindowUpdate, WindowDelta: uint32(n)})
			}
		case frame.Ping:
			if !f.Flags.Has(frame.FlagACK) {
				c.writeTo(c.conn, &frame.Frame{Type: frame.Ping, Flags: frame.FlagACK, Opaque: f.Opaque})
			}
		}
		select {
		case err := <-wrote:
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("server Write: got %v, want the write deadline (the replay buffer full)", err)
			}
			// Whatever was in flight has arrived by now; read it, then stop.
			end = time.Now().Add(200 * time.Millisecond)
			wrote = nil
		default:
		}
	}
	if wrote != nil {
		t.Fatalf("the server's Write never stopped: it sent %d bytes to a peer that acknowledges nothing", got)
	}
	// The cap: the peer's session window (1 MiB in rspecDial's HELLO) and
	// 4 MiB; DATA is what counts against it, framing comes on top.
	const capacity = 1<<20 + 4<<20
	if got > capacity || got < capacity/2 {
		t.Fatalf("the server sent %d bytes of DATA before stopping; want at most the replay cap %d (and most of it)", got, capacity)
	}
	if err := srv.Err(); err != nil {
		t.Fatalf("session ended: %v", err)
	}
	t.Logf("sent %d bytes of DATA unacknowledged, then stopped (cap %d)", got, capacity)
}
