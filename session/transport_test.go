package session

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// tlsPair returns the two ends of a TLS 1.3 connection over TCP loopback,
// handshake done, with a self-signed certificate made for the test.
func tlsPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "braid-test"},
		DNSNames:     []string{"braid-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	c1, c2 := tcpPair(t)
	cc := tls.Client(c1, &tls.Config{RootCAs: pool, ServerName: "braid-test", MinVersion: tls.VersionTLS13})
	sc := tls.Server(c2, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS13})
	errc := make(chan error, 1)
	go func() { errc <- sc.Handshake() }()
	if err := cc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return cc, sc
}

// transports are the kinds of connection a session runs on in these
// tests.
var transports = []struct {
	name string
	pair func(testing.TB) (net.Conn, net.Conn)
}{
	{"tcp", tcpPair},
	{"tls", tlsPair},
	{"pipe", func(testing.TB) (net.Conn, net.Conn) { return net.Pipe() }},
}

// A Read that keeps timing out while data streams in — its deadline a few
// microseconds ahead each time, so interrupts land at every point of
// every frame, on TCP, TLS and a pipe — loses and reorders nothing, and a
// stream beside it keeps working.
func TestReadDeadlineStorm(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c1, c2 := tr.pair(t)
			c, s := sessionPairOn(t, c1, c2, nil, nil)
			a, as := open(t, c), accept(t, s)
			b, bs := open(t, c), accept(t, s)
			want := pattern(7, 8<<20)

			var wg sync.WaitGroup
			wg.Go(func() { // the writer: random sizes, now and then a pause
				r := mrand.New(mrand.NewPCG(1, 2))
				for off := 0; off < len(want); {
					n := min(1+r.IntN(40000), len(want)-off)
					if _, err := a.Write(want[off : off+n]); err != nil {
						t.Errorf("Write: %v", err)
						return
					}
					off += n
					if r.IntN(3) == 0 {
						time.Sleep(time.Duration(r.IntN(300)) * time.Microsecond)
					}
				}
				a.CloseWrite()
			})
			wg.Go(func() { // beside it: echoes on another stream
				go io.Copy(bs, bs)
				msg := []byte("ping")
				for range 200 {
					if _, err := b.Write(msg); err != nil {
						t.Errorf("echo Write: %v", err)
						return
					}
					if _, err := io.ReadFull(b, msg); err != nil || string(msg) != "ping" {
						t.Errorf("echo: %q, %v", msg, err)
						return
					}
				}
			})

			r := mrand.New(mrand.NewPCG(3, 4))
			got := make([]byte, 0, len(want))
			buf := make([]byte, 48<<10)
			timeouts := 0
			stop := time.Now().Add(failAfter)
			for time.Now().Before(stop) {
				as.SetReadDeadline(time.Now().Add(time.Duration(r.IntN(60)) * time.Microsecond))
				n, err := as.Read(buf[:1+r.IntN(len(buf))])
				got = append(got, buf[:n]...)
				if errors.Is(err, os.ErrDeadlineExceeded) {
					timeouts++
					continue
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("Read after %d bytes: %v", len(got), err)
				}
			}
			wg.Wait()
			if !bytes.Equal(got, want) {
				i := 0
				for i < min(len(got), len(want)) && got[i] == want[i] {
					i++
				}
				t.Fatalf("read %d bytes of %d, first difference at %d", len(got), len(want), i)
			}
			if timeouts == 0 {
				t.Fatal("no Read timed out: the test tested nothing")
			}
			t.Logf("%d timeouts", timeouts)
		})
	}
}

// The same for a Write waiting for credit, which reads the connection for
// its window update: with write deadlines a few microseconds ahead and a
// small window, it times out over and over, and the stream still carries
// every byte once, in order.
func TestWriteDeadlineStorm(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c1, c2 := tr.pair(t)
			cfg := DefaultConfig()
			cfg.InitialStreamWindow = 16 << 10
			cfg.MaxStreamWindow = 16 << 10
			c, s := sessionPairOn(t, c1, c2, cfg, cfg)
			a, as := open(t, c), accept(t, s)
			want := pattern(8, 4<<20)
			got := make(chan []byte, 1)
			go func() {
				b, err := io.ReadAll(as)
				if err != nil {
					t.Errorf("ReadAll: %v", err)
				}
				got <- b
			}()
			r := mrand.New(mrand.NewPCG(5, 6))
			timeouts := 0
			stop := time.Now().Add(failAfter)
			for off := 0; off < len(want) && time.Now().Before(stop); {
				a.SetWriteDeadline(time.Now().Add(time.Duration(r.IntN(80)) * time.Microsecond))
				n, err := a.Write(want[off:min(off+1+r.IntN(100000), len(want))])
				off += n
				if errors.Is(err, os.ErrDeadlineExceeded) {
					timeouts++
					continue
				}
				if err != nil {
					t.Fatalf("Write after %d bytes: %v", off, err)
				}
			}
			a.SetWriteDeadline(time.Time{})
			a.CloseWrite()
			select {
			case b := <-got:
				if !bytes.Equal(b, want) {
					t.Fatalf("received %d bytes of %d, or out of order", len(b), len(want))
				}
			case <-time.After(failAfter):
				t.Fatal("the reader never got to the end")
			}
			if timeouts == 0 {
				t.Fatal("no Write timed out: the test tested nothing")
			}
			t.Logf("%d timeouts", timeouts)
		})
	}
}

// noDeadlineConn is a connection whose read deadlines cannot be set, as
// some net.Conn wrappers are.
type noDeadlineConn struct{ net.Conn }

func (noDeadlineConn) SetReadDeadline(time.Time) error {
	return errors.New("read deadlines not supported")
}

func (c noDeadlineConn) SetDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(t) }

// On a connection without read deadlines everything works: data, stream
// deadlines, Close unblocking a Read.
func TestConnWithoutReadDeadlines(t *testing.T) {
	c1, c2 := tcpPair(t)
	c, s := sessionPairOn(t, noDeadlineConn{c1}, noDeadlineConn{c2}, nil, nil)
	a, as := open(t, c), accept(t, s)
	want := pattern(9, 4<<20)
	go func() {
		a.Write(want)
		a.CloseWrite()
	}()
	got, err := io.ReadAll(as)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("transfer: %d of %d bytes, %v", len(got), len(want), err)
	}

	b, bs := open(t, c), accept(t, s)
	bs.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := bs.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past its deadline: %v", err)
	}
	bs.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := bs.Read(make([]byte, 1))
		done <- err
	}()
	time.Sleep(10 * time.Millisecond) // let the Read block (either way, Close must end it)
	bs.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrStreamClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Close did not end a blocked Read")
	}
	b.Close()
}
