package frame_test

import (
	"testing"

	"github.com/braidmux/braid/frame"
)

// replayReader returns data over and over, forever, without allocating.
type replayReader struct {
	data []byte
	off  int
}

func (r *replayReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off += c
		if r.off == len(r.data) {
			r.off = 0
		}
	}
	return n, nil
}

const benchPayload = 16 << 10

func dataWire(n int) []byte {
	f := frame.Frame{Type: frame.Data, StreamID: 3, Payload: make([]byte, n)}
	for i := range f.Payload {
		f.Payload[i] = byte(i)
	}
	return f.Append(nil)
}

// The steady-state paths of the session's read and write loops allocate
// nothing. Enforced here so CI catches a regression.
func TestZeroAllocs(t *testing.T) {
	payload := make([]byte, benchPayload)
	buf := make([]byte, 0, frame.MaxDataHeader)
	var sink int

	cases := []struct {
		name string
		fn   func()
	}{
		{"AppendDataHeader", func() {
			buf = frame.AppendDataHeader(buf[:0], 3, frame.FlagSYN, len(payload))
			sink += len(buf)
		}},
		{"AppendWindowUpdate", func() {
			buf = frame.AppendWindowUpdate(buf[:0], 3, 1<<20)
			sink += len(buf)
		}},
		{"Frame.Append WINDOW_UPDATE", func() {
			f := frame.Frame{Type: frame.WindowUpdate, WindowDelta: 1 << 20}
			buf = f.Append(buf[:0])
			sink += len(buf)
		}},
	}
	for _, src := range []struct {
		name string
		wire []byte
	}{
		{"ReadFrame DATA 16K", dataWire(benchPayload)},
		{"ReadFrame DATA 1K", dataWire(1 << 10)},
		{"ReadFrame WINDOW_UPDATE", frame.AppendWindowUpdate(nil, 3, 1<<20)},
		{"ReadFrame WINDOW_UPDATE session", frame.AppendWindowUpdate(nil, 0, 1<<20)},
	} {
		r := frame.NewReader(&replayReader{data: src.wire}, frame.MaxMaxFrameSize)
		defer r.Close()
		if _, err := r.ReadFrame(); err != nil { // first frame takes the body buffer
			t.Fatal(err)
		}
		cases = append(cases, struct {
			name string
			fn   func()
		}{src.name, func() {
			f, err := r.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			sink += len(f.Payload)
		}})
	}
	hello := frame.Frame{Type: frame.Hello, HasSettings: true, Settings: fullSettings}
	helloBody := hello.AppendBody(nil)
	var parsed frame.Frame
	cases = append(cases, struct {
		name string
		fn   func()
	}{"Parse HELLO into a reused Frame", func() {
		if err := frame.Parse(&parsed, helloBody); err != nil {
			t.Fatal(err)
		}
	}})

	for _, tc := range cases {
		tc.fn() // warm up
		if allocs := testing.AllocsPerRun(200, tc.fn); allocs != 0 {
			t.Errorf("%s: %v allocs per run, want 0", tc.name, allocs)
		}
	}
	if sink == 0 {
		t.Fatal("nothing ran")
	}
}

func BenchmarkEncodeData16K(b *testing.B) {
	payload := make([]byte, benchPayload)
	buf := make([]byte, 0, frame.MaxDataHeader)
	b.ReportAllocs()
	b.SetBytes(benchPayload)
	n := 0
	for b.Loop() {
		buf = frame.AppendDataHeader(buf[:0], 3, 0, len(payload))
		// What a writer hands to net.Buffers: header, then the payload.
		n += len(buf) + len(payload)
	}
	if n == 0 {
		b.Fatal("no bytes")
	}
}

func BenchmarkDecodeData16K(b *testing.B) {
	r := frame.NewReader(&replayReader{data: dataWire(benchPayload)}, frame.MaxMaxFrameSize)
	defer r.Close()
	b.ReportAllocs()
	b.SetBytes(benchPayload)
	for b.Loop() {
		f, err := r.ReadFrame()
		if err != nil || len(f.Payload) != benchPayload {
			b.Fatal(f, err)
		}
	}
}

func BenchmarkEncodeWindowUpdate(b *testing.B) {
	buf := make([]byte, 0, 32)
	b.ReportAllocs()
	for b.Loop() {
		buf = frame.AppendWindowUpdate(buf[:0], 3, 1<<20)
	}
	if len(buf) == 0 {
		b.Fatal("empty")
	}
}

func BenchmarkDecodeWindowUpdate(b *testing.B) {
	r := frame.NewReader(&replayReader{data: frame.AppendWindowUpdate(nil, 3, 1<<20)}, frame.MaxMaxFrameSize)
	defer r.Close()
	b.ReportAllocs()
	for b.Loop() {
		f, err := r.ReadFrame()
		if err != nil || f.WindowDelta != 1<<20 {
			b.Fatal(f, err)
		}
	}
}

func BenchmarkParseHello(b *testing.B) {
	hello := frame.Frame{Type: frame.Hello, HasSettings: true, Settings: fullSettings}
	body := hello.AppendBody(nil)
	var f frame.Frame
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := frame.Parse(&f, body); err != nil {
			b.Fatal(err)
		}
	}
}
