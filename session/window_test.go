package session

import (
	"crypto/sha256"
	"io"
	"testing"
	"time"

	"github.com/braidmux/braid/frame"
)

// TestWindowGrowsOnShortPath: over loopback (an RTT of microseconds), a
// stream whose application reads as fast as data arrives is given credit
// beyond its initial window: the window tuned itself up, counting the RTT
// as at least minTuneRTT. A fake peer sends as fast as its credit
// allows and records the most credit it ever held.
func TestWindowGrowsOnShortPath(t *testing.T) {
	const initial = 256 << 10
	fp := newFakePeer(t, &Config{InitialStreamWindow: initial, MaxStreamWindow: 4 << 20}, fakeOpts{client: true, countOnly: true})
	eventually(t, "an RTT sample", func() bool { return fp.sess.Stats().RTT > 0 })
	const total = 64 << 20
	read := make(chan result, 1)
	go func() {
		st, err := fp.sess.AcceptStream(t.Context())
		if err != nil {
			read <- result{err: err}
			return
		}
		n, err := io.Copy(io.Discard, st)
		read <- result{n: int(n), err: err}
	}()
	chunk := make([]byte, fp.hello.MaxFrameSize-frame.MaxDataOverhead)
	streamWin, sessWin := uint64(fp.hello.InitialWindow), uint64(fp.hello.SessionWindow)
	var sent, most uint64
	if err := fp.write(syn(1, nil, 0)); err != nil {
		t.Fatal(err)
	}
	for sent < total {
		var room uint64
		fp.waitFor("credit", func() bool {
			limit := min(streamWin+fp.credit[1], sessWin+fp.credit[0])
			room = limit - sent
			most = max(most, streamWin+fp.credit[1]-sent)
			return room > 0
		})
		n := min(room, uint64(len(chunk)), total-sent)
		if err := fp.write(data(1, chunk[:n], 0)); err != nil {
			t.Fatal(err)
		}
		sent += n
	}
	if err := fp.write(data(1, nil, frame.FlagFIN)); err != nil {
		t.Fatal(err)
	}
	if r := waitResult(t, read, 10*time.Second, "the application's read"); r.err != nil || r.n != total {
		t.Fatalf("the application read %d bytes (err %v), want %d", r.n, r.err, total)
	}
	t.Logf("most credit held: %d KiB (initial window %d KiB)", most>>10, initial>>10)
	if most <= initial {
		t.Fatalf("the peer never held more than %d bytes of credit: the %d-byte window did not grow", most, initial)
	}
}

// TestCloseFlushesPlain: a session closed right after its last Write and
// CloseWrite delivers every byte and the FIN, though the peer is still
// reading (and sending window updates) when Close returns. Closing the
// connection at once would leave those updates unread, and the kernel's
// answer to them, a reset, could make the peer's kernel discard the data
// it had not read yet.
func TestCloseFlushesPlain(t *testing.T) {
	for round := range 8 {
		c, s := sessionPair(t, nil, nil)
		st := open(t, c)
		payload := pattern(uint64(round), 4<<20)
		if _, err := st.Write(payload[:1]); err != nil {
			t.Fatal(err)
		}
		peer := accept(t, s)
		type readAll struct {
			n   int
			err error
			sum [32]byte
		}
		got := make(chan readAll, 1)
		go func() {
			b, err := io.ReadAll(peer)
			got <- readAll{len(b), err, sha256.Sum256(b)}
		}()
		if _, err := st.Write(payload[1:]); err != nil {
			t.Fatalf("round %d: Write: %v", round, err)
		}
		if err := st.CloseWrite(); err != nil {
			t.Fatalf("round %d: CloseWrite: %v", round, err)
		}
		c.Close()
		var r readAll
		select {
		case r = <-got:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: the peer's ReadAll did not return (session %v)", round, s.Err())
		}
		if r.err != nil || r.n != len(payload) || r.sum != sha256.Sum256(payload) {
			t.Fatalf("round %d: the peer read %d bytes (err %v); want the %d written, intact, then io.EOF", round, r.n, r.err, len(payload))
		}
		s.Close()
	}
}
