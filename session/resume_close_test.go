package session_test

import (
	"context"
	"crypto/sha256"
	"io"
	"testing"
	"time"

	"github.com/braidmux/braid/session"
)

// TestResumeCloseFlushes: in a resumable session a Write returns once
// its bytes are in the replay buffer, possibly before they are on the
// connection. Closing the session right after the last Write and
// CloseWrite must still deliver every byte, the FIN and the GOAWAY: the
// peer reads all the data, then io.EOF, and its session ends as closed
// by the peer — it does not wait to be resumed.
func TestResumeCloseFlushes(t *testing.T) {
	for round := range 8 {
		p := newResumePair(t, resumeCfg(session.CompressionNone), resumeCfg(session.CompressionNone))
		ctx, cancel := context.WithTimeout(context.Background(), resumeWait)
		st, err := p.cli.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		payload := make([]byte, 4<<20)
		newPayloadGen(uint32(round), 1, false).fill(payload)
		if _, err := st.Write(payload[:1]); err != nil { // the SYN carries data
			t.Fatal(err)
		}
		peer, err := p.srv.AcceptStream(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		type result struct {
			sum [32]byte
			n   int
			err error
		}
		got := make(chan result, 1)
		go func() {
			b, err := io.ReadAll(peer)
			got <- result{sha256.Sum256(b), len(b), err}
		}()
		for off := 1; off < len(payload); off += 64 << 10 {
			if _, err := st.Write(payload[off:min(off+64<<10, len(payload))]); err != nil {
				t.Fatalf("round %d: Write: %v", round, err)
			}
		}
		if err := st.CloseWrite(); err != nil {
			t.Fatalf("round %d: CloseWrite: %v", round, err)
		}
		within(t, "the client's Close", func() { p.cli.Close() })

		select {
		case r := <-got:
			if r.err != nil || r.n != len(payload) || r.sum != sha256.Sum256(payload) {
				t.Fatalf("round %d: server read %d bytes (err %v); want the %d written, intact, then io.EOF", round, r.n, r.err, len(payload))
			}
		case <-time.After(resumeWait):
			t.Fatalf("round %d: the server's Read did not end after the client's Close (stats %s)", round, p.stats())
		}
		select {
		case <-p.srv.CloseChan():
		case <-time.After(resumeWait):
			t.Fatalf("round %d: the server session still runs after the client's Close: it waits to be resumed", round)
		}
		if n := p.srv.Stats().Resumes; n != 0 {
			t.Errorf("round %d: server Stats().Resumes = %d, want 0", round, n)
		}
	}
}
