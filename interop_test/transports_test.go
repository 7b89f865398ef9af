package interop_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// A transport is a kind of net.Conn braid's sessions can run over.
// braid relies on nothing beyond net.Conn's documented contract, so its
// whole behavioural suite must pass over each of them (TestSuiteTransports),
// and so must a heavy mix of bulk and latency-sensitive streams
// (TestHeavyMixTransports).
type transport struct {
	name string
	what string // one line for the README and the logs
	dial func() (client, server net.Conn, err error)
}

// transports lists the transports; tcp, the one TestSuite uses, first.
// The dial functions other than dialTCP are in transports_helpers_test.go.
var transports = []transport{
	{"tcp", "loopback TCP", dialTCP},
	{"tls", "TLS 1.3 over loopback TCP, self-signed certificate", dialTLS},
	{"unix", "Unix domain socket", dialUnix},
	{"pipe", "net.Pipe: synchronous, unbuffered", dialPipe},
	{"errdeadline", "loopback TCP whose SetDeadline/SetReadDeadline/SetWriteDeadline do nothing and return an error", dialNoDeadlines},
	{"websocket", "github.com/coder/websocket NetConn (binary messages) over HTTP on loopback; it closes itself when a read deadline fires during a Read", dialWebSocket},
}

// transportEnv names the transport dialPair uses, and so every case of
// TestSuite: TestSuiteTransports sets it in its child processes. Unset
// (or "tcp") means loopback TCP. To run braid's suite over one
// transport in process:
//
//	BRAID_INTEROP_CHILD=1 BRAID_INTEROP_TRANSPORT=websocket go test -run 'TestSuite/^braid$/' -v ./interop_test
const transportEnv = "BRAID_INTEROP_TRANSPORT"

func transportByName(name string) *transport {
	for i := range transports {
		if transports[i].name == name {
			return &transports[i]
		}
	}
	return nil
}

// dialSelected dials the transport transportEnv names.
func dialSelected() (net.Conn, net.Conn, error) {
	name := os.Getenv(transportEnv)
	if name == "" {
		return dialTCP()
	}
	tr := transportByName(name)
	if tr == nil {
		var names []string
		for _, tr := range transports {
			names = append(names, tr.name)
		}
		return nil, nil, fmt.Errorf("%s=%q: no such transport (there are %s)", transportEnv, name, strings.Join(names, ", "))
	}
	return tr.dial()
}

// transportNA lists, per transport, the suite cases that cannot run
// over it because they need something of the raw connection itself that
// the transport lacks, with the reason. Nothing else may be left out:
// braid must pass every case that depends only on braid, and there is
// no list of expected failures. A case failing over a transport is a
// bug in package session.
//
// It is empty: conn_dies and conn_dies_not_eof only Close the raw
// connection, and no other case touches it, so every case runs over
// every transport.
var transportNA = map[string]map[string]string{}

// transportSkip returns why case c is not run over tr, or "".
func transportSkip(tr transport, c suiteCase) string {
	if why := transportNA[tr.name][c.name]; why != "" {
		return why
	}
	if missing := missingFeatures(braidMuxer, c); missing != "" {
		return "braid lacks " + missing
	}
	return ""
}

// TestSuiteTransports runs every case of the suite against braid over
// each transport other than tcp (TestSuite covers that one), each
// (transport, case) in a child process as TestSuite does: the child runs
// TestSuite's braid case with transportEnv set. Every case run must
// pass.
func TestSuiteTransports(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		t.Skip("a child process runs TestSuite's cases, not this")
	}
	var mu sync.Mutex
	got := map[string]map[string]string{}
	t.Cleanup(func() { // after every subtest
		mu.Lock()
		defer mu.Unlock()
		t.Logf("braid over each transport:\n%s", renderTransportTable(got))
	})
	for _, tr := range transports[1:] {
		got[tr.name] = map[string]string{}
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range suiteCases {
				t.Run(c.name, func(t *testing.T) {
					res, out := resNA, ""
					skip := transportSkip(tr, c)
					if skip == "" {
						t.Parallel()
						res, out = runTransportChild(tr, c)
					}
					mu.Lock()
					got[tr.name][c.name] = res
					mu.Unlock()
					switch {
					case skip != "":
						t.Skip(skip)
					case res != resPass:
						t.Errorf("braid over %s: %s: %s\n%s", tr.name, c.name, res, tail(out, 12000))
					}
				})
			}
		})
	}
}

// runTransportChild runs braid's case c of TestSuite over tr in a child
// process, with TestSuite's time limits.
func runTransportChild(tr transport, c suiteCase) (string, string) {
	timeout := c.timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	pattern := fmt.Sprintf("^TestSuite$/^%s$/^%s$", regexp.QuoteMeta(braidMuxer.name), regexp.QuoteMeta(c.name))
	if c.nettest != "" {
		pattern += "/^" + c.nettest + "$"
	}
	return runChildProcess(pattern, timeout, transportEnv+"="+tr.name)
}

// runChildProcess runs this test binary's tests matching pattern in a
// child process in child mode (childEnv), with env added to the
// environment, and returns the result and the output. It fails a child
// that does not exit within timeout+10 s, exits non-zero, or never
// started a case (ranMarker). TestSuite's runChild uses it too.
func runChildProcess(pattern string, timeout time.Duration, env ...string) (string, string) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run="+pattern, "-test.v", "-test.count=1",
		"-test.timeout="+timeout.String())
	cmd.Env = append(append(os.Environ(), childEnv+"=1"), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	switch {
	case ctx.Err() != nil:
		return resFail, out.String() + "\n(killed: no exit within " + (timeout + 10*time.Second).String() + ")"
	case err != nil:
		return resFail, out.String() + "\n(" + err.Error() + ")"
	case !strings.Contains(out.String(), ranMarker):
		return resFail, out.String() + "\n(the case did not run: check its -test.run pattern " + pattern + ")"
	}
	return resPass, out.String()
}

// renderTransportTable renders braid's results per case and transport.
func renderTransportTable(got map[string]map[string]string) string {
	var b strings.Builder
	b.WriteString("| case |")
	for _, tr := range transports[1:] {
		b.WriteString(" " + tr.name + " |")
	}
	b.WriteString("\n|---|")
	for range transports[1:] {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, c := range suiteCases {
		b.WriteString("| " + c.name + " |")
		for _, tr := range transports[1:] {
			res := got[tr.name][c.name]
			if res == "" {
				res = "?"
			}
			b.WriteString(" " + res + " |")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Sizes of TestHeavyMixTransports.
const (
	mixBulkStreams = 8
	mixBulkSize    = 16 << 20 // each way, per bulk stream
	mixEchoStreams = 2
	mixEchoMin     = 64
	mixEchoMax     = 1 << 10
	mixEchoFor     = 30 * time.Second // echoes stop then at the latest
	mixReadTimeout = 5 * time.Second  // the deadline before every echo Read
	mixTimeout     = 90 * time.Second // the child's limit; websocket under -race takes 15–26 s
)

// TestHeavyMixTransports runs, over each transport, one braid session
// pair carrying 8 bulk streams (16 MiB each way, SHA-256 checked per
// stream and direction) and beside them 2 streams echoing small
// messages (64 B to 1 KiB) with a read deadline set before every Read on
// both ends, until the bulk is done. The deadlines must never fire and
// every echo must come back intact. Each transport runs in a child
// process (90 s limit), so a hang fails it alone.
func TestHeavyMixTransports(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		for _, tr := range transports {
			t.Run(tr.name, func(t *testing.T) {
				markRan()
				heavyMix(t, tr)
			})
		}
		return
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			pattern := fmt.Sprintf("^TestHeavyMixTransports$/^%s$", regexp.QuoteMeta(tr.name))
			start := time.Now()
			res, out := runChildProcess(pattern, mixTimeout)
			if res != resPass {
				t.Fatalf("braid over %s (%s): heavy mix failed:\n%s", tr.name, tr.what, tail(out, 12000))
			}
			t.Logf("passed in %v:\n%s", time.Since(start).Round(time.Millisecond), mixSummary(out))
		})
	}
}

// mixSummary picks the child's own log lines out of its output.
func mixSummary(out string) string {
	var lines []string
	for l := range strings.Lines(out) {
		if strings.Contains(l, "transports_test.go") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	return strings.Join(lines, "\n")
}

func heavyMix(t *testing.T, tr transport) {
	c, s, err := tr.dial()
	if err != nil {
		t.Fatalf("dial %s: %v", tr.name, err)
	}
	cs, ss, err := braidMuxer.start(c, s)
	if err != nil {
		c.Close()
		s.Close()
		t.Fatalf("braid over %s: start: %v", tr.name, err)
	}
	t.Cleanup(func() {
		cs.Close()
		ss.Close()
		c.Close()
		s.Close()
	})
	p := &testPair{client: cs, server: ss, clientRaw: c, serverRaw: s}
	start := time.Now()
	bulkDeadline := start.Add(mixTimeout - 10*time.Second)

	// Open every stream first, one at a time, so the server accepts them
	// in the order the client opened them.
	type streamPair struct{ c, s net.Conn }
	bulk := make([]streamPair, mixBulkStreams)
	for i := range bulk {
		bulk[i].c, bulk[i].s = p.streams(t)
	}
	echo := make([]streamPair, mixEchoStreams)
	for i := range echo {
		echo[i].c, echo[i].s = p.streams(t)
	}

	errs := make(chan error, 4*mixBulkStreams+2*mixEchoStreams)
	bulkDone := make(chan struct{})
	var bulkWG, echoWG sync.WaitGroup
	for i, st := range bulk {
		st.c.SetDeadline(bulkDeadline)
		st.s.SetDeadline(bulkDeadline)
		for _, dir := range []struct {
			name string
			w, r net.Conn
		}{{"client→server", st.c, st.s}, {"server→client", st.s, st.c}} {
			off := (2*i + len(dir.name)) * 4099 // a different part of the pattern per stream and direction
			var sent, got [32]byte
			var serr, rerr error
			var pair sync.WaitGroup
			pair.Go(func() { sent, serr = sendPattern(dir.w, off, mixBulkSize, 100<<10) })
			pair.Go(func() { got, rerr = recvHash(dir.r, mixBulkSize) })
			bulkWG.Go(func() {
				pair.Wait()
				switch {
				case serr != nil || rerr != nil:
					errs <- fmt.Errorf("bulk stream %d %s: send: %v, receive: %v", i, dir.name, serr, rerr)
				case sent != got:
					errs <- fmt.Errorf("bulk stream %d %s: SHA-256 of the %d bytes received differs from that of the bytes sent", i, dir.name, mixBulkSize)
				}
			})
		}
	}
	echoes := make([]int, mixEchoStreams)
	for i, st := range echo {
		echoWG.Go(func() {
			if err := mixEchoBack(st.s); err != nil {
				errs <- fmt.Errorf("echo stream %d, server: %w", i, err)
			}
		})
		echoWG.Go(func() {
			n, err := mixEchoLoop(st.c, i, bulkDone, start.Add(mixEchoFor))
			echoes[i] = n
			if err != nil {
				errs <- fmt.Errorf("echo stream %d, client, after %d echoes: %w", i, n, err)
			}
		})
	}
	bulkWG.Wait()
	bulkTook := time.Since(start)
	close(bulkDone)
	echoWG.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, n := range echoes {
		if n == 0 {
			t.Errorf("echo stream %d: no echo came back", i)
		}
	}
	t.Logf("%s: bulk %d × %d MiB each way in %v; echoes meanwhile: %v", tr.name,
		mixBulkStreams, mixBulkSize>>20, bulkTook.Round(time.Millisecond), echoes)
}

// mixRead reads into p with a fresh read deadline of mixReadTimeout,
// saying so if it fires.
func mixRead(c net.Conn, p []byte) (int, error) {
	c.SetReadDeadline(time.Now().Add(mixReadTimeout))
	n, err := c.Read(p)
	if isTimeout(err) {
		err = fmt.Errorf("the %v read deadline fired (nothing arrived for %v beside the bulk streams): %w", mixReadTimeout, mixReadTimeout, err)
	}
	return n, err
}

// mixEchoBack writes back what it reads until io.EOF, then closes.
func mixEchoBack(s net.Conn) error {
	defer s.Close()
	buf := make([]byte, mixEchoMax)
	for {
		n, err := mixRead(s, buf)
		if n > 0 {
			if _, werr := s.Write(buf[:n]); werr != nil {
				return fmt.Errorf("Write: %w", werr)
			}
		}
		switch {
		case err == io.EOF:
			return nil
		case err != nil:
			return fmt.Errorf("Read: %w", err)
		}
	}
}

// mixEchoLoop sends messages of 64 B to 1 KiB on c and checks each comes
// back intact, until done is closed or until, then half-closes and
// waits for the server's end. It returns how many echoes came back.
func mixEchoLoop(c net.Conn, stream int, done <-chan struct{}, until time.Time) (int, error) {
	got := make([]byte, mixEchoMax)
	span := mixEchoMax - mixEchoMin + 1
	n := 0
	for ; time.Now().Before(until); n++ {
		select {
		case <-done:
			return n, mixCloseEcho(c)
		default:
		}
		size := mixEchoMin + (n*37+stream*501)%span
		off := (n*1031 + stream*65537) % (len(patternBlock) - mixEchoMax)
		msg := patternBlock[off : off+size]
		if _, err := c.Write(msg); err != nil {
			return n, fmt.Errorf("Write of echo %d (%d B): %w", n, size, err)
		}
		for read := 0; read < size; {
			k, err := mixRead(c, got[read:size])
			read += k
			if err != nil {
				return n, fmt.Errorf("Read of echo %d (%d of %d B back): %w", n, read, size, err)
			}
		}
		if !bytes.Equal(got[:size], msg) {
			return n, fmt.Errorf("echo %d (%d B) came back different", n, size)
		}
	}
	return n, mixCloseEcho(c)
}

// mixCloseEcho half-closes an echo stream and waits for the server's EOF.
func mixCloseEcho(c net.Conn) error {
	if err := braidMuxer.closeWrite(c); err != nil {
		return fmt.Errorf("CloseWrite: %w", err)
	}
	n, err := mixRead(c, make([]byte, 1))
	switch {
	case err == io.EOF:
		return nil
	case err == nil:
		return fmt.Errorf("%d unexpected bytes after the last echo", n)
	}
	return fmt.Errorf("waiting for the server's EOF: %w", err)
}
