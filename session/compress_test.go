package session

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/braidmux/braid/frame"
)

var zstdConfig = &Config{Compression: CompressionZstd}

// jsonLogs returns n bytes of JSON-lines log records, like a service's
// access log: the data compression is meant for.
func jsonLogs(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	levels := []string{"info", "info", "info", "warn", "error", "debug"}
	paths := []string{"/api/v1/items", "/api/v1/users", "/healthz", "/api/v2/orders", "/static/app.js"}
	msgs := []string{"request served", "cache miss", "upstream timeout", "user logged in", "order created"}
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"ts":"2026-11-22T04:%02d:%02d.%03dZ","level":%q,"msg":%q,"path":"%s/%d","status":%d,"latency_ms":%.1f,"user":"user-%d","trace_id":"%016x","bytes":%d}`+"\n",
			(i/60000)%60, (i/1000)%60, i%1000, levels[r.IntN(len(levels))], msgs[r.IntN(len(msgs))],
			paths[r.IntN(len(paths))], r.IntN(100000), []int{200, 200, 200, 404, 500}[r.IntN(5)],
			r.Float64()*200, r.IntN(5000), r.Uint64(), r.IntN(1<<20))
	}
	return b.Bytes()[:n]
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// transfer sends data over one stream of a fresh session pair (writes of
// chunk bytes) and returns the bytes the client's session put on the
// wire, after checking the data arrived intact.
func transfer(t testing.TB, ccfg, scfg *Config, data []byte, chunk int) uint64 {
	t.Helper()
	c, s := sessionPair(t, ccfg, scfg)
	st := open(t, c)
	got := make(chan []byte, 1)
	go func() {
		rs, err := s.AcceptStream(context.Background())
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(rs)
		got <- b
	}()
	before := c.Stats().BytesSent
	for off := 0; off < len(data); off += chunk {
		if _, err := st.Write(data[off:min(off+chunk, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	st.CloseWrite()
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("received %d bytes, not the %d sent", len(b), len(data))
	}
	return c.Stats().BytesSent - before
}

func TestCompressionNegotiation(t *testing.T) {
	for _, tc := range []struct {
		name       string
		ccfg, scfg *Config
		want       Compression
	}{
		{"both", zstdConfig, zstdConfig, CompressionZstd},
		{"client only", zstdConfig, nil, CompressionNone},
		{"server only", nil, zstdConfig, CompressionNone},
		{"neither", nil, nil, CompressionNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := sessionPair(t, tc.ccfg, tc.scfg)
			if c.Compression() != tc.want || s.Compression() != tc.want {
				t.Fatalf("client %v server %v, want %v", c.Compression(), s.Compression(), tc.want)
			}
			if c.Stats().Compression != tc.want {
				t.Fatalf("Stats().Compression = %v", c.Stats().Compression)
			}
		})
	}
}

// TestCompressionWireBytes: the acceptance figures for 16 MiB
// through one stream, counted under the session (framing included).
func TestCompressionWireBytes(t *testing.T) {
	const size = 16 << 20
	if testing.Short() {
		t.Skip("16 MiB transfers")
	}
	logs := jsonLogs(1, size)
	random := randomBytes(2, size)
	for _, tc := range []struct {
		name     string
		cfg      *Config
		data     []byte
		maxRatio float64
	}{
		{"json zstd", zstdConfig, logs, 0.25},
		{"random zstd", zstdConfig, random, 1.02},
		{"json off", nil, logs, 1.03},
		{"random off", nil, random, 1.03},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wire := transfer(t, tc.cfg, tc.cfg, tc.data, 32<<10)
			ratio := float64(wire) / float64(len(tc.data))
			t.Logf("%s: %d payload bytes, %d on the wire: %.2f%%", tc.name, len(tc.data), wire, 100*ratio)
			if ratio > tc.maxRatio {
				t.Fatalf("wire/payload = %.4f, want <= %.2f", ratio, tc.maxRatio)
			}
		})
	}
}

// TestCompressionIntegrity: every write size, compressible and not,
// arrives intact with compression on.
func TestCompressionIntegrity(t *testing.T) {
	data := append(jsonLogs(3, 1<<20), randomBytes(4, 1<<20)...)
	data = append(data, jsonLogs(5, 300<<10)...)
	for _, chunk := range []int{1, 100, 511, 512, 4096, 64 << 10, 1 << 20, len(data)} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			n := len(data)
			if chunk < 512 {
				n = 64 << 10 // keep tiny writes quick
			}
			transfer(t, zstdConfig, zstdConfig, data[:n], chunk)
		})
	}
	// Small windows: a compressed chunk must still find the credit for
	// its whole uncompressed size.
	small := &Config{Compression: CompressionZstd, InitialStreamWindow: 4 << 10, MaxStreamWindow: 8 << 10, MaxSessionWindow: 16 << 10}
	transfer(t, small, small, data[:512<<10], 100<<10)
}

func zstdHello() *frame.Settings {
	h := fakeHello()
	h.Compression = []frame.Compression{frame.CompressionZstd}
	return &h
}

// compressionHostileCases are peers that abuse compression; each must end
// the session with COMPRESSION_ERROR (run by TestHostilePeer).
func compressionHostileCases() []hostileCase {
	enc, _ := zstd.NewWriter(nil)
	dec, _ := zstd.NewReader(nil)
	bomb := enc.EncodeAll(make([]byte, 1<<20), nil) // declares 1 MiB > 64 KiB
	// A valid zstd frame that does not declare its content size: magic,
	// frame header descriptor 0 (no FCS, not single-segment), window
	// descriptor 0, one last raw block of 100 bytes.
	noFCS := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00, (100<<3 | 1) & 0xff, (100<<3 | 1) >> 8, 0}
	noFCS = append(noFCS, make([]byte, 100)...)
	if out, err := dec.DecodeAll(noFCS, nil); err != nil || len(out) != 100 {
		panic(fmt.Sprintf("hand-made zstd frame does not decode: %v", err))
	}
	w := func(fp *fakePeer, fs ...frame.Frame) { fp.write(fs...) }
	cfg := &Config{Compression: CompressionZstd, MaxFrameSize: 64 << 10}
	return []hostileCase{
		{name: "CompressedBomb", cfg: cfg, hello: zstdHello(), code: frame.CompressionError,
			attack: func(t *testing.T, fp *fakePeer) { w(fp, syn(3, bomb, frame.FlagCompressed)) }},
		{name: "CompressedNoContentSize", cfg: cfg, hello: zstdHello(), code: frame.CompressionError,
			attack: func(t *testing.T, fp *fakePeer) { w(fp, syn(3, noFCS, frame.FlagCompressed)) }},
		{name: "CompressedGarbage", cfg: cfg, hello: zstdHello(), code: frame.CompressionError,
			attack: func(t *testing.T, fp *fakePeer) { w(fp, syn(3, []byte("not zstd at all"), frame.FlagCompressed)) }},
	}
}

// TestDecompressionBombMemory: many frames that each claim or expand to
// far more than the frame limit cost no memory.
func TestDecompressionBombMemory(t *testing.T) {
	enc, _ := zstd.NewWriter(nil)
	huge := enc.EncodeAll(make([]byte, 64<<20), nil) // 64 MiB of zeros in a few KiB
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 200 {
		if b, err := decompress(huge, 64<<10); err == nil {
			frame.PutBuffer(b)
			t.Fatal("a frame declaring 64 MiB was decoded under a 64 KiB limit")
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
		t.Fatalf("refusing 200 bombs allocated %d bytes", grew)
	}
	// Within the limit it decodes exactly.
	small := enc.EncodeAll(jsonLogs(9, 60<<10), nil)
	b, err := decompress(small, 64<<10)
	if err != nil || !bytes.Equal(*b, jsonLogs(9, 60<<10)) {
		t.Fatalf("decompress of a valid frame: %v", err)
	}
	frame.PutBuffer(b)
}

// FuzzDecompress: hostile compressed payloads never panic, and what
// decodes stays within the limit.
func FuzzDecompress(f *testing.F) {
	enc, _ := zstd.NewWriter(nil)
	f.Add(enc.EncodeAll(jsonLogs(1, 5000), nil))
	f.Add(enc.EncodeAll(make([]byte, 100<<10), nil))
	f.Add(enc.EncodeAll(randomBytes(1, 3000), nil))
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd})
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		const limit = 64 << 10
		b, err := decompress(payload, limit)
		if err != nil {
			return
		}
		if len(*b) > limit {
			t.Fatalf("decoded %d bytes, limit %d", len(*b), limit)
		}
		frame.PutBuffer(b)
	})
}

// BenchmarkCompressionDesign measures the choice SPEC.md §10.3 made: one
// independent zstd frame per DATA frame ("frame"), against one zstd
// stream (a shared context) across all of a stream's data ("context"),
// on JSON-lines logs cut into chunks of the given size. It reports the
// compressed size as a percentage of the input, and the encoder state a
// context would keep per stream.
func BenchmarkCompressionDesign(b *testing.B) {
	data := jsonLogs(10, 16<<20)
	for _, chunk := range []int{4 << 10, 64<<10 - frame.MaxDataOverhead} {
		b.Run(fmt.Sprintf("frame/chunk=%d", chunk), func(b *testing.B) {
			enc, err := encoderFor(CompressionFastest)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			var out int
			buf := make([]byte, 0, chunk+chunk/8)
			for range b.N {
				out = 0
				for off := 0; off < len(data); off += chunk {
					out += len(enc.EncodeAll(data[off:min(off+chunk, len(data))], buf[:0]))
				}
			}
			b.ReportMetric(100*float64(out)/float64(len(data)), "%size")
		})
		b.Run(fmt.Sprintf("context/chunk=%d", chunk), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			var out int
			var heap int64
			for range b.N {
				var w countWriter
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				zw, err := zstd.NewWriter(&w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false))
				if err != nil {
					b.Fatal(err)
				}
				for off := 0; off < len(data); off += chunk {
					zw.Write(data[off:min(off+chunk, len(data))])
					zw.Flush() // each DATA frame must be decodable on arrival
				}
				runtime.ReadMemStats(&after)
				heap = int64(after.HeapAlloc) - int64(before.HeapAlloc)
				zw.Close()
				out = w.n
			}
			b.ReportMetric(100*float64(out)/float64(len(data)), "%size")
			b.ReportMetric(float64(heap), "B-state/stream")
		})
	}
}

type countWriter struct{ n int }

func (w *countWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
