package frame_test

import (
	"bytes"
	"errors"
	"io"
	"math"
	"runtime"
	"testing"
	"testing/iotest"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/braidmux/braid/frame"
)

func wireOf(f frame.Frame) []byte { return f.Append(nil) }

// readAll reads frames until an error and returns deep copies of them and
// that error.
func readAll(r *frame.Reader) ([]frame.Frame, error) {
	var out []frame.Frame
	for {
		f, err := r.ReadFrame()
		if err != nil {
			return out, err
		}
		c := *f
		c.Payload = bytes.Clone(f.Payload)
		c.Debug = bytes.Clone(f.Debug)
		c.Settings.Magic = bytes.Clone(f.Settings.Magic)
		c.Settings.Nonce = bytes.Clone(f.Settings.Nonce)
		c.Settings.ResumeKey = bytes.Clone(f.Settings.ResumeKey)
		c.Settings.ResumeID = bytes.Clone(f.Settings.ResumeID)
		c.Resume.SessionID = bytes.Clone(f.Resume.SessionID)
		c.Resume.Nonce = bytes.Clone(f.Resume.Nonce)
		c.Resume.MAC = bytes.Clone(f.Resume.MAC)
		c.Settings.Compression = append([]frame.Compression(nil), f.Settings.Compression...)
		out = append(out, c)
	}
}

// TestReaderTruncated: every proper prefix of a valid encoding is an
// error: io.EOF when nothing was read, an io.ErrUnexpectedEOF otherwise.
func TestReaderTruncated(t *testing.T) {
	for _, tc := range codecCases() {
		wire := tc.f.Append(nil)
		for i := range len(wire) {
			for _, mk := range []func(io.Reader) io.Reader{
				func(r io.Reader) io.Reader { return r },
				iotest.OneByteReader,
				iotest.DataErrReader, // returns io.EOF with the last bytes
			} {
				r := frame.NewReader(mk(bytes.NewReader(wire[:i])), frame.MaxMaxFrameSize)
				f, err := r.ReadFrame()
				switch {
				case f != nil:
					t.Fatalf("%s: wire[:%d]: got frame %v, want error", tc.name, i, f)
				case i == 0 && err != io.EOF:
					t.Fatalf("%s: empty input: %v, want io.EOF", tc.name, err)
				case i > 0 && !errors.Is(err, io.ErrUnexpectedEOF):
					t.Fatalf("%s: wire[:%d] of %d: %v, want io.ErrUnexpectedEOF", tc.name, i, len(wire), err)
				}
				r.Close()
			}
		}
	}
}

// TestReaderTruncatedStream: frames before the cut are delivered, then the
// cut frame errors.
func TestReaderTruncatedStream(t *testing.T) {
	cases := codecCases()
	var wire []byte
	var ends []int
	for _, tc := range cases {
		wire = tc.f.Append(wire)
		ends = append(ends, len(wire))
	}
	for i := range len(wire) + 1 {
		complete := 0
		for complete < len(ends) && ends[complete] <= i {
			complete++
		}
		atBoundary := i == 0 || (complete > 0 && ends[complete-1] == i)
		r := frame.NewReader(bytes.NewReader(wire[:i]), frame.MaxMaxFrameSize)
		got, err := readAll(r)
		r.Close()
		if len(got) != complete {
			t.Fatalf("wire[:%d]: read %d frames, want %d", i, len(got), complete)
		}
		for k := range got {
			if d := frameDiff(&got[k], &cases[k].f); d != "" {
				t.Fatalf("wire[:%d] frame %d:\n%s", i, k, d)
			}
		}
		if atBoundary && err != io.EOF {
			t.Fatalf("wire[:%d] (frame boundary): %v, want io.EOF", i, err)
		}
		if !atBoundary && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("wire[:%d]: %v, want io.ErrUnexpectedEOF", i, err)
		}
	}
}

// TestReaderReadErrors: an error from the underlying reader other than
// EOF is passed through (wrapped), not turned into EOF.
func TestReaderReadErrors(t *testing.T) {
	boom := errors.New("boom")
	wire := wireOf(frame.Frame{StreamID: 1, Payload: []byte("hello")})
	for i := range len(wire) {
		r := frame.NewReader(io.MultiReader(bytes.NewReader(wire[:i]), iotest.ErrReader(boom)), frame.MaxMaxFrameSize)
		if _, err := r.ReadFrame(); !errors.Is(err, boom) {
			t.Fatalf("wire[:%d] then error: %v, want boom", i, err)
		}
	}
}

func TestReaderLimit(t *testing.T) {
	const max = 4096
	mk := func(bodyLen int) []byte {
		// stream id field 2 bytes, payload tag 1, payload length 2.
		f := frame.Frame{StreamID: 1, Payload: make([]byte, bodyLen-5)}
		if f.BodySize() != bodyLen {
			t.Fatalf("cannot make a %d-byte body", bodyLen)
		}
		return f.Append(nil)
	}
	r := frame.NewReader(bytes.NewReader(mk(max)), max)
	if _, err := r.ReadFrame(); err != nil {
		t.Fatalf("body of exactly the limit: %v", err)
	}
	r = frame.NewReader(bytes.NewReader(mk(max+1)), max)
	if _, err := r.ReadFrame(); !errors.Is(err, frame.ErrFrameTooLarge) {
		t.Fatalf("body one above the limit: %v, want ErrFrameTooLarge", err)
	}

	// SetMaxFrameSize applies from the next frame on.
	wire := append(mk(max), mk(max)...)
	r = frame.NewReader(bytes.NewReader(wire), max)
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	r.SetMaxFrameSize(max - 1)
	if _, err := r.ReadFrame(); !errors.Is(err, frame.ErrFrameTooLarge) {
		t.Fatalf("after SetMaxFrameSize(%d): %v, want ErrFrameTooLarge", max-1, err)
	}

	// Limit 0: only empty bodies.
	r = frame.NewReader(bytes.NewReader([]byte{0, 1, 0x10}), 0)
	if f, err := r.ReadFrame(); err != nil || frameDiff(f, &frame.Frame{}) != "" {
		t.Fatalf("empty body with limit 0: %v %v", f, err)
	}
	if _, err := r.ReadFrame(); !errors.Is(err, frame.ErrFrameTooLarge) {
		t.Fatalf("1-byte body with limit 0: %v, want ErrFrameTooLarge", err)
	}
}

// TestReaderLimitClamped: no Reader accepts more than MaxMaxFrameSize,
// whatever it was asked for, and it accepts exactly that.
func TestReaderLimitClamped(t *testing.T) {
	prefix := protowire.AppendVarint(nil, frame.MaxMaxFrameSize+1)
	for _, max := range []uint32{frame.MaxMaxFrameSize + 1, math.MaxUint32} {
		r := frame.NewReader(bytes.NewReader(prefix), max)
		if _, err := r.ReadFrame(); !errors.Is(err, frame.ErrFrameTooLarge) {
			t.Errorf("NewReader(_, %d): body of MaxMaxFrameSize+1: %v, want ErrFrameTooLarge", max, err)
		}
		r = frame.NewReader(bytes.NewReader(prefix), 0)
		r.SetMaxFrameSize(max)
		if _, err := r.ReadFrame(); !errors.Is(err, frame.ErrFrameTooLarge) {
			t.Errorf("SetMaxFrameSize(%d): body of MaxMaxFrameSize+1: %v, want ErrFrameTooLarge", max, err)
		}
	}
	if testing.Short() {
		t.Skip("skipping the 16 MiB frame in -short mode")
	}
	// stream id field 2 bytes, payload tag 1, payload length 4.
	f := frame.Frame{StreamID: 1, Payload: make([]byte, frame.MaxMaxFrameSize-7)}
	f.Payload[len(f.Payload)-1] = 1
	if f.BodySize() != frame.MaxMaxFrameSize {
		t.Fatalf("test frame body is %d bytes", f.BodySize())
	}
	r := frame.NewReader(bytes.NewReader(f.Append(nil)), math.MaxUint32)
	defer r.Close()
	got, err := r.ReadFrame()
	if err != nil {
		t.Fatalf("body of exactly MaxMaxFrameSize: %v", err)
	}
	if len(got.Payload) != len(f.Payload) || got.Payload[len(got.Payload)-1] != 1 {
		t.Fatalf("payload of %d bytes, want %d", len(got.Payload), len(f.Payload))
	}
}

// TestReaderTooLargeDoesNotAllocate: a prefix announcing a huge body is
// refused before the body is allocated or read. The underlying reader
// replays the 5-byte prefix forever, so a Reader that tried to read the
// body would "succeed" reading garbage, and one that allocated it would
// show up in the byte count.
func TestReaderTooLargeDoesNotAllocate(t *testing.T) {
	for _, claim := range []uint64{frame.MaxMaxFrameSize + 1, 1 << 30, math.MaxUint32} {
		prefix := protowire.AppendVarint(nil, claim)
		r := frame.NewReader(&replayReader{data: prefix}, frame.MaxMaxFrameSize)
		if _, err := r.ReadFrame(); !errors.Is(err, frame.ErrFrameTooLarge) { // warm up bufio
			t.Fatalf("claim %d: %v, want ErrFrameTooLarge", claim, err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		const runs = 100
		allocs := testing.AllocsPerRun(runs, func() {
			if _, err := r.ReadFrame(); !errors.Is(err, frame.ErrFrameTooLarge) {
				t.Fatalf("claim %d: %v, want ErrFrameTooLarge", claim, err)
			}
		})
		runtime.ReadMemStats(&after)
		perRun := (after.TotalAlloc - before.TotalAlloc) / (runs + 1)
		// The error value itself (fmt.Errorf) is all that may be allocated:
		// a few small objects (more under -race), never the body.
		if allocs > 8 || perRun > 1024 {
			t.Errorf("claim %d: %.0f allocs, %d bytes per rejected frame", claim, allocs, perRun)
		}
		if got := r.BytesRead(); got != uint64(len(prefix))*(runs+2) {
			t.Errorf("claim %d: BytesRead %d: the Reader consumed more than the prefixes", claim, got)
		}
	}
}

func TestReaderBadPrefix(t *testing.T) {
	cases := []struct {
		name string
		wire []byte
		want error
	}{
		{"6-byte prefix", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, frame.ErrMalformed},
		{"10-byte prefix", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, frame.ErrMalformed},
		{"prefix of 2^32", []byte{0x80, 0x80, 0x80, 0x80, 0x10}, frame.ErrMalformed},
		{"prefix of 2^35-1", []byte{0xff, 0xff, 0xff, 0xff, 0x7f}, frame.ErrMalformed},
		{"prefix of 2^32-1", []byte{0xff, 0xff, 0xff, 0xff, 0x0f}, frame.ErrFrameTooLarge},
		{"truncated 5-byte prefix", []byte{0xff, 0xff, 0xff, 0xff}, io.ErrUnexpectedEOF},
	}
	for _, tc := range cases {
		r := frame.NewReader(bytes.NewReader(tc.wire), frame.MaxMaxFrameSize)
		if f, err := r.ReadFrame(); f != nil || !errors.Is(err, tc.want) {
			t.Errorf("%s: ReadFrame = %v, %v; want %v", tc.name, f, err, tc.want)
		}
	}
}

func TestReaderMalformedBody(t *testing.T) {
	wire := wireOf(frame.Frame{Type: frame.Ping, Opaque: 9})
	wire = append(wire, 2, 0x4a, 0x00)       // empty debug text: valid
	wire = append(wire, 3, 0x4a, 0x01, 0xff) // invalid UTF-8 debug text
	r := frame.NewReader(bytes.NewReader(wire), frame.MaxMaxFrameSize)
	for i := range 2 {
		if _, err := r.ReadFrame(); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if f, err := r.ReadFrame(); f != nil || !errors.Is(err, frame.ErrMalformed) {
		t.Fatalf("invalid UTF-8 debug: %v, %v; want ErrMalformed", f, err)
	}
}

// TestReaderSlowSources: the Reader gives the same frames however the
// underlying reader splits the bytes.
func TestReaderSlowSources(t *testing.T) {
	cases := codecCases()
	var wire []byte
	for _, tc := range cases {
		wire = tc.f.Append(wire)
	}
	big := frame.Frame{StreamID: 3, Payload: bytes.Repeat([]byte("0123456789abcdef"), 5000)}
	wire = big.Append(wire)
	var want []frame.Frame
	for _, tc := range cases {
		want = append(want, tc.f)
	}
	want = append(want, big)
	for name, src := range map[string]io.Reader{
		"OneByteReader": iotest.OneByteReader(bytes.NewReader(wire)),
		"HalfReader":    iotest.HalfReader(bytes.NewReader(wire)),
		"DataErrReader": iotest.DataErrReader(bytes.NewReader(wire)),
		"TimeoutReader": iotest.TimeoutReader(bytes.NewReader(wire)), // second Read fails
	} {
		r := frame.NewReader(src, frame.MaxMaxFrameSize)
		got, err := readAll(r)
		r.Close()
		if name == "TimeoutReader" {
			if !errors.Is(err, iotest.ErrTimeout) {
				t.Errorf("%s: %v, want ErrTimeout", name, err)
			}
			continue
		}
		if err != io.EOF || len(got) != len(want) {
			t.Fatalf("%s: %d frames, %v; want %d, io.EOF", name, len(got), err, len(want))
		}
		for i := range got {
			if d := frameDiff(&got[i], &want[i]); d != "" {
				t.Fatalf("%s frame %d:\n%s", name, i, d)
			}
		}
	}
}

func TestReaderBytesReadAndBuffered(t *testing.T) {
	a := wireOf(frame.Frame{StreamID: 1, Payload: []byte("abc")})
	b := frame.AppendWindowUpdate(nil, 0, 100)
	wire := append(append([]byte{}, a...), b...)
	r := frame.NewReader(bytes.NewReader(wire), frame.MaxMaxFrameSize)
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if r.BytesRead() != uint64(len(a)) || r.Buffered() != len(b) {
		t.Fatalf("after one frame: BytesRead %d Buffered %d; want %d %d", r.BytesRead(), r.Buffered(), len(a), len(b))
	}
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if r.BytesRead() != uint64(len(wire)) || r.Buffered() != 0 {
		t.Fatalf("after two frames: BytesRead %d Buffered %d; want %d 0", r.BytesRead(), r.Buffered(), len(wire))
	}
}

// TestReaderDetach documents the buffer ownership rule: the
// next ReadFrame may overwrite the previous frame's payload, unless the
// caller took the buffer with Detach.
func TestReaderDetach(t *testing.T) {
	var wire []byte
	for i := range 4 {
		f := frame.Frame{StreamID: 1, Payload: bytes.Repeat([]byte{byte('a' + i)}, 100)}
		wire = f.Append(wire)
	}
	r := frame.NewReader(bytes.NewReader(wire), frame.MaxMaxFrameSize)
	defer r.Close()
	if r.Detach() != nil {
		t.Fatal("Detach before any frame: want nil")
	}
	f, err := r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	p0 := f.Payload
	buf := r.Detach()
	if buf == nil || len(*buf) != f.BodySize() || &(*buf)[len(*buf)-1] != &p0[len(p0)-1] {
		t.Fatal("Detach did not return the buffer the payload aliases")
	}
	if r.Detach() != nil {
		t.Fatal("second Detach: want nil")
	}
	f, err = r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	p1 := f.Payload
	if !bytes.Equal(p0, bytes.Repeat([]byte{'a'}, 100)) || p1[0] != 'b' {
		t.Fatalf("detached payload was overwritten: %q / %q", p0[:4], p1[:4])
	}
	frame.PutBuffer(buf)

	// Without Detach, the Reader reuses its buffer: the old payload now
	// shows the new frame's bytes.
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if p1[0] != 'c' {
		t.Fatalf("Reader did not reuse its body buffer (old payload %q)", p1[:4])
	}
}

func TestBufferPool(t *testing.T) {
	for _, n := range []int{0, 1, 512, 513, 1000, 16 << 10, 16<<10 + 1, frame.MaxMaxFrameSize} {
		p := frame.GetBuffer(n)
		c := cap(*p)
		if len(*p) != n || c < n || c < 512 || c&(c-1) != 0 || (c > 512 && c/2 >= n) {
			t.Errorf("GetBuffer(%d): len %d cap %d; want len %d, cap the next power of two >= max(n, 512)", n, len(*p), c, n)
		}
		frame.PutBuffer(p)
	}
	frame.PutBuffer(nil)
	odd := make([]byte, 700)
	frame.PutBuffer(&odd) // not from the pool: ignored
	if p := frame.GetBuffer(600); cap(*p) != 1024 {
		t.Errorf("GetBuffer(600) after PutBuffer of a 700-cap slice: cap %d, want 1024", cap(*p))
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("GetBuffer(MaxMaxFrameSize+1) did not panic")
			}
		}()
		frame.GetBuffer(frame.MaxMaxFrameSize + 1)
	}()
}

func TestReaderNextLen(t *testing.T) {
	small := frame.Frame{Type: frame.Ping, Opaque: 7}
	big := frame.Frame{StreamID: 1, Payload: make([]byte, 5000)}
	wire := big.Append(small.Append(nil))
	rd := frame.NewReader(bytes.NewReader(wire), frame.MaxMaxFrameSize)
	if n := rd.NextLen(); n != -1 {
		t.Fatalf("NextLen before any read = %d, want -1", n)
	}
	rd.SetReadAhead(64 << 10) // the first read takes in both frames
	if _, err := rd.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	want := len(wire) - len(small.Append(nil)) - 2 // big's body: its prefix is 2 bytes
	if n := rd.NextLen(); n != want {
		t.Fatalf("NextLen with the next frame buffered = %d, want %d", n, want)
	}
	if _, n, err := rd.ReadFrameHeader(1); err != nil || n != 5000 {
		t.Fatalf("ReadFrameHeader: %d, %v", n, err)
	}
	if n := rd.NextLen(); n != -1 {
		t.Fatalf("NextLen with a payload unread = %d, want -1", n)
	}
}
