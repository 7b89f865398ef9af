package tunbench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// The bench target's protocol. A connection's first byte selects a mode:
//
//	'D' + 8-byte big-endian N: the target sends N bytes, then closes.
//	'E': the target echoes every byte it reads, this first one included,
//	     until the peer closes.
//	'I': the target sends its 16-byte random identity, then closes (so
//	     that Bench can check a --via forward leads to this target).
const (
	cmdDownload = 'D'
	cmdEcho     = 'E'
	cmdIdentify = 'I'
)

// copyBufSize is the buffer size for bulk reads and writes on either side.
const copyBufSize = 256 << 10

// target is the in-process TCP server on 127.0.0.1:0 that bench traffic
// goes to, directly or through the tunnel. Safe for concurrent use.
type target struct {
	ln   net.Listener
	fill []byte   // read-only payload for downloads
	id   [16]byte // random identity, sent for cmdIdentify

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// startTarget listens on addr (HOST:PORT) and serves until close.
func startTarget(addr string) (*target, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	t := &target{ln: ln, fill: make([]byte, copyBufSize), conns: make(map[net.Conn]struct{})}
	_, _ = rand.Read(t.id[:]) // never fails (crypto/rand)
	for i := range t.fill {
		t.fill[i] = byte(i * 7)
	}
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// addr returns the address the target listens on.
func (t *target) addr() string { return t.ln.Addr().String() }

func (t *target) acceptLoop() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return
		}
		t.mu.Lock()
		if t.conns == nil { // closing
			t.mu.Unlock()
			c.Close()
			return
		}
		t.conns[c] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		go t.serve(c)
	}
}

func (t *target) serve(c net.Conn) {
	defer t.wg.Done()
	defer func() {
		c.Close()
		t.mu.Lock()
		delete(t.conns, c)
		t.mu.Unlock()
	}()
	var first [1]byte
	if _, err := io.ReadFull(c, first[:]); err != nil {
		return
	}
	switch first[0] {
	case cmdIdentify:
		_, _ = c.Write(t.id[:])
	case cmdDownload:
		var n [8]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return
		}
		left := binary.BigEndian.Uint64(n[:])
		for left > 0 {
			chunk := t.fill
			if uint64(len(chunk)) > left {
				chunk = chunk[:left]
			}
			k, err := c.Write(chunk)
			left -= uint64(k)
			if err != nil {
				return
			}
		}
	case cmdEcho:
		if _, err := c.Write(first[:]); err != nil {
			return
		}
		buf := make([]byte, 4<<10)
		for {
			k, err := c.Read(buf)
			if k > 0 {
				if _, werr := c.Write(buf[:k]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
}

// close stops listening, closes every open connection and waits for the
// target's goroutines to end.
func (t *target) close() {
	t.ln.Close()
	t.mu.Lock()
	for c := range t.conns {
		c.Close()
	}
	t.conns = nil
	t.mu.Unlock()
	t.wg.Wait()
}

// open returns how many connections the target is serving.
func (t *target) open() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// waitIdle polls until the target serves no connection, so that the
// tunnel in front of it has closed everything of the previous step, or
// until ctx ends or timeout passes.
func (t *target) waitIdle(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		n := t.open()
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the target still serves %d connections %v after they were closed on this side", n, timeout)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-tick.C:
		}
	}
}
