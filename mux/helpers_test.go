package mux

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/braidmux/braid/frame"
)

// owner stands for the session's stream type: tests instantiate the
// scheduler with a pointer, as the session does.
type owner struct{ name string }

type (
	tStream = Stream[*owner]
	tSched  = Scheduler[*owner]
	tBatch  = Batch[*owner]
	tSent   = Sent[*owner]
)

func newSched(quantum int) *tSched { return NewScheduler[*owner](quantum) }

// grant gives st n bytes of credit, failing the test if AddCredit
// refuses.
func grant(t testing.TB, s *tSched, st *tStream, n uint32) {
	t.Helper()
	if err := s.AddCredit(st, n); err != nil {
		t.Fatalf("AddCredit(stream %d, %d) with credit %d: %v", st.ID, n, st.Credit(), err)
	}
}

// wire is one decoded frame, with its payload copied.
type wire struct {
	Type     frame.Type
	StreamID uint32
	Flags    frame.Flags
	Delta    uint32
	Opaque   uint64
	Payload  []byte
}

// decodeBatch writes b.Buffers() with WriteTo, as the session does,
// decodes the bytes with frame.Reader and checks Size and Frames against
// what was decoded.
func decodeBatch[T any](t testing.TB, b *Batch[T]) []wire {
	t.Helper()
	var buf bytes.Buffer
	bufs := b.Buffers()
	n, err := bufs.WriteTo(&buf)
	if err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if int(n) != b.Size() {
		t.Fatalf("WriteTo wrote %d bytes, Size() = %d", n, b.Size())
	}
	ws := decodeBytes(t, buf.Bytes())
	if len(ws) != b.Frames() {
		t.Fatalf("decoded %d frames, Frames() = %d", len(ws), b.Frames())
	}
	return ws
}

func decodeBytes(t testing.TB, p []byte) []wire {
	t.Helper()
	r := frame.NewReader(bytes.NewReader(p), frame.MaxMaxFrameSize)
	var ws []wire
	for {
		f, err := r.ReadFrame()
		if errors.Is(err, io.EOF) {
			return ws
		}
		if err != nil {
			t.Fatalf("decoding frame %d: %v", len(ws), err)
		}
		ws = append(ws, wire{
			Type: f.Type, StreamID: f.StreamID, Flags: f.Flags,
			Delta: f.WindowDelta, Opaque: f.Opaque,
			Payload: bytes.Clone(f.Payload),
		})
	}
}

// checkSent checks that sent describes exactly the DATA frames ws, in
// order.
func checkSent[T any](t testing.TB, ws []wire, sent []Sent[T]) {
	t.Helper()
	if len(ws) != len(sent) {
		t.Fatalf("%d DATA frames on the wire, %d Sent entries", len(ws), len(sent))
	}
	for i, w := range ws {
		s := sent[i]
		if w.Type != frame.Data || s.Stream.ID != w.StreamID || s.N != len(w.Payload) || s.Fin != w.Flags.Has(frame.FlagFIN) {
			t.Fatalf("frame %d: wire %v stream=%d flags=%v len=%d, Sent{ID %d, N %d, Fin %v}",
				i, w.Type, w.StreamID, w.Flags, len(w.Payload), s.Stream.ID, s.N, s.Fin)
		}
	}
}

// pattern returns n bytes that differ between streams and offsets, so a
// misplaced payload byte shows.
func pattern(id uint32, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(int(id)*131 + i*7 + i>>8)
	}
	return p
}
