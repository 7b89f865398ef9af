package linkemu_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/braidmux/braid/internal/linkemu"
)

func TestFaultConfigErrors(t *testing.T) {
	for _, f := range []linkemu.Fault{
		{},
		{Kind: 99},
		{Kind: linkemu.Cut, Dir: 7},
		{Kind: linkemu.Cut, At: -1},
		{Kind: linkemu.Stall, At: 10},
		{Kind: linkemu.Stall, For: time.Millisecond, Every: -1},
		{Kind: linkemu.Rechunk},
	} {
		l, err := linkemu.Listen("127.0.0.1:1", linkemu.Config{Faults: []linkemu.Fault{f}})
		if err == nil {
			l.Close()
			t.Errorf("Listen with fault %+v succeeded, want error", f)
		}
	}
	if s := linkemu.BlackHole.String(); s != "black hole" {
		t.Errorf("BlackHole.String() = %q", s)
	}
	if s := linkemu.ServerToClient.String(); s != "server→client" {
		t.Errorf("ServerToClient.String() = %q", s)
	}
}

// faultPipe is pipe with faults.
func faultPipe(t *testing.T, faults ...linkemu.Fault) (client, server *net.TCPConn, l *linkemu.Link) {
	t.Helper()
	return pipe(t, linkemu.Config{RTT: 2 * time.Millisecond, Faults: faults, Seed: 1})
}

func randomBytes(seed byte, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

type readResult struct {
	data  []byte
	reads int
	err   error
}

// readAll reads c until an error or the deadline, in a goroutine, and
// reports what it read.
func readAll(c net.Conn, d time.Duration) <-chan readResult {
	ch := make(chan readResult, 1)
	c.SetReadDeadline(time.Now().Add(d))
	go func() {
		var r readResult
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				r.reads++
				r.data = append(r.data, buf[:n]...)
			}
			if err != nil {
				r.err = err
				ch <- r
				return
			}
		}
	}()
	return ch
}

// write writes data to c in a goroutine and reports the error.
func write(c net.Conn, data []byte) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		ch <- err
	}()
	return ch
}

func wait[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s: nothing after %v", what, d)
		panic("unreachable")
	}
}

func isClosedErr(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF)
}

// TestFaultCut: the first At bytes arrive, then both ends find the
// connection reset, in both directions.
func TestFaultCut(t *testing.T) {
	for _, dir := range []linkemu.Dir{linkemu.ClientToServer, linkemu.ServerToClient, linkemu.Both} {
		t.Run(dir.String(), func(t *testing.T) {
			const at = 10_000
			client, server, l := faultPipe(t, linkemu.Fault{Kind: linkemu.Cut, Dir: dir, At: at})
			src, dst := client, server
			if dir == linkemu.ServerToClient {
				src, dst = server, client
			}
			data := randomBytes(1, 1<<20)
			wrote := write(src, data)
			got := wait(t, readAll(dst, 5*time.Second), 10*time.Second, "reading a cut connection")
			if !isClosedErr(got.err) {
				t.Errorf("destination read ended with %v, want ECONNRESET or EOF", got.err)
			}
			if len(got.data) > at || !bytes.Equal(got.data, data[:len(got.data)]) {
				t.Fatalf("destination read %d bytes, want a prefix of at most %d", len(got.data), at)
			}
			t.Logf("destination read %d bytes, then %v", len(got.data), got.err)
			// The write may have fitted in kernel buffers before the cut.
			if err := wait(t, wrote, 5*time.Second, "writing into a cut connection"); err != nil && !isClosedErr(err) {
				t.Errorf("source write ended with %v, want success, ECONNRESET or EPIPE", err)
			}
			// The source's own reads fail too: the whole connection is gone,
			// and so do its writes after that.
			if r := wait(t, readAll(src, 5*time.Second), 10*time.Second, "reading the source"); !isClosedErr(r.err) {
				t.Errorf("source read ended with %v, want ECONNRESET or EOF", r.err)
			}
			if _, err := src.Write([]byte("x")); !isClosedErr(err) {
				t.Errorf("source write after the cut: %v, want ECONNRESET or EPIPE", err)
			}
			if n := l.Stats().Faults; n != 1 {
				t.Errorf("Stats().Faults = %d, want 1", n)
			}
		})
	}
}

// TestFaultBlackHole: after At bytes nothing arrives, not even the FIN,
// the source's writes do not back up, and the other direction still
// works.
func TestFaultBlackHole(t *testing.T) {
	const at = 1000
	client, server, l := faultPipe(t, linkemu.Fault{Kind: linkemu.BlackHole, Dir: linkemu.ClientToServer, At: at})
	data := randomBytes(2, 8<<20) // far more than kernel and link buffers hold
	if err := wait(t, write(client, data), 10*time.Second, "writing into a black hole"); err != nil {
		t.Fatalf("writing into a black hole: %v", err)
	}
	if err := client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got := wait(t, readAll(server, 300*time.Millisecond), 5*time.Second, "reading a black hole")
	if !errors.Is(got.err, os.ErrDeadlineExceeded) {
		t.Errorf("read behind a black hole ended with %v, want a timeout (no EOF)", got.err)
	}
	if !bytes.Equal(got.data, data[:at]) {
		t.Errorf("read %d bytes behind a black hole, want the first %d", len(got.data), at)
	}
	// The other direction is untouched.
	if _, err := server.Write([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "still here" {
		t.Fatalf("client read %q, %v", buf, err)
	}
	eventually(t, func() bool { return l.Stats().ClientToServer.Read == int64(len(data)) })
	st := l.Stats()
	if st.Faults != 1 || st.ClientToServer.Written != at {
		t.Errorf("Stats = %+v, want 1 fault and %d bytes written to the server", st, at)
	}
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFaultStall: bytes before a stall point arrive at once, bytes after
// it a pause later; a repeating stall pauses at every period.
func TestFaultStall(t *testing.T) {
	t.Run("once", func(t *testing.T) {
		const pause = 150 * time.Millisecond
		client, server, l := faultPipe(t, linkemu.Fault{Kind: linkemu.Stall, Dir: linkemu.ClientToServer, At: 1000, For: pause})
		data := randomBytes(3, 2000)
		start := time.Now()
		if _, err := client.Write(data); err != nil {
			t.Fatal(err)
		}
		server.SetReadDeadline(time.Now().Add(5 * time.Second))
		first := make([]byte, 1000)
		if _, err := io.ReadFull(server, first); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d >= pause {
			t.Errorf("bytes before the stall point took %v, want less than the pause %v", d, pause)
		}
		rest := make([]byte, 1000)
		if _, err := io.ReadFull(server, rest); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < pause {
			t.Errorf("bytes after the stall point took %v, want at least %v", d, pause)
		}
		if !bytes.Equal(append(first, rest...), data) {
			t.Error("stalled bytes changed")
		}
		if n := l.Stats().Faults; n != 1 {
			t.Errorf("Stats().Faults = %d, want 1", n)
		}
	})
	t.Run("every", func(t *testing.T) {
		const pause = 30 * time.Millisecond
		client, server, l := faultPipe(t, linkemu.Fault{Kind: linkemu.Stall, At: 0, Every: 1000, For: pause})
		data := randomBytes(4, 5000) // stalls at 0, 1000, ..., 4000
		start := time.Now()
		wrote := write(server, data)
		got := make([]byte, len(data))
		client.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(client, got); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 5*pause {
			t.Errorf("%d bytes with 5 stalls of %v took %v", len(data), pause, d)
		}
		if !bytes.Equal(got, data) {
			t.Error("stalled bytes changed")
		}
		if err := wait(t, wrote, 5*time.Second, "write"); err != nil {
			t.Fatal(err)
		}
		if n := l.Stats().Faults; n != 5 {
			t.Errorf("Stats().Faults = %d, want 5", n)
		}
	})
}

// TestFaultCorrupt: exactly the bytes at the given offsets change, by the
// given masks, in each direction the fault names.
func TestFaultCorrupt(t *testing.T) {
	client, server, l := faultPipe(t,
		linkemu.Fault{Kind: linkemu.Corrupt, Dir: linkemu.Both, At: 3, Mask: 0x10},
		linkemu.Fault{Kind: linkemu.Corrupt, Dir: linkemu.ClientToServer, At: 70_000},  // Mask 0: 0xFF
		linkemu.Fault{Kind: linkemu.Corrupt, Dir: linkemu.ServerToClient, At: 1 << 30}, // never reached
	)
	const size = 100_000
	up, down := randomBytes(5, size), randomBytes(6, size)
	wantUp, wantDown := bytes.Clone(up), bytes.Clone(down)
	wantUp[3] ^= 0x10
	wantUp[70_000] ^= 0xFF
	wantDown[3] ^= 0x10
	upDone, downDone := write(client, up), write(server, down)
	gotUp, gotDown := make([]byte, size), make([]byte, size)
	for _, x := range []struct {
		c   net.Conn
		buf []byte
	}{{server, gotUp}, {client, gotDown}} {
		x.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(x.c, x.buf); err != nil {
			t.Fatal(err)
		}
	}
	for _, ch := range []<-chan error{upDone, downDone} {
		if err := wait(t, ch, 5*time.Second, "write"); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(gotUp, wantUp) || !bytes.Equal(gotDown, wantDown) {
		t.Errorf("corrupted bytes differ from the expected ones")
	}
	if n := l.Stats().Faults; n != 3 {
		t.Errorf("Stats().Faults = %d, want 3", n)
	}
}

// TestFaultRechunk: the bytes arrive unchanged in many small writes, with
// the other faults still at their offsets.
func TestFaultRechunk(t *testing.T) {
	for _, maxWrite := range []int{1, 1000} {
		client, server, _ := faultPipe(t,
			linkemu.Fault{Kind: linkemu.Rechunk, MaxWrite: maxWrite},
			linkemu.Fault{Kind: linkemu.Corrupt, Dir: linkemu.ClientToServer, At: 12_345, Mask: 1},
		)
		data := randomBytes(7, 64<<10)
		want := bytes.Clone(data)
		want[12_345] ^= 1
		read := readAll(server, 10*time.Second)
		wrote := write(client, data)
		if err := wait(t, wrote, 10*time.Second, "write"); err != nil {
			t.Fatal(err)
		}
		client.CloseWrite()
		got := wait(t, read, 20*time.Second, "read")
		if got.err != io.EOF || !bytes.Equal(got.data, want) {
			t.Fatalf("MaxWrite %d: read %d bytes, %v; want the %d written (one corrupted) and EOF", maxWrite, len(got.data), got.err, len(data))
		}
		// A 64 KiB write crosses an unfaulted link in a read or two. How
		// many reads the receiver needs for many small writes depends on
		// how fast it reads; 65536 one-byte writes take long enough that
		// it cannot miss them all.
		if maxWrite == 1 && got.reads < 2 {
			t.Errorf("MaxWrite %d: 64 KiB arrived in %d reads, want many", maxWrite, got.reads)
		}
		t.Logf("MaxWrite %d: 64 KiB arrived in %d reads", maxWrite, got.reads)
	}
}
