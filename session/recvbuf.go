package session

import "github.com/braidmux/braid/frame"

// chunk is a run of received bytes, (*owner)[off:end], in a pooled buffer.
type chunk struct {
	owner    *[]byte
	off, end int
}

// recvBuf is a stream's queue of received, unread bytes: a FIFO of pooled
// buffers. Large payloads are kept in the buffer the reader read them
// into (no copy); small ones are copied into the spare room of the last
// buffer.
// Capacity held is at most about twice the bytes buffered plus one small
// buffer. Guarded by the session lock.
type recvBuf struct {
	chunks []chunk
	head   int32
	n      int32 // at most a stream window, below 2^31
}

// smallPayload is the size below which payloads are copied rather than
// kept in their frame buffer, so tiny frames cannot pin big buffers.
const smallPayload = 2048

func (r *recvBuf) len() int { return int(r.n) }

// push appends a copy of payload, which the caller keeps, into the spare
// room of the last buffer if it fits, else into a new buffer: one of
// exactly its size for a large payload, one with some room to spare for a
// small one. Memory held stays within about twice the bytes buffered plus
// 512 bytes, however the peer pads or sizes its frames.
func (r *recvBuf) push(payload []byte) {
	n := len(payload)
	if n == 0 {
		return
	}
	r.n += int32(n)
	if t := r.tail(); t != nil && t.end+n <= cap(*t.owner) {
		*t.owner = (*t.owner)[:cap(*t.owner)]
		copy((*t.owner)[t.end:], payload)
		t.end += n
		return
	}
	var owner *[]byte
	if n >= smallPayload {
		owner = payloadBuffer(n) // no spare room to waste
	} else {
		// Room for more small payloads, growing with what is buffered,
		// so the spare stays below about the bytes held (and 512).
		owner = frame.GetBuffer(max(n, min(16<<10, max(512, int(r.n)))))
	}
	*owner = (*owner)[:cap(*owner)]
	copy(*owner, payload)
	r.chunks = append(r.chunks, chunk{owner: owner, end: n})
}

// pushOwned appends a whole pooled buffer, which the recvBuf now owns.
func (r *recvBuf) pushOwned(owner *[]byte) {
	n := len(*owner)
	if n == 0 {
		frame.PutBuffer(owner)
		return
	}
	r.n += int32(n)
	r.chunks = append(r.chunks, chunk{owner: owner, end: n})
}

func (r *recvBuf) tail() *chunk {
	if len(r.chunks) == int(r.head) {
		return nil
	}
	return &r.chunks[len(r.chunks)-1]
}

// read copies buffered bytes into p and returns how many.
func (r *recvBuf) read(p []byte) int {
	total := 0
	for len(p) > 0 && int(r.head) < len(r.chunks) {
		c := &r.chunks[r.head]
		k := copy(p, (*c.owner)[c.off:c.end])
		c.off += k
		p = p[k:]
		total += k
		if c.off == c.end {
			frame.PutBuffer(c.owner)
			*c = chunk{}
			r.head++
		}
	}
	r.n -= int32(total)
	r.compact()
	return total
}

// discard drops everything and returns how many bytes were dropped.
func (r *recvBuf) discard() int {
	for i := r.head; int(i) < len(r.chunks); i++ {
		frame.PutBuffer(r.chunks[i].owner)
		r.chunks[i] = chunk{}
	}
	n := int(r.n)
	r.n = 0
	r.head = 0
	r.chunks = r.chunks[:0]
	return n
}

func (r *recvBuf) compact() {
	if int(r.head) == len(r.chunks) {
		r.head = 0
		r.chunks = r.chunks[:0]
		if cap(r.chunks) > 64 {
			r.chunks = nil
		}
	}
}
