package frame

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
)

// Reader reads frames from a byte stream. It reads the length prefix,
// rejects a length above its maximum before reading or allocating the
// body, reads the body into a pooled buffer it reuses, and decodes it.
//
// A Reader is not safe for concurrent use: one goroutine reads.
type Reader struct {
	br   *bufio.Reader
	max  uint32
	buf  *[]byte // holds the current frame's body; nil after Detach
	f    Frame
	read uint64 // bytes consumed, prefixes included

	pending int // payload bytes ReadFrameHeader left for ReadPayload
}

// readerBufSize is the size of the Reader's bufio buffer. Bodies at least
// this large are read straight from the underlying reader into the body
// buffer; a small buffer means little of a large payload is copied
// through it (measured: 2 KiB beats 4 and 16 KiB for bulk DATA, the same
// for small frames).
const readerBufSize = 2 << 10

// NewReader returns a Reader of r that accepts frame bodies of at most
// maxFrameSize bytes (clamped to [0, MaxMaxFrameSize]).
func NewReader(r io.Reader, maxFrameSize uint32) *Reader {
	rd := &Reader{br: bufio.NewReaderSize(r, readerBufSize)}
	rd.SetMaxFrameSize(maxFrameSize)
	return rd
}

// SetMaxFrameSize changes the largest frame body accepted from the next
// ReadFrame on.
func (r *Reader) SetMaxFrameSize(n uint32) {
	r.max = min(n, MaxMaxFrameSize)
}

// BytesRead returns how many bytes the Reader has consumed as frames.
func (r *Reader) BytesRead() uint64 { return r.read }

// Buffered returns the bytes buffered but not yet consumed; they belong
// to the frames after the last one returned.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// ReadFrame reads and decodes the next frame. The returned Frame and every
// slice in it are valid until the next call to ReadFrame (unless the body
// buffer is taken with Detach).
//
// At a clean end of input before any byte of a frame it returns io.EOF; a
// frame cut short gives an error wrapping io.ErrUnexpectedEOF; a length
// above the maximum gives an error wrapping ErrFrameTooLarge; undecodable
// bytes give an error wrapping ErrMalformed. After an error the Reader's
// position in the stream is unspecified.
func (r *Reader) ReadFrame() (*Frame, error) {
	if r.pending > 0 {
		return nil, errors.New("braid: frame.Reader: payload of the last frame not read")
	}
	size, err := r.readPrefix()
	if err != nil {
		return nil, err
	}
	return r.readBody(size)
}

// readBody reads and parses a whole body of size bytes.
func (r *Reader) readBody(size uint32) (*Frame, error) {
	body, err := r.body(int(size))
	if err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(r.br, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("braid: reading %d-byte frame body: %w", size, err)
	}
	r.read += uint64(size)
	if err := Parse(&r.f, body); err != nil {
		return nil, err
	}
	return &r.f, nil
}

// ReadFrameHeader is ReadFrame for callers that want to choose where a
// DATA payload goes. For a DATA frame laid out as conforming encoders
// write it — stream id, flags, then the payload as the last field — whose
// payload is at least minSplit bytes long, it reads only the bytes before
// the payload and returns the frame with Payload nil and the payload's
// length; the caller must then read the payload with exactly one
// ReadPayload call before the next read. Any other frame (or a DATA frame
// laid out otherwise, or with a shorter payload) is read whole, as
// ReadFrame does, and the length returned is 0.
//
// The Frame is valid until the next read, as with ReadFrame.
func (r *Reader) ReadFrameHeader(minSplit int) (*Frame, int, error) {
	if r.pending > 0 {
		return nil, 0, errors.New("braid: frame.Reader: payload of the last frame not read")
	}
	size, err := r.readPrefix()
	if err != nil {
		return nil, 0, err
	}
	if hdr, plen, ok := r.peekDataHeader(int(size)); ok && plen >= max(minSplit, 1) {
		r.f = Frame{Settings: Settings{Compression: r.f.Settings.Compression[:0]}}
		if err := parseDataHeader(&r.f, hdr); err != nil {
			return nil, 0, err
		}
		r.br.Discard(len(hdr))
		r.read += uint64(len(hdr))
		r.pending = plen
		return &r.f, plen, nil
	}
	f, err := r.readBody(size)
	return f, 0, err
}

// ReadPayload reads the payload announced by ReadFrameHeader into dst,
// which must be exactly that long.
func (r *Reader) ReadPayload(dst []byte) error {
	if len(dst) != r.pending {
		return fmt.Errorf("braid: frame.Reader: ReadPayload of %d bytes, frame has %d", len(dst), r.pending)
	}
	r.pending = 0
	if _, err := io.ReadFull(r.br, dst); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("braid: reading %d-byte frame payload: %w", len(dst), err)
	}
	r.read += uint64(len(dst))
	return nil
}

// peekDataHeader looks at the start of a body of size bytes without
// consuming it. If it is a DATA frame's stream id and flags (varints, in
// any order) followed by a payload field that ends exactly at the end of
// the body, it returns the bytes up to the payload and the payload's
// length.
func (r *Reader) peekDataHeader(size int) ([]byte, int, bool) {
	const maxHeader = 1 + 5 + 1 + 5 + 1 + 5 // as AppendDataHeader writes
	b, _ := r.br.Peek(min(size, maxHeader))
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return nil, 0, false
		}
		switch {
		case typ == protowire.VarintType && (num == fieldStreamID || num == fieldFlags):
			m := protowire.ConsumeFieldValue(num, typ, b[off+n:])
			if m < 0 {
				return nil, 0, false
			}
			off += n + m
		case typ == protowire.BytesType && num == fieldPayload:
			v, m := protowire.ConsumeVarint(b[off+n:])
			if m < 0 {
				return nil, 0, false
			}
			hdr := off + n + m
			if v == 0 || uint64(hdr)+v != uint64(size) {
				return nil, 0, false
			}
			return b[:hdr], int(v), true
		default:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// readPrefix reads the varint length prefix and checks it against the
// maximum.
func (r *Reader) readPrefix() (uint32, error) {
	var v uint64
	for i := 0; ; i++ {
		c, err := r.br.ReadByte()
		if err != nil {
			if i > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			if i > 0 {
				return 0, fmt.Errorf("braid: reading frame length: %w", err)
			}
			return 0, err
		}
		r.read++
		if i == MaxLengthPrefix-1 && c > 0x0f {
			return 0, malformed("length prefix overflows 32 bits")
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			break
		}
	}
	if v > uint64(r.max) {
		return 0, fmt.Errorf("%w: length %d, limit %d", ErrFrameTooLarge, v, r.max)
	}
	return uint32(v), nil
}

// body returns a buffer of n bytes for the next frame body, reusing the
// current one when it is of the right size class.
func (r *Reader) body(n int) ([]byte, error) {
	if r.buf != nil && sizeClass(cap(*r.buf)) != sizeClass(n) {
		PutBuffer(r.buf)
		r.buf = nil
	}
	if r.buf == nil {
		r.buf = GetBuffer(n)
	}
	*r.buf = (*r.buf)[:n]
	return *r.buf, nil
}

// Detach hands the buffer holding the last frame's body (which its
// Payload, Debug and Settings.Magic alias) to the caller, who must give it
// back with PutBuffer when done with it and must not use it after. The
// Reader takes a new buffer for the next frame. It returns nil if no frame
// has been read since the last Detach.
func (r *Reader) Detach() *[]byte {
	b := r.buf
	r.buf = nil
	return b
}

// Close returns the Reader's buffer to the pool. The Reader must not be
// used after.
func (r *Reader) Close() {
	if r.buf != nil {
		PutBuffer(r.buf)
		r.buf = nil
	}
}

// Buffer pools, one per power-of-two size class from 512 B to
// MaxMaxFrameSize.
const (
	minClassShift = 9
	maxClassShift = 24
)

var pools [maxClassShift - minClassShift + 1]sync.Pool

func sizeClass(n int) int {
	if n <= 1<<minClassShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minClassShift
}

// GetBuffer returns a pooled buffer of length n (0 ≤ n ≤ MaxMaxFrameSize)
// whose capacity is n rounded up to a power of two (at least 512). It is
// safe for concurrent use.
func GetBuffer(n int) *[]byte {
	c := sizeClass(n)
	if c >= len(pools) {
		panic(errors.New("braid: frame.GetBuffer: size above MaxMaxFrameSize"))
	}
	if p, ok := pools[c].Get().(*[]byte); ok {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n, 1<<(c+minClassShift))
	return &b
}

// PutBuffer returns a buffer obtained from GetBuffer or Reader.Detach to
// the pool. The caller must not use it afterwards. It is safe for
// concurrent use; nil is ignored.
func PutBuffer(p *[]byte) {
	if p == nil {
		return
	}
	c := sizeClass(cap(*p))
	if c >= len(pools) || cap(*p) != 1<<(c+minClassShift) {
		return // not one of ours
	}
	pools[c].Put(p)
}
