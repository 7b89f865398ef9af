package tunnel_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/braidmux/braid/internal/cutrelay"
	"github.com/braidmux/braid/internal/tunnel"
)

// dataTarget sends size pseudo-random bytes (ChaCha8 from seed) to every
// connection, then closes it; it returns its address and the bytes'
// SHA-256.
func dataTarget(t *testing.T, seed uint64, size int64) (string, [32]byte) {
	t.Helper()
	var key [32]byte
	key[0] = byte(seed)
	copy(key[8:], "braid resume test")
	h := sha256.New()
	io.CopyN(h, rand.NewChaCha8(key), size)
	var sum [32]byte
	h.Sum(sum[:0])
	addr := tcpServer(t, func(c net.Conn) {
		src := io.LimitReader(rand.NewChaCha8(key), size)
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				break
			}
		}
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c) // until the other side closes
	})
	return addr, sum
}

// readCutting reads c to its end, cutting the relay each time another
// of cutAt bytes has arrived, and checks length and SHA-256.
func readCutting(t *testing.T, c net.Conn, relay *cutrelay.Relay, size int64, want [32]byte, cutAt ...int64) {
	t.Helper()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	h := sha256.New()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		m, err := c.Read(buf)
		h.Write(buf[:m])
		n += int64(m)
		for len(cutAt) > 0 && n >= cutAt[0] {
			relay.Cut()
			cutAt = cutAt[1:]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading after %d of %d bytes: %v", n, size, err)
		}
	}
	if n != size {
		t.Fatalf("got %d bytes, want %d", n, size)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
		t.Fatalf("SHA-256 %x, want %x", got, want)
	}
	if len(cutAt) > 0 {
		t.Fatalf("the download ended before the cuts at %v", cutAt)
	}
}

// TestDownloadSurvivesCut: a download through -L, -R or -D goes on byte
// for byte when the client's connection to the server is reset
// mid-transfer, twice: the session resumes on a new connection instead
// of being replaced, and the connection's slot among the server's
// unauthenticated ones is freed at once, not at the auth timeout.
func TestDownloadSurvivesCut(t *testing.T) {
	const size = 16 << 20
	for _, tc := range []struct {
		kind tunnel.Kind
		tls  bool
	}{{tunnel.Local, false}, {tunnel.Remote, false}, {tunnel.Dynamic, false}, {tunnel.Local, true}} {
		kind := tc.kind
		name := kind.String()
		if tc.tls {
			name += "-tls"
		}
		t.Run(name, func(t *testing.T) {
			target, sum := dataTarget(t, 1, size)
			scfg := tunnel.ServerConfig{AuthTimeout: time.Minute, MaxUnauthenticated: 2}
			if tc.tls {
				scfg.TLS = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
			}
			srv := startServer(t, scfg)
			relay := cutrelay.Start(t, srv.addr, nil)
			dial := relay.Dial
			if tc.tls {
				dial = func(ctx context.Context) (net.Conn, error) {
					raw, err := relay.Dial(ctx)
					if err != nil {
						return nil, err
					}
					c := tunnel.NewTLSClient(raw, &tls.Config{InsecureSkipVerify: true})
					if err := c.HandshakeContext(ctx); err != nil {
						raw.Close()
						return nil, err
					}
					return c, nil
				}
			}
			spec := "0:" + target
			if kind == tunnel.Dynamic {
				spec = "0"
			}
			cl := startClient(t, tunnel.ClientConfig{Dial: dial,
				Forwards: []tunnel.Forward{mustForward(t, kind, spec)}})
			addr := cl.listen(t, 0)
			var c net.Conn
			var err error
			if kind == tunnel.Dynamic {
				var socks proxy.Dialer
				socks, err = proxy.SOCKS5("tcp", addr, nil, &net.Dialer{Timeout: 5 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				c, err = socks.Dial("tcp", target)
			} else {
				c, err = net.DialTimeout("tcp", addr, 5*time.Second)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			readCutting(t, c, relay, size, sum, size/4, size/2)

			snap := cl.Snapshot()
			if snap.Session.Resumes < 2 {
				t.Errorf("client session resumed %d times, want 2 (one per cut)", snap.Session.Resumes)
			}
			if snap.Reconnects != snap.Session.Resumes {
				t.Errorf("client Reconnects %d, want the %d resumes (no new session)", snap.Reconnects, snap.Session.Resumes)
			}
			if n := srv.Snapshot().Reconnects; n != 1 {
				t.Errorf("server accepted %d sessions, want 1", n)
			}
			waitFor(t, "resumed connections to leave the unauthenticated count", 5*time.Second, func() bool {
				return srv.Snapshot().Unauthenticated == 0
			})
			// The link works for new connections too.
			if kind != tunnel.Dynamic {
				c2, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer c2.Close()
				readCutting(t, c2, relay, size, sum)
			}
		})
	}
}

// selfSigned returns a throwaway certificate for a TLS server.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(crand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

// TestServerRestartLogsInAgain: the server goes away while the client's
// connection is down (no GOAWAY reaches the client) and a new one comes
// up on the same address; it cannot resume the session, so the client
// logs in as a new session and its forwards work again.
func TestServerRestartLogsInAgain(t *testing.T) {
	target := echoTarget(t)
	srv1 := startServer(t, tunnel.ServerConfig{})
	relay := cutrelay.Start(t, srv1.addr, nil)
	var logs syncBuffer
	cl := startClient(t, tunnel.ClientConfig{Dial: relay.Dial, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Forwards: []tunnel.Forward{
			mustForward(t, tunnel.Local, "0:"+target),
			mustForward(t, tunnel.Remote, "0:"+target),
		}})
	local := cl.listen(t, 0)
	echoOnce(t, local, []byte("before"))
	echoOnce(t, cl.listen(t, 1), []byte("-R before"))

	relay.Down()
	relay.Cut()
	waitFor(t, "the client to see the link down", 10*time.Second, func() bool { return !cl.Snapshot().Connected })
	srv1.Close()
	startServerAt(t, srv1.addr, tunnel.ServerConfig{})
	relay.Up()

	waitFor(t, "a new session", 15*time.Second, func() bool {
		s := cl.Snapshot()
		return s.Connected && s.Reconnects == 1 && s.Session.Resumes == 0
	})
	if !strings.Contains(logs.String(), "could not be resumed") {
		t.Errorf("client log does not say why it logged in again:\n%s", logs.String())
	}
	echoOnce(t, local, []byte("after"))
	echoOnce(t, cl.listen(t, 1), []byte("-R after"))
}

// TestGiveUpResumingReplacesDetachedSession: the client gives up
// resuming (its ResumeTimeout is shorter than the server's) while the
// server still keeps the session and its fixed -R port for a resume. The
// client's new login (same instance) replaces that session, so the -R
// port is bound again at once: "port already in use" cannot follow.
func TestGiveUpResumingReplacesDetachedSession(t *testing.T) {
	target := echoTarget(t)
	srv := startServer(t, tunnel.ServerConfig{ResumeTimeout: time.Minute})
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fixed := free.Addr().String()
	free.Close()
	relay := cutrelay.Start(t, srv.addr, nil)
	var logs syncBuffer
	cl := startClient(t, tunnel.ClientConfig{Dial: relay.Dial, ResumeTimeout: 300 * time.Millisecond,
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
		Forwards: []tunnel.Forward{mustForward(t, tunnel.Remote, fixed+":"+target)}})
	if got := cl.listen(t, 0); got != fixed {
		t.Fatalf("-R bound at %s, want %s", got, fixed)
	}
	echoOnce(t, fixed, []byte("before"))

	relay.Down()
	relay.Cut()
	waitFor(t, "the client to give up resuming", 10*time.Second, func() bool {
		return strings.Contains(logs.String(), "session not resumed")
	})
	if n := srv.Snapshot().Sessions; n != 1 {
		t.Fatalf("server holds %d sessions while the client is away, want its 1 waiting to be resumed", n)
	}
	relay.Up()
	waitFor(t, "the client to log in again", 10*time.Second, func() bool {
		s := cl.Snapshot()
		return s.Connected && s.Reconnects == 1 && s.Session.Resumes == 0
	})
	if got := cl.listen(t, 0); got != fixed {
		t.Fatalf("-R bound at %s after logging in again, want %s", got, fixed)
	}
	if strings.Contains(logs.String(), "already in use") {
		t.Fatalf("the new login found the -R port in use:\n%s", logs.String())
	}
	echoOnce(t, fixed, []byte("after"))
	waitFor(t, "the server to hold only the new session", 5*time.Second, func() bool { return srv.Snapshot().Sessions == 1 })
}
