package session

import (
	"net"

	"github.com/braidmux/braid/frame"
)

// replayBuf holds the bytes of this side's frame sequence that the peer
// has not acknowledged receiving (SPEC.md §16): what a resumed connection
// sends again. It is a list of pooled chunks.
//
// Its bookkeeping (reserve, trim, buffers) runs with s.mu held.
// The bytes themselves are written and read without it: a batch's holder
// copies into the regions reserve gave it, and a connection write reads
// regions already copied. Neither overlaps trim, which only recycles
// chunks the peer has acknowledged whole (so never a region still being
// copied, which the peer cannot have) and, while a write is running, only
// chunks wholly before what it writes (trimOut).
type replayBuf struct {
	chunks []*[]byte // each of capacity replayChunk, filled in order
	head   int       // bytes of chunks[0] already trimmed
	n      int       // bytes held
	spare  []*[]byte // trimmed chunks kept for reuse while still in cache
}

// maxSpare is how many trimmed chunks a replay buffer keeps for reuse;
// more go back to the shared pool.
const maxSpare = 4

// replayChunk is the capacity of one chunk of a replay buffer.
const replayChunk = 64 << 10

// reserve extends the buffer by n bytes whose contents the caller writes
// afterwards (copyBufs), and appends the regions that hold them, in
// order, to regs.
func (b *replayBuf) reserve(n int, regs net.Buffers) net.Buffers {
	b.n += n
	for n > 0 {
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
		at := len(*last)
		k := min(n, replayChunk-at)
		*last = (*last)[:at+k]
		regs = append(regs, (*last)[at:at+k])
		n -= k
	}
	return regs
}

// copyBufs copies the bytes of src, in order, into the regions dst, which
// hold exactly as many.
func copyBufs(dst, src net.Buffers) {
	var d []byte
	for _, p := range src {
		for len(p) > 0 {
			if len(d) == 0 {
				d, dst = dst[0], dst[1:]
			}
			k := copy(d, p)
			d, p = d[k:], p[k:]
		}
	}
}

// appendRegions appends regions to bufs, joining a region to the one
// before it when it continues it in the same chunk, so that a vectored
// write gets few, long slices.
func appendRegions(bufs net.Buffers, regions net.Buffers) net.Buffers {
	for _, p := range regions {
		if k := len(bufs); k > 0 {
			last := bufs[k-1]
			if len(last) < cap(last) && &last[:len(last)+1][len(last)] == &p[0] {
				bufs[k-1] = last[:len(last)+len(p)]
				continue
			}
		}
		bufs = append(bufs, p)
	}
	return bufs
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

// dropSpare returns the spare chunks to the shared pool.
func (b *replayBuf) dropSpare() {
	for _, c := range b.spare {
		frame.PutBuffer(c)
	}
	clear(b.spare)
	b.spare = b.spare[:0]
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
