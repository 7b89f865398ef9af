package session

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/braidmux/braid/frame"
)

// Compression design (numbers in BENCHMARKS.md): every compressed DATA
// frame is one independent zstd frame. There is no context shared between
// frames, so frames of different streams (and of one stream) compress on
// the goroutines of their Writers in parallel, decode in any order, and a
// lost context can never stall a stream; the cost is ratio on small
// frames, which braid does not compress anyway (minCompress). Flow
// control counts uncompressed bytes, so a receiver's memory stays bounded
// by its windows whatever the compression ratio.

// minCompress is the smallest chunk worth compressing: below it zstd's
// frame overhead eats most of the gain.
const minCompress = 512

// probeSize is the sample compressChunk tries before a large chunk.
const probeSize = 4 << 10

// maxSkip bounds how many chunks a stream sends raw after a chunk that
// did not shrink (incompressible data costs little CPU that way).
const maxSkip = 64

// One encoder per level and one decoder for the process: zstd encoders
// and decoders are safe for concurrent EncodeAll/DecodeAll, keep their
// own pools of per-goroutine state (at most GOMAXPROCS of each), and are
// expensive to build, so sessions share them.
var (
	encoders   [5]*zstd.Encoder
	encoderErr [5]error
	encOnce    [5]sync.Once

	decoder    *zstd.Decoder
	decoderErr error
	decOnce    sync.Once
)

// CompressionLevel values for Config.CompressionLevel.
const (
	CompressionFastest = 1 // zstd.SpeedFastest; the default
	CompressionDefault = 2 // zstd.SpeedDefault
	CompressionBetter  = 3 // zstd.SpeedBetterCompression
	CompressionBest    = 4 // zstd.SpeedBestCompression
)

// encoderWindow is the zstd window: no chunk is larger than a frame, and
// a small window keeps each encoder state small (a few hundred KiB).
const encoderWindow = 1 << 18

func encoderFor(level int) (*zstd.Encoder, error) {
	encOnce[level].Do(func() {
		encoders[level], encoderErr[level] = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.EncoderLevel(level)),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
			zstd.WithEncoderCRC(false), // TCP/TLS already protect the bytes
			zstd.WithWindowSize(encoderWindow),
			zstd.WithLowerEncoderMem(true))
	})
	return encoders[level], encoderErr[level]
}

func getDecoder() (*zstd.Decoder, error) {
	decOnce.Do(func() {
		decoder, decoderErr = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
			zstd.WithDecoderMaxMemory(frame.MaxMaxFrameSize),
			zstd.WithDecoderMaxWindow(frame.MaxMaxFrameSize),
			zstd.WithDecodeAllCapLimit(true))
	})
	return decoder, decoderErr
}

// compressChunk compresses p into a pooled buffer, or returns nil if the
// result would not be at least 1/16 smaller than p. Safe for concurrent
// use.
func compressChunk(enc *zstd.Encoder, p []byte) *[]byte {
	if len(p) >= 4*probeSize {
		// Probe a sample first: data that is already compressed or
		// random costs an eighth or less of a full attempt.
		buf := frame.GetBuffer(probeSize)
		out := enc.EncodeAll(p[:probeSize], (*buf)[:0])
		shrank := len(out) <= probeSize-probeSize/16 && cap(out) == cap(*buf)
		frame.PutBuffer(buf)
		if !shrank {
			return nil
		}
	}
	buf := frame.GetBuffer(len(p))
	limit := len(p) - len(p)/16
	out := enc.EncodeAll(p, (*buf)[:0])
	if len(out) > limit || cap(out) != cap(*buf) { // did not shrink, or outgrew buf
		frame.PutBuffer(buf)
		return nil
	}
	*buf = out
	return buf
}

var errCompressed = errors.New("braid: bad compressed payload")

// decompress decodes a COMPRESSED payload that may decode to at most
// limit bytes into a pooled buffer. The payload must be one zstd frame
// that declares its content size (SPEC.md, compression); a declared size
// above limit is refused before any decoding, and decoding is capped at
// the declared size, so a decompression bomb costs no more than a frame
// of limit bytes. Safe for concurrent use.
func decompress(payload []byte, limit int) (*[]byte, error) {
	var h zstd.Header
	if err := h.Decode(payload); err != nil {
		return nil, fmt.Errorf("%w: %v", errCompressed, err)
	}
	switch {
	case h.Skippable:
		return nil, fmt.Errorf("%w: skippable zstd frame", errCompressed)
	case h.DictionaryID != 0:
		return nil, fmt.Errorf("%w: zstd dictionaries are not used", errCompressed)
	case !h.HasFCS:
		return nil, fmt.Errorf("%w: zstd frame does not declare its content size", errCompressed)
	case h.FrameContentSize > uint64(limit):
		return nil, fmt.Errorf("%w: declares %d bytes, more than the %d-byte frame limit", errCompressed, h.FrameContentSize, limit)
	}
	if end, err := zstdFrameEnd(payload, h.HeaderSize, h.HasCheckSum); err != nil {
		return nil, fmt.Errorf("%w: %v", errCompressed, err)
	} else if end != len(payload) {
		return nil, fmt.Errorf("%w: %d bytes after the zstd frame (a payload is exactly one frame)", errCompressed, len(payload)-end)
	}
	dec, err := getDecoder()
	if err != nil {
		return nil, err
	}
	n := int(h.FrameContentSize)
	buf := payloadBuffer(n)
	out, err := dec.DecodeAll(payload, (*buf)[:0:n])
	if err != nil || len(out) != n {
		frame.PutBuffer(buf)
		if err == nil {
			err = fmt.Errorf("decoded %d bytes, frame declared %d", len(out), n)
		}
		return nil, fmt.Errorf("%w: %v", errCompressed, err)
	}
	*buf = (*buf)[:n]
	return buf, nil
}

// zstdFrameEnd returns where the zstd frame that starts payload ends: its
// header (headerSize bytes), then blocks, each a 3-byte header (bit 0:
// last block; bits 1-2: type; bits 3-23: size) and its content, then a
// 4-byte checksum if the header says so (RFC 8878 §3.1.1). It reads only
// block headers.
func zstdFrameEnd(payload []byte, headerSize int, checksum bool) (int, error) {
	pos := headerSize
	for {
		if pos+3 > len(payload) {
			return 0, errors.New("zstd frame truncated")
		}
		bh := uint32(payload[pos]) | uint32(payload[pos+1])<<8 | uint32(payload[pos+2])<<16
		pos += 3
		size := int(bh >> 3)
		switch (bh >> 1) & 3 {
		case 0, 2: // raw, compressed: size bytes follow
			pos += size
		case 1: // RLE: one byte, repeated size times
			pos++
		default:
			return 0, errors.New("reserved zstd block type")
		}
		if pos > len(payload) {
			return 0, errors.New("zstd frame truncated")
		}
		if bh&1 != 0 {
			break
		}
	}
	if checksum {
		pos += 4
		if pos > len(payload) {
			return 0, errors.New("zstd frame truncated")
		}
	}
	return pos, nil
}
