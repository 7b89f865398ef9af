package yamux_test

import (
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braidmux/braid/yamux"
)

// gate is a writer that forwards until closed, then discards.
type gate struct {
	w    io.Writer
	shut atomic.Bool
}

func (g *gate) Write(p []byte) (int, error) {
	if g.shut.Load() {
		return len(p), nil
	}
	return g.w.Write(p)
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestKeepAliveTimeout: a peer that stops answering ends the session
// after KeepAliveInterval + ConnectionWriteTimeout; Accept reports
// ErrKeepAliveTimeout, and the event is logged to LogOutput.
func TestKeepAliveTimeout(t *testing.T) {
	c, pc := net.Pipe() // client ⇄ proxy
	ps, s := net.Pipe() // proxy ⇄ server
	toClient := &gate{w: pc}
	var wg sync.WaitGroup
	wg.Go(func() { io.Copy(ps, pc); ps.Close() })
	wg.Go(func() { io.Copy(toClient, ps); pc.Close() })
	defer wg.Wait()

	var logs syncBuffer
	cfg := quiet()
	cfg.LogOutput = &logs
	cfg.KeepAliveInterval = 50 * time.Millisecond
	cfg.ConnectionWriteTimeout = 200 * time.Millisecond
	client, err := yamux.Client(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	scfg := quiet()
	scfg.EnableKeepAlive = false
	server, err := yamux.Server(s, scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	if _, err := client.Ping(); err != nil {
		t.Fatalf("Ping before the cut: %v", err)
	}
	toClient.shut.Store(true) // the server's answers are lost from now on
	start := time.Now()
	_, err = client.Accept()
	if err != yamux.ErrKeepAliveTimeout {
		t.Errorf("Accept = %v, want ErrKeepAliveTimeout", err)
	}
	t.Logf("session ended %v after the peer went silent", time.Since(start))
	if got := logs.String(); !strings.Contains(got, "keepalive") {
		t.Errorf("LogOutput got %q; want a line about the keepalive", got)
	} else {
		t.Logf("logged: %s", strings.TrimSpace(got))
	}
	server.Close()
}
