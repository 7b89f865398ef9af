package session

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestWriteReusesBuffer: a Write's caller may reuse its slice as soon as
// Write returns. Small Writes are sent straight from the slice and large
// ones through the write pipeline (copied, then written by the writer
// goroutine, several at once). Four streams at a time write chunks from
// one slice each, scribbling over it right after every Write; the peer
// must read each chunk as it was before the scribble. A session that
// returned from a large Write before copying it would deliver the
// scribble.
func TestWriteReusesBuffer(t *testing.T) {
	conns := []struct {
		name string
		pair func(testing.TB) (net.Conn, net.Conn)
	}{
		{"tcp", tcpPair},
		{"pipe", func(testing.TB) (net.Conn, net.Conn) { return net.Pipe() }},
	}
	for _, cn := range conns {
		for _, size := range []int{1 << 10, 16 << 10, 100 << 10, 1 << 20} {
			t.Run(fmt.Sprintf("%s/%d", cn.name, size), func(t *testing.T) {
				c1, c2 := cn.pair(t)
				c, s := sessionPairOn(t, c1, c2, nil, nil)
				const streams, chunks = 4, 16
				var wg sync.WaitGroup
				errs := make(chan error, 2*streams)
				for range streams {
					w, r := streamPairOf(t, c, s)
					r.SetReadDeadline(time.Now().Add(failAfter))
					wg.Go(func() {
						buf := make([]byte, size)
						for i := range chunks {
							fillChunk(buf, i)
							if _, err := w.Write(buf); err != nil {
								errs <- fmt.Errorf("write %d: %w", i, err)
								return
							}
							// The caller reuses its slice, from the end:
							// the last bytes handed over are the likeliest
							// still in use.
							for j := len(buf) - 1; j >= 0; j-- {
								buf[j] = 0xEE
							}
						}
						w.Close()
					})
					wg.Go(func() {
						got, want := make([]byte, size), make([]byte, size)
						for i := range chunks {
							if _, err := io.ReadFull(r, got); err != nil {
								errs <- fmt.Errorf("read %d: %w", i, err)
								return
							}
							fillChunk(want, i)
							if !bytes.Equal(got, want) {
								errs <- fmt.Errorf("chunk %d of %d bytes arrived changed: the session read the caller's slice after Write returned", i, size)
								return
							}
						}
						if n, err := r.Read(got); n != 0 || err != io.EOF {
							errs <- fmt.Errorf("after the last chunk: Read = %d, %v; want 0, EOF", n, err)
						}
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Fatal(err)
				}
			})
		}
	}
}

// fillChunk fills buf with chunk i's bytes, different for every chunk
// and position.
func fillChunk(buf []byte, i int) {
	for j := range buf {
		buf[j] = byte(i*31 + j*7 + j>>8)
	}
}
