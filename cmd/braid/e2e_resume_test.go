package main_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// cutRelay relays TCP connections from the client to the server and can
// reset them all (SO_LINGER 0), as a dropped link does.
type cutRelay struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []*net.TCPConn
}

func newCutRelay(t *testing.T, target string) *cutRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &cutRelay{ln: ln, target: target}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			down, up := c.(*net.TCPConn), u.(*net.TCPConn)
			r.mu.Lock()
			r.conns = append(r.conns, down, up)
			r.mu.Unlock()
			r.wg.Add(2)
			go r.copy(up, down)
			go r.copy(down, up)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		r.cut()
		r.wg.Wait()
	})
	return r
}

func (r *cutRelay) copy(dst, src *net.TCPConn) {
	defer r.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// cut resets every relayed connection, on both sides; it returns how
// many it cut.
func (r *cutRelay) cut() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.conns)
	for _, c := range r.conns {
		_ = c.SetLinger(0)
		c.Close()
	}
	r.conns = nil
	return n
}

// TestDownloadSurvivesCut is the acceptance test of resumable sessions
// in the binary: a 64 MiB download through -L goes on, byte for byte,
// when the client's connection to the server is reset mid-way; the
// client resumes its session instead of logging in again.
func TestDownloadSurvivesCut(t *testing.T) {
	parallel(t)
	h := newHarness(t)
	ds := newDataServer(t)
	s, addr, fp := h.startServer(nil)
	relay := newCutRelay(t, addr)
	sp := spec("0", "127.0.0.1", ds.port)
	c := h.startClient(nil, relay.ln.Addr().String(), "--fingerprint", fp, "-L", sp)
	waitConnected(t, c, 0, relay.ln.Addr().String(), logWait)
	listen := waitReady(t, c, 0, "-L", sp)

	const seed = 31
	url := fmt.Sprintf("http://%s/data?size=%d&seed=%d", listen, bigSize, seed)
	resp, err := httpClient(t, nil).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %s", url, resp.Status)
	}
	hash := sha256.New()
	buf := make([]byte, 64<<10)
	var n int64
	cutAt := int64(bigSize / 4)
	mark := c.mark()
	for {
		m, err := resp.Body.Read(buf)
		hash.Write(buf[:m])
		n += int64(m)
		if cutAt > 0 && n >= cutAt {
			if relay.cut() == 0 {
				t.Fatal("nothing to cut: the client is not connected through the relay")
			}
			t.Logf("cut the client's connection after %d of %d bytes", n, bigSize)
			cutAt = 0
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("download: body after %d bytes: %v", n, err)
		}
	}
	if cutAt != 0 {
		t.Fatal("the download ended before the cut")
	}
	if n != bigSize {
		t.Fatalf("download: got %d bytes, want %d", n, bigSize)
	}
	if want := expectedHash(seed, bigSize); !bytes.Equal(hash.Sum(nil), want[:]) {
		t.Fatalf("download: SHA-256 %x, want %x", hash.Sum(nil), want)
	}

	// The client said what happened: the link broke and the session
	// resumed; it did not log in again.
	c.waitLine(t, mark, logWait, "msg=connected resumed=true", func(l logLine) bool {
		return l.kv["msg"] == "connected" && l.kv["resumed"] == "true"
	})
	if _, ok := c.findLine(mark, msgIs("session not resumed; logging in again")); ok {
		t.Fatalf("the client logged in again instead of resuming:\n%s", c.tail())
	}
	if got := strings.Count(s.stderr.String(), `msg="client connected"`); got != 1 {
		t.Fatalf("the server saw %d logins, want 1 (the session resumes without one):\n%s", got, s.tail())
	}
}
