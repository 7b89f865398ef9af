package frame_test

import (
	"bytes"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"testing/iotest"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/braidmux/braid/frame"
	braidpb "github.com/braidmux/braid/proto"
)

// fuzzBodies are the seed bodies: encoder output of every frame kind, and
// protobuf-legal variations the encoder never writes.
func fuzzBodies() [][]byte {
	var out [][]byte
	for _, tc := range codecCases() {
		out = append(out, tc.f.AppendBody(nil))
	}
	out = append(out,
		wb{}.bytes(15, []byte("p")).varint(2, 3).raw(unknowns(16)...),
		wb{}.varint(1, 1).bytes(8, wb{}.varint(6, 1).bytes(6, []byte{0, 1}).raw(unknowns(10)...)).bytes(8, wb{}.varint(2, 1)),
		wb{}.bytes(8, wb{}.bytes(6, make([]byte, frame.MaxCompressionOffers+1))),
		wb{}.varint(1, 5).bytes(9, []byte("\xff")),
		wb{}.varint(1, 7).bytes(11, wb{}.varint(1, 3).bytes(2, []byte("id")).raw(unknowns(16)...).bytes(5, []byte("mac"))).
			bytes(11, wb{}.varint(4, 1<<40).bytes(3, []byte("nonce"))).varint(10, 3),
		wb{}.varint(1, 6).varint(10, math.MaxUint64).bytes(11, nil),
		wb{}.bytes(11, wb{}.bytes(5, make([]byte, frame.MaxResumeField+1))),
		wb{}.bytes(8, wb{}.bytes(11, make([]byte, frame.MaxResumeField+1)).bytes(12, []byte("id"))),
	)
	return out
}

func FuzzParse(f *testing.F) {
	for _, b := range fuzzBodies() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var got frame.Frame
		err := frame.Parse(&got, body)
		var m braidpb.Frame
		perr := proto.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(body, &m)
		if err != nil {
			if !errors.Is(err, frame.ErrMalformed) {
				t.Fatalf("Parse error %v does not wrap ErrMalformed", err)
			}
			// The codec's deliberate extra limits: protobuf accepts any
			// number of compression offers and byte fields of any length.
			if perr == nil && !overLimit(&m) {
				t.Fatalf("Parse rejects (%v) what proto.Unmarshal accepts: %v", err, &m)
			}
			return
		}
		if perr != nil {
			t.Fatalf("Parse accepts %v, proto.Unmarshal rejects: %v", &got, perr)
		}
		if want := frameFromPB(&m); frameDiff(&got, &want) != "" {
			t.Fatalf("Parse and proto.Unmarshal disagree:\n%s", frameDiff(&got, &want))
		}

		// Re-encoding gives the canonical form: what proto.Marshal writes,
		// and it parses back to the same frame.
		re := got.AppendBody(nil)
		canon, err := deterministic.Marshal(&m)
		if err != nil {
			t.Fatalf("proto.Marshal: %v", err)
		}
		if !bytes.Equal(re, canon) {
			t.Fatalf("re-encoding differs from proto.Marshal\n got %x\nwant %x", re, canon)
		}
		var again frame.Frame
		if err := frame.Parse(&again, re); err != nil {
			t.Fatalf("Parse of re-encoding: %v", err)
		}
		if d := frameDiff(&again, &got); d != "" {
			t.Fatalf("Parse of re-encoding:\n%s", d)
		}
		wire := got.Append(nil)
		r := frame.NewReader(bytes.NewReader(wire), frame.MaxMaxFrameSize)
		defer r.Close()
		rf, err := r.ReadFrame()
		if err != nil {
			t.Fatalf("ReadFrame of re-encoding: %v", err)
		}
		if d := frameDiff(rf, &got); d != "" {
			t.Fatalf("ReadFrame of re-encoding:\n%s", d)
		}
	})
}

// nextFrame is a model of Reader.ReadFrame written from the wire rules:
// a varint length prefix of at most MaxLengthPrefix bytes whose value fits
// in 32 bits, then that many body bytes. It returns the body, the bytes
// after it, and the error class the Reader must report.
func nextFrame(data []byte, max uint32) (body, rest []byte, want error) {
	if len(data) == 0 {
		return nil, nil, io.EOF
	}
	end := -1
	for i := 0; i < len(data) && i < frame.MaxLengthPrefix; i++ {
		if data[i] < 0x80 {
			end = i + 1
			break
		}
	}
	if end < 0 {
		if len(data) < frame.MaxLengthPrefix {
			return nil, nil, io.ErrUnexpectedEOF
		}
		return nil, nil, frame.ErrMalformed
	}
	v, n := protowire.ConsumeVarint(data[:end])
	switch {
	case n != end:
		panic("model: bad varint")
	case v > math.MaxUint32:
		return nil, nil, frame.ErrMalformed
	case v > uint64(max):
		return nil, nil, frame.ErrFrameTooLarge
	case uint64(len(data)-n) < v:
		return nil, nil, io.ErrUnexpectedEOF
	}
	return data[n : n+int(v)], data[n+int(v):], nil
}

func FuzzReader(f *testing.F) {
	var all []byte
	for _, tc := range codecCases() {
		w := tc.f.Append(nil)
		f.Add(w)
		all = append(all, w...)
	}
	f.Add(all)
	f.Add(all[:len(all)-1])
	for _, b := range fuzzBodies() {
		f.Add(protowire.AppendBytes(nil, b))
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x01})

	f.Fuzz(func(t *testing.T, data []byte) {
		for _, max := range []uint32{64 << 10, 64} {
			for _, src := range []io.Reader{bytes.NewReader(data), iotest.OneByteReader(bytes.NewReader(data))} {
				checkReader(t, data, max, src)
			}
		}
	})
}

// checkReader reads data from src until an error and checks each frame
// and the final error against the model.
func checkReader(t *testing.T, data []byte, max uint32, src io.Reader) {
	r := frame.NewReader(src, max)
	defer r.Close()
	rest := data
	for i := 0; ; i++ {
		if i > len(data) { // every frame consumes at least one byte
			t.Fatalf("read %d frames from %d bytes", i, len(data))
		}
		body, next, want := nextFrame(rest, max)
		var wantFrame frame.Frame
		if want == nil {
			if err := frame.Parse(&wantFrame, body); err != nil {
				if !errors.Is(err, frame.ErrMalformed) {
					t.Fatalf("Parse: %v does not wrap ErrMalformed", err)
				}
				want = frame.ErrMalformed
			}
		}
		got, err := r.ReadFrame()
		switch {
		case want == nil && err != nil:
			t.Fatalf("max %d, frame %d: ReadFrame: %v, want a frame", max, i, err)
		case want == nil:
			if d := frameDiff(got, &wantFrame); d != "" {
				t.Fatalf("max %d, frame %d: ReadFrame differs from Parse:\n%s", max, i, d)
			}
			if r.BytesRead() != uint64(len(data)-len(next)) {
				t.Fatalf("max %d, frame %d: BytesRead %d, want %d", max, i, r.BytesRead(), len(data)-len(next))
			}
			rest = next
			continue
		case got != nil:
			t.Fatalf("max %d, frame %d: ReadFrame returned both a frame and %v", max, i, err)
		case want == io.EOF && err != io.EOF:
			t.Fatalf("max %d, frame %d: at the end: %v, want io.EOF", max, i, err)
		case !errors.Is(err, want):
			t.Fatalf("max %d, frame %d: %v, want %v", max, i, err, want)
		}
		return
	}
}

// FuzzReadFrameHeader: reading a stream with ReadFrameHeader and
// ReadPayload gives exactly the frames (and the error) ReadFrame gives.
func FuzzReadFrameHeader(f *testing.F) {
	var all []byte
	for _, tc := range codecCases() {
		w := tc.f.Append(nil)
		f.Add(w, 1)
		all = append(all, w...)
	}
	big := frame.Frame{StreamID: 5, Flags: frame.FlagFIN, Payload: bytes.Repeat([]byte("x"), 3000)}
	all = big.Append(all)
	f.Add(all, 1)
	f.Add(all, 2048)
	f.Add(all[:len(all)-1], 0)
	f.Fuzz(func(t *testing.T, data []byte, minSplit int) {
		checkSplitReader(t, data, 64<<10, minSplit)
	})
}

// checkSplitReader compares ReadFrameHeader+ReadPayload with ReadFrame
// over the same bytes. The split reader gets its input a few bytes at a
// time, with a timeout every few reads (which it must survive, losing nothing),
// and reads each payload in two parts.
func checkSplitReader(t *testing.T, data []byte, max uint32, minSplit int) {
	t.Helper()
	whole := frame.NewReader(bytes.NewReader(data), max)
	split := frame.NewReader(&timeoutReader{r: bytes.NewReader(data)}, max)
	split.SetReadAhead(minSplit * 37) // 2 KiB to 64 KiB as minSplit varies
	// retry calls read until it fails with something other than a timeout.
	retry := func(read func() error) error {
		for range len(data) + 10 { // a timeout at most every third call
			if err := read(); !errors.Is(err, os.ErrDeadlineExceeded) {
				return err
			}
		}
		t.Fatal("no progress: the Reader keeps timing out")
		return nil
	}
	for i := 0; ; i++ {
		want, werr := whole.ReadFrame()
		var got *frame.Frame
		var plen int
		gerr := retry(func() (err error) {
			got, plen, err = split.ReadFrameHeader(minSplit)
			return err
		})
		if gerr == nil && plen > 0 {
			if got.Payload != nil {
				t.Fatalf("frame %d: header-only frame has a payload", i)
			}
			hdr := *got
			p := make([]byte, plen)
			off := 0
			for _, part := range []int{plen / 2, plen - plen/2} {
				end := off + part
				gerr = retry(func() error {
					n, err := split.ReadPayload(p[off:end])
					off += n
					return err
				})
				if gerr != nil {
					break
				}
			}
			if gerr == nil {
				if split.Pending() != 0 {
					t.Fatalf("frame %d: %d payload bytes pending after reading all", i, split.Pending())
				}
				got = &hdr
				got.Payload = p
			}
		}
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("frame %d: ReadFrame error %v, split error %v", i, werr, gerr)
		}
		if werr != nil {
			if errors.Is(werr, io.EOF) != errors.Is(gerr, io.EOF) {
				t.Fatalf("frame %d: errors differ: %v vs %v", i, werr, gerr)
			}
			return
		}
		if want.String() != got.String() || !bytes.Equal(want.Payload, got.Payload) || want.Flags != got.Flags || want.StreamID != got.StreamID {
			t.Fatalf("frame %d: ReadFrame %v, split %v", i, want, got)
		}
	}
}

// timeoutReader fails every third Read with os.ErrDeadlineExceeded, as a
// connection does whose read deadline was moved into the past, and
// returns the others' bytes in pieces of 1 to 29 bytes, so frames are
// cut at every point.
type timeoutReader struct {
	r     io.Reader
	calls int
}

func (t *timeoutReader) Read(p []byte) (int, error) {
	t.calls++
	if t.calls%3 == 0 {
		return 0, os.ErrDeadlineExceeded
	}
	return t.r.Read(p[:min(len(p), 1+t.calls%29)])
}

func TestReadFrameHeaderMatchesReadFrame(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	var data []byte
	for range 2000 {
		fr := randFrame(r)
		data = fr.Append(data)
		if r.IntN(3) == 0 { // plenty of canonical DATA frames with payloads
			d := frame.Frame{StreamID: r.Uint32N(100), Flags: frame.Flags(r.Uint32N(16)), Payload: make([]byte, 1+r.IntN(5000))}
			data = d.Append(data)
		}
	}
	for _, minSplit := range []int{0, 1, 100, 2048} {
		checkSplitReader(t, data, frame.MaxMaxFrameSize, minSplit)
	}
	// ReadFrame and ReadFrameHeader refuse to run with a payload unread.
	d := frame.Frame{StreamID: 1, Payload: make([]byte, 4000)}
	rd := frame.NewReader(bytes.NewReader(d.Append(d.Append(nil))), 1<<20)
	if _, n, err := rd.ReadFrameHeader(1); err != nil || n != 4000 {
		t.Fatalf("ReadFrameHeader: %d, %v", n, err)
	}
	if _, err := rd.ReadFrame(); err == nil {
		t.Fatal("ReadFrame with a payload pending succeeded")
	}
	if _, err := rd.ReadPayload(make([]byte, 4001)); err == nil {
		t.Fatal("ReadPayload beyond the payload succeeded")
	}
}

// ReadFrame, too, resumes a frame after a timeout.
func TestReadFrameResumesAfterTimeout(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	var data []byte
	var want []string
	for range 500 {
		fr := randFrame(r)
		data = fr.Append(data)
		want = append(want, fr.String())
	}
	rd := frame.NewReader(&timeoutReader{r: bytes.NewReader(data)}, frame.MaxMaxFrameSize)
	timeouts := 0
	for i := 0; i < len(want); {
		f, err := rd.ReadFrame()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			timeouts++
			continue
		}
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.String() != want[i] {
			t.Fatalf("frame %d: got %v, want %v", i, f, want[i])
		}
		i++
	}
	_, err := rd.ReadFrame()
	for errors.Is(err, os.ErrDeadlineExceeded) {
		_, err = rd.ReadFrame()
	}
	if !errors.Is(err, io.EOF) {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
	if timeouts == 0 {
		t.Fatal("no read timed out: the test tests nothing")
	}
}
