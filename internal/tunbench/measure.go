package tunbench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// dial connects to addr and arranges for the connection to be closed when
// ctx ends, so that no read or write outlives it. The returned stop
// function undoes that arrangement (it does not close the connection).
func dial(ctx context.Context, addr string) (net.Conn, func() bool, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	return c, stop, nil
}

// ctxErr returns ctx's cause if ctx has ended (which explains a closed
// connection), else err.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// download asks the target at addr for n bytes and reads them into buf
// until EOF. It returns the time from the request to EOF.
func download(ctx context.Context, addr string, n int64, buf []byte) (time.Duration, error) {
	c, stop, err := dial(ctx, addr)
	if err != nil {
		return 0, err
	}
	defer stop()
	defer c.Close()
	var req [9]byte
	req[0] = cmdDownload
	binary.BigEndian.PutUint64(req[1:], uint64(n))
	start := time.Now()
	if _, err := c.Write(req[:]); err != nil {
		return 0, ctxErr(ctx, err)
	}
	var got int64
	for {
		k, err := c.Read(buf)
		got += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, ctxErr(ctx, fmt.Errorf("download: %w after %d of %d bytes", err, got, n))
		}
	}
	d := time.Since(start)
	if got != n {
		return 0, fmt.Errorf("download: got %d bytes, want %d", got, n)
	}
	return d, nil
}

// parallelDownload runs len(bufs) downloads of each bytes at once and
// returns the wall time until the last one finished.
func parallelDownload(ctx context.Context, addr string, each int64, bufs [][]byte) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(bufs))
	start := time.Now()
	for i := range bufs {
		wg.Go(func() {
			if _, err := download(ctx, addr, each, bufs[i]); err != nil {
				errs[i] = err
				cancel()
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	return d, errors.Join(errs...)
}

// echoConn opens an echo connection and waits for the target's first byte.
func echoConn(ctx context.Context, addr string) (net.Conn, func() bool, error) {
	c, stop, err := dial(ctx, addr)
	if err != nil {
		return nil, nil, err
	}
	var b [1]byte
	b[0] = cmdEcho
	if _, err := c.Write(b[:]); err != nil {
		stop()
		c.Close()
		return nil, nil, ctxErr(ctx, err)
	}
	if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != cmdEcho {
		stop()
		c.Close()
		if err == nil {
			err = fmt.Errorf("echo: got %q, want %q", b[0], cmdEcho)
		}
		return nil, nil, ctxErr(ctx, err)
	}
	return c, stop, nil
}

// latency holds round-trip percentiles.
type latency struct{ p50, p99 time.Duration }

// echoLatency does warm round trips of a 64-byte message, then n timed
// ones, on one connection, and returns the percentiles of the timed ones.
func echoLatency(ctx context.Context, addr string, warm, n int) (latency, error) {
	c, stop, err := echoConn(ctx, addr)
	if err != nil {
		return latency{}, err
	}
	defer stop()
	defer c.Close()
	var msg, got [64]byte
	for i := range msg {
		msg[i] = byte(i)
	}
	rtts := make([]time.Duration, 0, n)
	for i := range warm + n {
		start := time.Now()
		if _, err := c.Write(msg[:]); err != nil {
			return latency{}, ctxErr(ctx, err)
		}
		if _, err := io.ReadFull(c, got[:]); err != nil {
			return latency{}, ctxErr(ctx, err)
		}
		if i >= warm {
			rtts = append(rtts, time.Since(start))
		}
	}
	if got != msg {
		return latency{}, errors.New("echo: the reply differs from the request")
	}
	slices.Sort(rtts)
	return latency{p50: percentile(rtts, 50), p99: percentile(rtts, 99)}, nil
}

// percentile returns the p-th percentile (nearest rank) of sorted d.
func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := (len(d)*p + 99) / 100
	return d[max(i-1, 0)]
}

// loadedLatency measures echoLatency while a bulk download runs on
// another connection to the same address. It returns the latency and the
// bulk download's throughput (bytes/s) during the measurement.
func loadedLatency(ctx context.Context, addr string, warm, n int, buf []byte) (latency, float64, error) {
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c, stop, err := dial(bctx, addr)
	if err != nil {
		return latency{}, 0, err
	}
	defer stop()
	defer c.Close()
	var req [9]byte
	req[0] = cmdDownload
	binary.BigEndian.PutUint64(req[1:], 1<<50) // ended by closing the connection
	if _, err := c.Write(req[:]); err != nil {
		return latency{}, 0, err
	}
	var got atomic.Int64
	started := make(chan struct{})
	var bulkErr error
	bulkDone := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(bulkDone)
		signalled := false
		for {
			k, err := c.Read(buf)
			if got.Add(int64(k)) >= 4<<20 && !signalled {
				close(started)
				signalled = true
			}
			if err != nil {
				if !signalled {
					bulkErr = ctxErr(bctx, fmt.Errorf("bulk download: %w after %d bytes", err, got.Load()))
					close(started)
				}
				return
			}
		}
	})
	defer wg.Wait()
	defer c.Close() // ends the bulk reader
	select {
	case <-started:
	case <-ctx.Done():
		return latency{}, 0, context.Cause(ctx)
	}
	if bulkErr != nil {
		return latency{}, 0, bulkErr
	}
	before, t0 := got.Load(), time.Now()
	lat, err := echoLatency(ctx, addr, warm, n)
	rate := float64(got.Load()-before) / time.Since(t0).Seconds()
	if err != nil {
		return latency{}, 0, err
	}
	select {
	case <-bulkDone:
		return latency{}, 0, errors.New("the bulk download ended during the latency measurement; the figures would not be under load")
	default:
	}
	return lat, rate, nil
}

// connRate opens connections one after another — connect, one-byte echo,
// close — for at most n connections or d, whichever comes first, and
// returns connections per second.
func connRate(ctx context.Context, addr string, n int, d time.Duration) (float64, error) {
	start := time.Now()
	deadline := start.Add(d)
	count := 0
	for count < n && time.Now().Before(deadline) {
		c, stop, err := echoConn(ctx, addr)
		if err != nil {
			return 0, fmt.Errorf("connection %d: %w", count+1, err)
		}
		stop()
		c.Close()
		count++
	}
	return float64(count) / time.Since(start).Seconds(), nil
}

// openIdle opens n echo connections to addr one after another, each
// confirmed end to end by the echo of its first byte. The caller closes
// them (also on error: the ones opened so far are returned).
func openIdle(ctx context.Context, addr string, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, 0, n)
	for range n {
		c, stop, err := echoConn(ctx, addr)
		if err != nil {
			return conns, fmt.Errorf("idle connection %d of %d: %w", len(conns)+1, n, err)
		}
		stop()
		conns = append(conns, c)
	}
	return conns, nil
}
