package session

import (
	"net"
	"slices"

	"github.com/braidmux/braid/frame"
)

// replayBuf holds the bytes of this side's frame sequence that the peer
// has not acknowledged receiving (SPEC.md §16): what a resumed connection
// sends again. It is a list of pooled chunks. Only the holder of
// Session.connBusy appends to it or reads it; trim runs with s.mu held
// and the connection free, so the two never overlap.
type replayBuf struct {
	chunks []*[]byte   // each of capacity replayChunk, filled in order
	head   int         // bytes of chunks[0] already trimmed
	n      int         // bytes held
	spare  []*[]byte   // trimmed chunks kept for reuse while still in cache
	bufs   net.Buffers // tail's result, reused
}

// maxSpare is how many trimmed chunks a replay buffer keeps for reuse;
// more go back to the shared pool.
const maxSpare = 4

// replayChunk is the capacity of one chunk of a replay buffer.
const replayChunk = 64 << 10

// append copies p to the end of the buffer.
func (b *replayBuf) append(p []byte) {
	b.n += len(p)
	for len(p) > 0 {
		if len(b.chunks) == 0 || len(*b.chunks[len(b.chunks)-1]) == replayChunk {
			var c *[]byte
			if k := len(b.spare); k > 0 {
				c, b.spare = b.spare[k-1], b.spare[:k-1]
			} else {
				c = frame.GetBuffer(replayChunk)
			}
			*c = (*c)[:0]
			b.chunks = append(b.chunks, c)
		}
		last := b.chunks[len(b.chunks)-1]
		k := min(len(p), replayChunk-len(*last))
		*last = append(*last, p[:k]...)
		p = p[k:]
	}
}

// trim drops the first n bytes (n ≤ b.n), returning whole chunks to the
// pool.
func (b *replayBuf) trim(n int) {
	b.n -= n
	n += b.head
	k := 0
	for k < len(b.chunks) && n >= len(*b.chunks[k]) {
		n -= len(*b.chunks[k])
		if len(b.spare) < maxSpare {
			b.spare = append(b.spare, b.chunks[k])
		} else {
			frame.PutBuffer(b.chunks[k])
		}
		k++
	}
	if k > 0 { // keep the slice's front, so appending does not reallocate
		m := copy(b.chunks, b.chunks[k:])
		clear(b.chunks[m:])
		b.chunks = b.chunks[:m]
	}
	b.head = n
}

// tail returns the last n bytes held (n ≤ b.n), as slices of the chunks,
// in a slice valid until the next call.
func (b *replayBuf) tail(n int) net.Buffers {
	bufs := b.bufs[:0]
	for i := len(b.chunks) - 1; i >= 0 && n > 0; i-- {
		p := *b.chunks[i]
		if i == 0 {
			p = p[b.head:]
		}
		k := min(n, len(p))
		bufs = append(bufs, p[len(p)-k:])
		n -= k
	}
	slices.Reverse(bufs)
	b.bufs = bufs
	return bufs
}

// buffers returns the bytes held, as slices of the chunks, for one
// vectored write.
func (b *replayBuf) buffers() net.Buffers {
	var bufs net.Buffers
	for i, c := range b.chunks {
		p := *c
		if i == 0 {
			p = p[b.head:]
		}
		if len(p) > 0 {
			bufs = append(bufs, p)
		}
	}
	return bufs
}
