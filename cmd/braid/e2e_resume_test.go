package main_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/braidmux/braid/internal/cutrelay"
)

// TestDownloadSurvivesCut is the acceptance test of resumable sessions
// in the binary: a 64 MiB download through -L goes on, byte for byte,
// when the client's connection to the server is reset mid-way; the
// client resumes its session instead of logging in again.
func TestDownloadSurvivesCut(t *testing.T) {
	parallel(t)
	h := newHarness(t)
	ds := newDataServer(t)
	s, addr, fp := h.startServer(nil)
	relay := cutrelay.Start(t, addr, nil)
	sp := spec("0", "127.0.0.1", ds.port)
	c := h.startClient(nil, relay.Addr(), "--fingerprint", fp, "-L", sp)
	waitConnected(t, c, 0, relay.Addr(), logWait)
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
			if relay.Cut() == 0 {
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
