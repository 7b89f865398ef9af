package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/braidmux/braid/session"
)

// Each stream starts with a header from the client saying what the server
// does with it.
const (
	kindEcho     byte = iota // echo everything back, then half-close
	kindUpload               // read everything, answer with its SHA-256
	kindDownload             // send size bytes generated from seed
)

const headerSize = 1 + 8 + 8 + 1 + 8

type header struct {
	kind         byte
	size         int64  // kindDownload: bytes to send
	seed         uint64 // kindDownload: the bytes' seed
	compressible bool   // kindDownload: text-like bytes
	resetAt      int64  // > 0: the server resets the stream after this many bytes
}

func (h header) marshal() []byte {
	b := make([]byte, headerSize)
	b[0] = h.kind
	binary.BigEndian.PutUint64(b[1:], uint64(h.size))
	binary.BigEndian.PutUint64(b[9:], h.seed)
	if h.compressible {
		b[17] = 1
	}
	binary.BigEndian.PutUint64(b[18:], uint64(h.resetAt))
	return b
}

func parseHeader(b []byte) header {
	return header{
		kind:         b[0],
		size:         int64(binary.BigEndian.Uint64(b[1:])),
		seed:         binary.BigEndian.Uint64(b[9:]),
		compressible: b[17] == 1,
		resetAt:      int64(binary.BigEndian.Uint64(b[18:])),
	}
}

// Reset codes, so that each side can tell the resets it asked for.
const (
	codeClientReset = 0xC0DE
	codeServerReset = 0x5EED
)

// gen generates a stream's bytes: pseudo-random, or text-like (so that
// zstd has something to compress) if compressible.
type gen struct {
	r            *rand.ChaCha8
	left         int64
	compressible bool
}

func newGen(seed uint64, n int64, compressible bool) *gen {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	return &gen{r: rand.NewChaCha8(key), left: n, compressible: compressible}
}

const alphabet = "etaoin shrdlucmfw\n"

func (g *gen) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.left)]
	g.r.Read(p)
	if g.compressible {
		for i, c := range p {
			p[i] = alphabet[int(c)%len(alphabet)]
		}
	}
	g.left -= int64(len(p))
	return len(p), nil
}

func genSum(seed uint64, n int64, compressible bool) [32]byte {
	h := sha256.New()
	io.Copy(h, newGen(seed, n, compressible))
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// serve runs the server side of every stream the client opens, until the
// session ends.
func serve(srv *session.Session, c *counters, closing *closingFlag, timeout time.Duration) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := srv.AcceptStream(context.Background())
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serveStream(st, timeout); err != nil {
				c.serverError(err, srv, closing)
			}
		}()
	}
}

func serveStream(st *session.Stream, timeout time.Duration) error {
	defer st.Close()
	st.SetDeadline(time.Now().Add(timeout))
	var hb [headerSize]byte
	if _, err := io.ReadFull(st, hb[:]); err != nil {
		return fmt.Errorf("reading header: %w", err)
	}
	h := parseHeader(hb[:])
	reset := func(err error) error {
		if err != nil {
			return err
		}
		st.Reset(codeServerReset)
		return nil
	}
	switch h.kind {
	case kindEcho:
		if h.resetAt > 0 {
			_, err := io.CopyN(st, st, h.resetAt)
			return reset(err)
		}
		if _, err := io.Copy(st, st); err != nil {
			return err
		}
	case kindUpload:
		sum := sha256.New()
		if h.resetAt > 0 {
			_, err := io.CopyN(sum, st, h.resetAt)
			return reset(err)
		}
		if _, err := io.Copy(sum, st); err != nil {
			return err
		}
		if _, err := st.Write(sum.Sum(nil)); err != nil {
			return err
		}
	case kindDownload:
		g := newGen(h.seed, h.size, h.compressible)
		if h.resetAt > 0 {
			_, err := io.CopyN(st, g, h.resetAt)
			return reset(err)
		}
		if _, err := io.Copy(st, g); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown stream kind %d", h.kind)
	}
	return st.CloseWrite()
}

// clientStream opens one stream on cli, runs a randomly chosen exchange
// on it and records the outcome in c.
func clientStream(cli *session.Session, rng *rand.Rand, o options, bulkSlots chan struct{}, c *counters) {
	h := header{kind: kindEcho, size: 1 + rng.Int64N(8<<10), seed: rng.Uint64(), compressible: rng.IntN(2) == 0}
	bulk := false
	if rng.IntN(100) < 5 {
		select {
		case bulkSlots <- struct{}{}:
			defer func() { <-bulkSlots }()
			bulk = true
			h.size = o.bulk
			h.kind = kindUpload
			if rng.IntN(2) == 0 {
				h.kind = kindDownload
			}
		default:
		}
	}
	clientReset := rng.IntN(100) < 2
	if !clientReset && rng.IntN(100) < 2 {
		h.resetAt = 1 + rng.Int64N(h.size)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	st, err := cli.OpenStream(ctx)
	cancel()
	if err != nil {
		c.clientError(fmt.Errorf("open: %w", err), cli)
		return
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(o.deadline))
	if _, err := st.Write(h.marshal()); err != nil {
		c.clientError(fmt.Errorf("writing header: %w", err), cli)
		return
	}

	if clientReset {
		// Send part of the data, then abort the stream.
		if h.kind != kindDownload {
			if _, err := io.Copy(st, newGen(h.seed, rng.Int64N(h.size), h.compressible)); err != nil {
				c.clientError(err, cli)
				return
			}
		}
		st.Reset(codeClientReset)
		c.resetsSent.Add(1)
		return
	}

	var verified bool
	switch h.kind {
	case kindEcho:
		verified, err = runEcho(st, h)
	case kindUpload:
		verified, err = runUpload(st, h)
	case kindDownload:
		verified, err = runDownload(st, h)
	}
	var se *session.StreamError
	switch {
	case h.resetAt > 0 && errors.As(err, &se) && se.Remote && se.Code == codeServerReset:
		c.resetsSeen.Add(1)
	case err != nil:
		c.clientError(err, cli)
	case h.resetAt > 0:
		c.unexpected(fmt.Sprintf("stream %d (kind %d) completed though the server was to reset it after %d bytes", st.ID(), h.kind, h.resetAt))
	case !verified:
		c.corruption(fmt.Sprintf("stream %d: kind %d, %d bytes: SHA-256 mismatch", st.ID(), h.kind, h.size))
	default:
		c.completed(bulk, h.size)
	}
}

func runEcho(st *session.Stream, h header) (bool, error) {
	data := make([]byte, h.size)
	newGen(h.seed, h.size, h.compressible).Read(data)
	want := sha256.Sum256(data)
	wrote := make(chan error, 1)
	go func() {
		b := data
		for len(b) > 0 { // in two writes, to vary framing
			k := max(1, len(b)/2)
			if _, err := st.Write(b[:k]); err != nil {
				wrote <- err
				return
			}
			b = b[k:]
		}
		wrote <- st.CloseWrite()
	}()
	sum := sha256.New()
	n, err := io.Copy(sum, st)
	if err != nil {
		st.Reset(codeClientReset) // unblock the writer
	}
	if werr := <-wrote; err == nil {
		err = werr
	}
	return err == nil && n == h.size && bytes.Equal(sum.Sum(nil), want[:]), err
}

func runUpload(st *session.Stream, h header) (bool, error) {
	sum := sha256.New()
	if _, err := io.Copy(st, io.TeeReader(newGen(h.seed, h.size, h.compressible), sum)); err != nil {
		return false, err
	}
	if err := st.CloseWrite(); err != nil {
		return false, err
	}
	got, err := io.ReadAll(st)
	if err != nil {
		return false, err
	}
	return bytes.Equal(got, sum.Sum(nil)), nil
}

func runDownload(st *session.Stream, h header) (bool, error) {
	if err := st.CloseWrite(); err != nil {
		return false, err
	}
	sum := sha256.New()
	n, err := io.Copy(sum, st)
	if err != nil {
		return false, err
	}
	want := genSum(h.seed, h.size, h.compressible)
	return n == h.size && bytes.Equal(sum.Sum(nil), want[:]), nil
}

// sessionOver reports whether err is explained by the session having
// ended (a cut, or our own Close at the end of its life).
func sessionOver(err error, s *session.Session) bool {
	return s.IsClosed() && errors.Is(err, net.ErrClosed)
}
