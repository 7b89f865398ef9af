package tunnel

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

func testCert(t *testing.T) tls.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

// countingConn counts the writes that reach the TCP connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestTLSConn: bytes cross intact in both directions whatever the write
// sizes, a Write of many records reaches TCP in one write call, and a
// read deadline that fires leaves the connection usable.
func TestTLSConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvCfg := &tls.Config{Certificates: []tls.Certificate{testCert(t)}, MinVersion: tls.VersionTLS13}
	type accepted struct {
		c   *TLSConn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			ch <- accepted{err: err}
			return
		}
		c := NewTLSServer(raw, srvCfg)
		ch <- accepted{c, c.Handshake()}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingConn{Conn: raw}
	cli := NewTLSClient(counted, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	defer cli.Close()
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	a := <-ch
	if a.err != nil {
		t.Fatal(a.err)
	}
	srv := a.c
	defer srv.Close()
	if cli.NetConn() != counted {
		t.Fatal("NetConn does not return the connection below TLS")
	}

	// Echo server.
	go func() {
		buf := make([]byte, 100<<10)
		for {
			n, err := srv.Read(buf)
			if n > 0 {
				if _, err := srv.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()

	rng := mrand.New(mrand.NewPCG(1, 2))
	for _, size := range []int{1, 100, 16 << 10, 16<<10 + 1, 64 << 10, 200 << 10, 1 << 20} {
		msg := make([]byte, size)
		for i := range msg {
			msg[i] = byte(rng.Uint32())
		}
		before := counted.writes.Load()
		if _, err := cli.Write(msg); err != nil {
			t.Fatal(err)
		}
		if w := counted.writes.Load() - before; w != 1 {
			t.Errorf("Write of %d bytes reached TCP in %d writes, want 1", size, w)
		}
		got := make([]byte, size)
		cli.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(cli, got); err != nil {
			t.Fatalf("echo of %d bytes: %v", size, err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("echo of %d bytes differs", size)
		}
	}

	// A read deadline that fires does not break the connection.
	cli.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := cli.Read(make([]byte, 1)); err == nil {
		t.Fatal("read with nothing to read returned no error")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("read past its deadline: %v, want a timeout", err)
	}
	cli.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := cli.Write([]byte("again")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(cli, got); err != nil || string(got) != "again" {
		t.Fatalf("after a timeout: %q, %v", got, err)
	}
}
