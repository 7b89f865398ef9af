package interop_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// The dial functions of the transports (transports_test.go). Each
// returns the client and the server end of one fresh, established
// connection on this machine, and leaves nothing else behind: no
// listener, no socket file, no server.

// dialTimeout bounds every handshake a dial function waits for.
const dialTimeout = 10 * time.Second

// dialTLS runs TLS 1.3 over loopback TCP, the server with a self-signed
// certificate the client trusts; both handshakes are done on return.
func dialTLS() (net.Conn, net.Conn, error) {
	cfg, err := tlsConfigs()
	if err != nil {
		return nil, nil, err
	}
	c, s, err := dialTCP()
	if err != nil {
		return nil, nil, err
	}
	tc, ts := tls.Client(c, cfg.client), tls.Server(s, cfg.server)
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	serr := async(func() error { return ts.HandshakeContext(ctx) })
	err = errors.Join(tc.HandshakeContext(ctx), <-serr)
	if err == nil && tc.ConnectionState().Version != tls.VersionTLS13 {
		err = fmt.Errorf("negotiated %s, want TLS 1.3", tls.VersionName(tc.ConnectionState().Version))
	}
	if err != nil {
		tc.Close()
		ts.Close()
		return nil, nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, ts, nil
}

// tlsEnds is the TLS configuration of each end.
type tlsEnds struct{ server, client *tls.Config }

// tlsConfigs makes, once per process, a self-signed certificate for
// 127.0.0.1 and ::1, and the TLS 1.3 configurations of both ends.
var tlsConfigs = sync.OnceValues(func() (tlsEnds, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tlsEnds{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "braid interop test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tlsEnds{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return tlsEnds{}, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return tlsEnds{
		server: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}},
		},
		client: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots, ServerName: "127.0.0.1"},
	}, nil
})

// dialUnix connects over a Unix socket in a fresh temporary directory,
// removed (socket file and all) before it returns: an established
// connection does not need its file.
func dialUnix() (net.Conn, net.Conn, error) {
	dir, err := os.MkdirTemp("", "braid-unix-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("unix", filepath.Join(dir, "sock"))
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	return connectTo(ln)
}

// connectTo dials ln's address and returns that connection with the one
// ln accepts.
func connectTo(ln net.Listener) (net.Conn, net.Conn, error) {
	accepted := make(chan net.Conn, 1)
	go func() {
		s, err := ln.Accept()
		if err != nil {
			s = nil
		}
		accepted <- s
	}()
	c, err := net.DialTimeout(ln.Addr().Network(), ln.Addr().String(), dialTimeout)
	if err != nil {
		ln.Close() // ends the Accept
		<-accepted
		return nil, nil, err
	}
	s := <-accepted
	if s == nil {
		c.Close()
		return nil, nil, errors.New("accept failed")
	}
	return c, s, nil
}

// dialPipe returns the two ends of a net.Pipe: synchronous, no buffer
// at all, so a Write waits until the peer reads it.
func dialPipe() (net.Conn, net.Conn, error) {
	c, s := net.Pipe()
	return c, s, nil
}

// dialNoDeadlines is loopback TCP behind noDeadlineConn.
func dialNoDeadlines() (net.Conn, net.Conn, error) {
	c, s, err := dialTCP()
	if err != nil {
		return nil, nil, err
	}
	return noDeadlineConn{c}, noDeadlineConn{s}, nil
}

// errNoDeadlines is what noDeadlineConn's deadline setters return.
var errNoDeadlines = errors.New("interop: this connection does not support deadlines")

// noDeadlineConn is a net.Conn whose deadline setters do nothing and
// return an error, as net.Conn's contract allows. Embedding the
// interface hides the *net.TCPConn's other methods (CloseWrite, …).
type noDeadlineConn struct{ net.Conn }

func (noDeadlineConn) SetDeadline(time.Time) error      { return errNoDeadlines }
func (noDeadlineConn) SetReadDeadline(time.Time) error  { return errNoDeadlines }
func (noDeadlineConn) SetWriteDeadline(time.Time) error { return errNoDeadlines }

// dialWebSocket connects through a WebSocket (github.com/coder/websocket)
// served over HTTP on loopback, both ends wrapped by websocket.NetConn
// in binary messages. Such a conn closes itself when a read deadline
// fires during a Read: whoever uses it must not interrupt its reader
// with a deadline.
func dialWebSocket() (net.Conn, net.Conn, error) {
	accepted := make(chan net.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			return // Accept has answered with the HTTP error
		}
		// The connection is hijacked: it outlives this handler and the
		// server, so it does not take the request's context.
		accepted <- websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	}))
	defer srv.Close()
	tr := &http.Transport{} // no proxy from the environment
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+srv.Listener.Addr().String(), &websocket.DialOptions{
		HTTPClient:      &http.Client{Transport: tr},
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("websocket dial: %w", err)
	}
	c := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	select {
	case s := <-accepted: // sent by the handler right after its 101 response
		return c, s, nil
	case <-ctx.Done():
		ws.CloseNow()
		return nil, nil, errors.New("websocket: the server's end never arrived")
	}
}
