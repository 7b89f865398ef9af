package tunnel

import (
	"bufio"
	"crypto/tls"
	"net"
	"sync"
)

// TLS over TCP, with fewer system calls.
//
// crypto/tls writes every record (at most 16 KiB of plaintext) with its
// own write to the connection below, and reads one record per read. A
// session's batch of 128 KiB then costs eight write calls on one side and
// eight read calls on the other; on a loaded machine the system calls,
// not the encryption, are most of the tunnel's CPU time. recordConn sits
// between TLS and TCP: while a batch is being encrypted it gathers the
// records and writes them with one call, and it reads ahead so one read
// call takes in several records.

// recordConn is the connection crypto/tls writes its records to.
type recordConn struct {
	net.Conn // the TCP connection
	r        *bufio.Reader

	mu       sync.Mutex
	batching bool
	buf      []byte
}

// readAhead is how much recordConn reads per call: four full records.
const readAhead = 4 * (16<<10 + 256)

func (c *recordConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *recordConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.batching {
		c.buf = append(c.buf, p...)
		c.mu.Unlock()
		return len(p), nil
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// begin starts gathering writes; flush writes what was gathered.
func (c *recordConn) begin() {
	c.mu.Lock()
	c.batching = true
	c.mu.Unlock()
}

func (c *recordConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batching = false
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	if cap(c.buf) > 1<<20 {
		c.buf = nil // do not pin a large buffer after an unusual batch
	} else {
		c.buf = c.buf[:0]
	}
	return err
}

// NetConn returns the TCP connection, so the session can tune it.
func (c *recordConn) NetConn() net.Conn { return c.Conn }

// TLSConn is a *tls.Conn whose records reach TCP through recordConn: a
// Write encrypts all of its bytes, then sends the records with one write
// call. Use it where a *tls.Conn would be used; NetConn returns the TCP
// connection. Its methods are safe for concurrent use as tls.Conn's are.
type TLSConn struct {
	*tls.Conn
	rc *recordConn
}

// NewTLSClient wraps c (a TCP connection) in a client-side TLSConn.
func NewTLSClient(c net.Conn, cfg *tls.Config) *TLSConn { return newTLSConn(c, cfg, true) }

// NewTLSServer wraps c (a TCP connection) in a server-side TLSConn.
func NewTLSServer(c net.Conn, cfg *tls.Config) *TLSConn { return newTLSConn(c, cfg, false) }

func newTLSConn(c net.Conn, cfg *tls.Config, client bool) *TLSConn {
	rc := &recordConn{Conn: c, r: bufio.NewReaderSize(c, readAhead)}
	t := &TLSConn{rc: rc}
	if client {
		t.Conn = tls.Client(rc, cfg)
	} else {
		t.Conn = tls.Server(rc, cfg)
	}
	return t
}

// Write encrypts p and sends the resulting records with one write.
func (t *TLSConn) Write(p []byte) (int, error) {
	t.rc.begin()
	n, err := t.Conn.Write(p)
	if ferr := t.rc.flush(); err == nil && ferr != nil {
		err, n = ferr, 0
	}
	return n, err
}

// NetConn returns the TCP connection below TLS.
func (t *TLSConn) NetConn() net.Conn { return t.rc.Conn }
