package mux_test

import (
	"bytes"
	"fmt"
	"io"

	"github.com/braidmux/braid/frame"
	"github.com/braidmux/braid/mux"
)

// conn stands for the caller's own stream type, which each mux.Stream
// points back to through Owner.
type conn struct{ name string }

// A write loop's view of the scheduler: queue data and control frames,
// fill a batch, write it with one vectored write, and use Sent to update
// the books. Here the "connection" is a bytes.Buffer, decoded again with
// frame.Reader to show what went on the wire.
func Example() {
	s := mux.NewScheduler[*conn](8) // tiny quantum to show the interleaving
	a := &mux.Stream[*conn]{ID: 1, Owner: &conn{name: "a"}}
	c := &mux.Stream[*conn]{ID: 3, Weight: 2, Owner: &conn{name: "c"}}
	if err := s.AddCredit(a, 1<<20); err != nil {
		panic(err)
	}
	if err := s.AddCredit(c, 12); err != nil { // c may send only 12 bytes for now
		panic(err)
	}
	// The peer may not grant more than 2^31-1 bytes in all.
	fmt.Println(s.AddCredit(a, mux.MaxCredit))

	s.Enqueue(a, []byte("hello, world"), true) // FIN with the last byte
	s.Enqueue(c, []byte("abcdefghijklmnop"), false)
	s.PushControl(&frame.Frame{Type: frame.Ping, Opaque: 42})

	var b mux.Batch[*conn]
	used := s.Fill(&b, 4, 1<<20, 64<<10) // frames of at most 4 bytes
	fmt.Printf("%d frames, %d payload bytes\n", b.Frames(), used)

	var wire bytes.Buffer
	bufs := b.Buffers()
	if _, err := bufs.WriteTo(&wire); err != nil {
		panic(err)
	}
	for _, e := range b.Sent() {
		fmt.Printf("sent %s stream=%d n=%d fin=%v\n", e.Stream.Owner.name, e.Stream.ID, e.N, e.Fin)
	}
	b.Reset()

	r := frame.NewReader(&wire, 1<<20)
	for {
		f, err := r.ReadFrame()
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
		fmt.Printf("%v %q\n", f, f.Payload)
	}
	fmt.Printf("c: pending=%d credit=%d queued=%v\n", c.Pending(), c.Credit(), c.Queued())
	fmt.Println("more to send:", s.HasWork(1<<20))
	// Output:
	// mux: stream credit would exceed 2^31-1
	// 7 frames, 24 payload bytes
	// sent a stream=1 n=4 fin=false
	// sent a stream=1 n=4 fin=false
	// sent c stream=3 n=4 fin=false
	// sent c stream=3 n=4 fin=false
	// sent c stream=3 n=4 fin=false
	// sent a stream=1 n=4 fin=true
	// PING flags=0 opaque=0x2a ""
	// DATA stream=1 flags=0 len=4 "hell"
	// DATA stream=1 flags=0 len=4 "o, w"
	// DATA stream=3 flags=0 len=4 "abcd"
	// DATA stream=3 flags=0 len=4 "efgh"
	// DATA stream=3 flags=0 len=4 "ijkl"
	// DATA stream=1 flags=FIN len=4 "orld"
	// c: pending=4 credit=0 queued=true
	// more to send: false
}
