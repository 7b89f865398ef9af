package frame_test

import (
	"bytes"
	"errors"
	"io"
	"math"
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
		wb{}.bytes(15, []byte("p")).varint(2, 3).raw(unknowns(10)...),
		wb{}.varint(1, 1).bytes(8, wb{}.varint(6, 1).bytes(6, []byte{0, 1}).raw(unknowns(10)...)).bytes(8, wb{}.varint(2, 1)),
		wb{}.bytes(8, wb{}.bytes(6, make([]byte, frame.MaxCompressionOffers+1))),
		wb{}.varint(1, 5).bytes(9, []byte("\xff")),
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
			// The codec's one deliberate extra limit: protobuf accepts any
			// number of compression offers.
			if perr == nil && len(m.GetHello().GetCompression()) <= frame.MaxCompressionOffers {
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
