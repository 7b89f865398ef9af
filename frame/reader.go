package frame

import (
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
// A read that fails with a timeout (an error with Timeout() true, such as
// os.ErrDeadlineExceeded from a connection whose read deadline passed)
// loses nothing: the Reader keeps the part of the frame it has, and the
// next call carries on where the failed one stopped. This lets the caller
// interrupt a blocked read by moving the connection's deadline.
//
// A Reader is not safe for concurrent use: one goroutine at a time reads.
type Reader struct {
	br   inbuf
	max  uint32
	buf  *[]byte // holds the current frame's body; nil after Detach
	big  *[]byte // the pooled input buffer, once read-ahead grew it
	f    Frame
	read uint64 // bytes consumed, prefixes included

	// A frame in progress, kept across a timeout.
	size    int  // its body length, or -1 before the length prefix is read
	inBody  bool // the whole body is being read into buf
	got     int  // body bytes in buf so far
	pending int  // payload bytes ReadFrameHeader left for ReadPayload
}

// readerBufSize is the size of the Reader's input buffer until read-ahead
// beyond it is asked for; maxReadAhead is the most SetReadAhead sets.
const (
	readerBufSize = 2 << 10
	maxReadAhead  = 64 << 10
)

// NewReader returns a Reader of r that accepts frame bodies of at most
// maxFrameSize bytes (clamped to [0, MaxMaxFrameSize]).
func NewReader(r io.Reader, maxFrameSize uint32) *Reader {
	rd := &Reader{br: inbuf{src: r, buf: make([]byte, readerBufSize), want: readerBufSize}, size: -1}
	rd.SetMaxFrameSize(maxFrameSize)
	return rd
}

// SetReadAhead sets how many bytes the Reader asks its source for when it
// needs more input: n clamped to [2 KiB, 64 KiB]; a new Reader starts at
// 2 KiB. Little read-ahead reads a frame's header alone, so a large payload
// after it can be read straight into the caller's buffer by ReadPayload
// (no copy, one more read call per frame); much read-ahead takes in many
// frames per read call and copies payloads out of the Reader's buffer. A
// payload at least as large as the read-ahead is read straight into the
// caller's buffer either way. The Reader's buffer grows (from a pool) the
// first time read-ahead above 2 KiB is asked for, and Close returns it.
func (r *Reader) SetReadAhead(n int) {
	n = min(max(n, readerBufSize), maxReadAhead)
	if n > len(r.br.buf) {
		big := GetBuffer(maxReadAhead)
		r.br.w = copy(*big, r.br.buf[r.br.r:r.br.w])
		r.br.r = 0
		r.br.buf = *big
		r.big = big
	}
	r.br.want = n
}

// SetMaxFrameSize changes the largest frame body accepted from the next
// ReadFrame on.
func (r *Reader) SetMaxFrameSize(n uint32) {
	r.max = min(n, MaxMaxFrameSize)
}

// NextLen returns the body length of the next frame if its length prefix
// is already buffered (so reading the frame's start makes no read call),
// or -1.
func (r *Reader) NextLen() int {
	if r.size >= 0 || r.pending > 0 {
		return -1 // in the middle of a frame
	}
	v, n := protowire.ConsumeVarint(r.br.buf[r.br.r:r.br.w])
	if n <= 0 || n > MaxLengthPrefix || v > MaxMaxFrameSize {
		return -1
	}
	return int(v)
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
// bytes give an error wrapping ErrMalformed. After a timeout the next call
// resumes the same frame (see Reader); after any other error the Reader's
// position in the stream is unspecified.
func (r *Reader) ReadFrame() (*Frame, error) {
	if r.pending > 0 {
		return nil, errors.New("braid: frame.Reader: payload of the last frame not read")
	}
	if r.size < 0 {
		size, err := r.readPrefix()
		if err != nil {
			return nil, err
		}
		r.startFrame(size)
	}
	if !r.inBody {
		r.startBody()
	}
	return r.readBody()
}

// startFrame notes a length prefix just read.
func (r *Reader) startFrame(size uint32) {
	r.size = int(size)
	r.inBody = false
	r.got = 0
}

// startBody readies the buffer the whole body is read into.
func (r *Reader) startBody() {
	if r.buf != nil && sizeClass(cap(*r.buf)) != sizeClass(r.size) {
		PutBuffer(r.buf)
		r.buf = nil
	}
	if r.buf == nil {
		r.buf = GetBuffer(r.size)
	}
	*r.buf = (*r.buf)[:r.size]
	r.inBody = true
	r.got = 0
}

// readBody reads the rest of the body that startBody readied, and parses
// it.
func (r *Reader) readBody() (*Frame, error) {
	body := (*r.buf)[:r.size]
	n, err := io.ReadFull(&r.br, body[r.got:])
	r.got += n
	r.read += uint64(n)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("braid: reading %d-byte frame body: %w", r.size, err)
	}
	r.size = -1
	r.inBody = false
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
	if r.size < 0 {
		size, err := r.readPrefix()
		if err != nil {
			return nil, 0, err
		}
		r.startFrame(size)
	}
	if !r.inBody {
		hdr, plen, ok, err := r.peekDataHeader(r.size)
		if err != nil {
			return nil, 0, err
		}
		if ok && plen >= max(minSplit, 1) {
			r.f = Frame{Settings: Settings{Compression: r.f.Settings.Compression[:0]}}
			if err := parseDataHeader(&r.f, hdr); err != nil {
				return nil, 0, err
			}
			r.br.Discard(len(hdr))
			r.read += uint64(len(hdr))
			r.size = -1
			r.pending = plen
			return &r.f, plen, nil
		}
		r.startBody()
	}
	f, err := r.readBody()
	return f, 0, err
}

// ReadPayload reads the next len(dst) bytes of the payload announced by
// ReadFrameHeader; len(dst) must not exceed Pending. The payload may be
// read in several calls; the next frame can be read once all of it has
// been. It returns how many bytes it put in dst: all of them, or fewer
// with an error (after a timeout the rest can be read by later calls).
func (r *Reader) ReadPayload(dst []byte) (int, error) {
	if len(dst) > r.pending {
		return 0, fmt.Errorf("braid: frame.Reader: ReadPayload of %d bytes, %d left in the frame", len(dst), r.pending)
	}
	n, err := io.ReadFull(&r.br, dst)
	r.pending -= n
	r.read += uint64(n)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return n, fmt.Errorf("braid: reading %d-byte frame payload: %w", len(dst), err)
	}
	return n, nil
}

// Pending returns how many payload bytes of the frame ReadFrameHeader
// announced are still to be read with ReadPayload.
func (r *Reader) Pending() int { return r.pending }

// peekDataHeader looks at the start of a body of size bytes without
// consuming it. If it is a DATA frame's stream id and flags (varints, in
// any order) followed by a payload field that ends exactly at the end of
// the body, it returns the bytes up to the payload and the payload's
// length. The error is that of a read that brought too few bytes.
func (r *Reader) peekDataHeader(size int) ([]byte, int, bool, error) {
	const maxHeader = 1 + 5 + 1 + 5 + 1 + 5 // as AppendDataHeader writes
	want := min(size, maxHeader)
	b, err := r.br.Peek(want)
	if len(b) < want {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, 0, false, fmt.Errorf("braid: reading %d-byte frame body: %w", size, err)
	}
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return nil, 0, false, nil
		}
		switch {
		case typ == protowire.VarintType && (num == fieldStreamID || num == fieldFlags):
			m := protowire.ConsumeFieldValue(num, typ, b[off+n:])
			if m < 0 {
				return nil, 0, false, nil
			}
			off += n + m
		case typ == protowire.BytesType && num == fieldPayload:
			v, m := protowire.ConsumeVarint(b[off+n:])
			if m < 0 {
				return nil, 0, false, nil
			}
			hdr := off + n + m
			if v == 0 || uint64(hdr)+v != uint64(size) {
				return nil, 0, false, nil
			}
			return b[:hdr], int(v), true, nil
		default:
			return nil, 0, false, nil
		}
	}
	return nil, 0, false, nil
}

// readPrefix reads the varint length prefix and checks it against the
// maximum. It consumes nothing until the whole prefix is there, so a
// timeout part way loses nothing.
func (r *Reader) readPrefix() (uint32, error) {
	for n := 1; ; n++ {
		b, err := r.br.Peek(n)
		if len(b) < n {
			if n > 1 {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return 0, fmt.Errorf("braid: reading frame length: %w", err)
			}
			return 0, err
		}
		c := b[n-1]
		if n == MaxLengthPrefix && c > 0x0f {
			return 0, malformed("length prefix overflows 32 bits")
		}
		if c >= 0x80 {
			continue
		}
		var v uint64
		for i, c := range b {
			v |= uint64(c&0x7f) << (7 * i)
		}
		r.br.Discard(n)
		r.read += uint64(n)
		if v > uint64(r.max) {
			return 0, fmt.Errorf("%w: length %d, limit %d", ErrFrameTooLarge, v, r.max)
		}
		return uint32(v), nil
	}
}

// Detach hands the buffer holding the last frame's body (which the
// Frame's byte slices alias: Payload, Debug, Settings.Magic,
// Settings.Nonce, Settings.ResumeKey, Settings.ResumeID, and Resume's
// SessionID, Nonce and MAC) to the caller, who must give it back with
// PutBuffer when done with it and must not use it after. The
// Reader takes a new buffer for the next frame. It returns nil if no frame
// has been read since the last Detach.
func (r *Reader) Detach() *[]byte {
	b := r.buf
	r.buf = nil
	return b
}

// Close returns the Reader's buffers to the pool. The Reader must not be
// used after.
func (r *Reader) Close() {
	if r.buf != nil {
		PutBuffer(r.buf)
		r.buf = nil
	}
	if r.big != nil {
		PutBuffer(r.big)
		r.big = nil
		r.br.buf, r.br.r, r.br.w = nil, 0, 0
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
