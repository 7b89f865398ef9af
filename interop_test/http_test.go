package interop_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braidmux/braid/session"
)

// httpBodySize is the size of each large body, up and down.
const httpBodySize = 32 << 20

// httpOverBraid serves a test handler with http.Server.Serve on a braid
// session and returns a client whose Transport opens one braid stream
// per connection.
func httpOverBraid(t *testing.T) (*http.Client, *http.Transport, *session.Session) {
	t.Helper()
	cs, ss := braidSessions(t)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	})
	mux.HandleFunc("GET /download", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		sendPattern(w, 0, n, 32<<10)
	})
	mux.HandleFunc("GET /proto", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ss) }()
	dial := streamDialer(cs)
	tr := &http.Transport{
		DialContext:         func(ctx context.Context, _, addr string) (net.Conn, error) { return dial(ctx, addr) },
		MaxIdleConnsPerHost: 64,
		ForceAttemptHTTP2:   false,
	}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}, tr, cs
}

func TestHTTPLargeBodies(t *testing.T) {
	client, _, _ := httpOverBraid(t)

	// Up: a streamed request body, checksummed by the handler.
	pr, pw := io.Pipe()
	sent := make(chan [32]byte, 1)
	go func() {
		sum, err := sendPattern(pw, 0, httpBodySize, 100<<10)
		pw.CloseWithError(err)
		sent <- sum
	}()
	resp, err := client.Post("http://braid/upload", "application/octet-stream", pr)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("upload: %s %q, %v", resp.Status, body, err)
	}
	sum := <-sent
	if want := fmt.Sprintf("%d %s", httpBodySize, hex.EncodeToString(sum[:])); string(body) != want {
		t.Fatalf("upload: server saw %q, sent %q", body, want)
	}

	// Down: a body of known length and content.
	resp, err = client.Get("http://braid/download?n=" + strconv.FormatInt(httpBodySize, 10))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != httpBodySize {
		t.Fatalf("download Content-Length %d, want %d", resp.ContentLength, httpBodySize)
	}
	got, err := recvHash(resp.Body, httpBodySize)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := sendPattern(io.Discard, 0, httpBodySize, 1<<20); got != want {
		t.Fatal("download: checksum differs")
	}
	if n, _ := io.Copy(io.Discard, resp.Body); n != 0 {
		t.Fatalf("download: %d bytes past Content-Length", n)
	}
}

// get fetches url and returns the body and whether the connection was
// reused.
func get(t *testing.T, client *http.Client, url string) (string, bool) {
	t.Helper()
	var reused atomic.Bool
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused.Store(info.Reused) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(timeoutCtx(t, 30*time.Second), trace), "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Error(err)
		return "", false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Error(err)
	}
	if resp.Proto != "HTTP/1.1" {
		t.Errorf("response protocol %s, want HTTP/1.1", resp.Proto)
	}
	return string(body), reused.Load()
}

func TestHTTPKeepAlive(t *testing.T) {
	client, _, cs := httpOverBraid(t)
	conns := 0
	for range 50 {
		body, reused := get(t, client, "http://braid/proto")
		if body != "HTTP/1.1" {
			t.Fatalf("server saw protocol %q, want HTTP/1.1", body)
		}
		if !reused {
			conns++
		}
	}
	if opened := cs.Stats().StreamsOpened; conns != 1 || opened != 1 {
		t.Errorf("50 sequential requests used %d connections over %d streams; want 1 and 1", conns, opened)
	}

	// Concurrent requests: one stream per connection, and every
	// connection is kept for the next round.
	var newConns atomic.Int64
	for round := range 3 {
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				if _, reused := get(t, client, "http://braid/proto"); !reused {
					newConns.Add(1)
				}
			})
		}
		wg.Wait()
		if round == 0 && newConns.Load() == 0 {
			t.Error("16 concurrent requests reused one connection")
		}
	}
	// Every connection is a stream. net/http may dial one more than a
	// round ends up using (a request waiting for a connection takes
	// whichever comes first, a new one or one freed by another request;
	// the other goes to the idle pool), so streams can outnumber the
	// connections requests ran on, but not the 16 a round can need.
	opened := int64(cs.Stats().StreamsOpened)
	if opened < 1+newConns.Load() {
		t.Errorf("streams opened %d, fewer than the %d connections used", opened, 1+newConns.Load())
	}
	if max := int64(1 + 16); opened > max {
		t.Errorf("%d streams opened for at most 16 concurrent requests: idle connections were not reused", opened)
	}
}

func TestHTTPServerClosesConnection(t *testing.T) {
	client, _, cs := httpOverBraid(t)
	req, _ := http.NewRequestWithContext(timeoutCtx(t, 30*time.Second), "GET", "http://braid/proto", nil)
	req.Close = true // "Connection: close": the stream is closed after the response
	for i := range 3 {
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if got := cs.Stats().StreamsOpened; got != uint64(i+1) {
			t.Fatalf("after %d requests with Connection: close, %d streams opened", i+1, got)
		}
	}
}
