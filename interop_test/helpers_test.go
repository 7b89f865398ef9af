package interop_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"
)

// patternBlock is the deterministic data that bulk transfers cycle
// through. Its odd length keeps its repeats from lining up with any
// multiplexer's frame size, so a reordered frame changes the checksum.
var patternBlock = func() []byte {
	b := make([]byte, 1<<20+17)
	rand.NewChaCha8([32]byte{'b', 'r', 'a', 'i', 'd'}).Read(b)
	return b
}()

// sendPattern writes n bytes of the pattern, starting at offset off, to
// w in chunks of chunk bytes and returns their SHA-256.
func sendPattern(w io.Writer, off int, n int64, chunk int) ([32]byte, error) {
	h := sha256.New()
	off %= len(patternBlock)
	for n > 0 {
		k := min(int64(chunk), n, int64(len(patternBlock)-off))
		p := patternBlock[off : off+int(k)]
		if _, err := w.Write(p); err != nil {
			return [32]byte{}, err
		}
		h.Write(p)
		n -= k
		off = (off + int(k)) % len(patternBlock)
	}
	return [32]byte(h.Sum(nil)), nil
}

// recvHash reads exactly n bytes from r and returns their SHA-256.
func recvHash(r io.Reader, n int64) ([32]byte, error) {
	h := sha256.New()
	got, err := io.CopyBuffer(h, io.LimitReader(r, n), make([]byte, 64<<10))
	if err == nil && got < n {
		err = fmt.Errorf("got %d of %d bytes: %w", got, n, io.ErrUnexpectedEOF)
	}
	return [32]byte(h.Sum(nil)), err
}

// timeoutCtx returns a context that ends after d or with the test.
func timeoutCtx(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

// async runs f in a goroutine; the result is read from the channel.
func async(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

// waitErr waits up to d for ch and returns what arrived; ok is false if
// nothing did.
func waitErr(ch <-chan error, d time.Duration) (err error, ok bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-ch:
		return err, true
	case <-t.C:
		return nil, false
	}
}

// isTimeout reports whether err is a net.Error timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isDeadlineExceeded reports whether err is os.ErrDeadlineExceeded, as
// net.Conn implementations in the standard library return.
func isDeadlineExceeded(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// poll checks cond until it holds or d passes. It is for state that
// changes asynchronously with no event to wait on (stream counts).
func poll(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}
