package frame

import (
	"io"
)

// inbuf is the Reader's input buffer: bufio.Reader's job, with the size of
// each read from the source chosen by the caller (readAhead). Asking for
// little reads a frame's header alone, so a large payload after it can be
// read straight into its destination (no copy, one more system call);
// asking for a lot reads many frames at once (fewer system calls, one
// copy each). Errors from the source are kept until the buffered bytes
// before them have been consumed; nothing buffered is ever lost to one.
type inbuf struct {
	src  io.Reader
	buf  []byte
	r, w int
	err  error
	want int // bytes one read from src asks for, at most len(buf)
}

func (b *inbuf) Buffered() int { return b.w - b.r }

// readErr returns the stored error and clears it.
func (b *inbuf) readErr() error {
	err := b.err
	b.err = nil
	return err
}

// fill reads from src once, asking for at least need bytes (and for want
// if that is more), after sliding the buffered bytes to the front if the
// read would not fit behind them. A source that returns nothing and no
// error 100 times in a row gets io.ErrNoProgress.
func (b *inbuf) fill(need int) {
	ask := min(max(need, b.want), len(b.buf))
	if b.r == b.w {
		b.r, b.w = 0, 0
	} else if len(b.buf)-b.w < ask {
		copy(b.buf, b.buf[b.r:b.w])
		b.w -= b.r
		b.r = 0
	}
	for range 100 {
		n, err := b.src.Read(b.buf[b.w:min(len(b.buf), b.w+ask)])
		if n < 0 || n > ask {
			panic("frame: source returned a bad count")
		}
		b.w += n
		if err != nil {
			b.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	b.err = io.ErrNoProgress
}

// Peek returns the next n (at most len(buf)) bytes without consuming them,
// or fewer with the error that stopped it.
func (b *inbuf) Peek(n int) ([]byte, error) {
	for b.w-b.r < n && b.err == nil {
		b.fill(n - (b.w - b.r))
	}
	if b.w-b.r < n {
		return b.buf[b.r:b.w], b.readErr()
	}
	return b.buf[b.r : b.r+n], nil
}

// Discard consumes n buffered bytes.
func (b *inbuf) Discard(n int) { b.r += n }

// Read reads into p: buffered bytes if there are any; else, if p is at
// least as large as a read from the source would be, straight from the
// source into p; else through the buffer.
func (b *inbuf) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.r == b.w {
		if b.err != nil {
			return 0, b.readErr()
		}
		if len(p) >= b.want {
			return b.src.Read(p)
		}
		b.fill(1)
		if b.r == b.w {
			return 0, b.readErr()
		}
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	return n, nil
}
