package frame_test

import (
	"bytes"
	"fmt"
	"io"
	"net"

	"github.com/braidmux/braid/frame"
)

// Encode a DATA frame as a small header followed by the caller's payload
// (no copy: net.Buffers hands both slices to the writer), then read it
// back.
func Example() {
	payload := []byte("hello, braid")

	var conn bytes.Buffer // stands in for a net.Conn
	hdr := frame.AppendDataHeader(make([]byte, 0, frame.MaxDataHeader), 1, frame.FlagSYN|frame.FlagFIN, len(payload))
	bufs := net.Buffers{hdr, payload}
	if _, err := bufs.WriteTo(&conn); err != nil {
		panic(err)
	}
	fmt.Printf("wire: % x\n", conn.Bytes()[:len(hdr)])

	r := frame.NewReader(&conn, frame.MinMaxFrameSize)
	defer r.Close()
	f, err := r.ReadFrame()
	if err != nil {
		panic(err)
	}
	fmt.Println(f)
	fmt.Printf("payload: %s\n", f.Payload)

	_, err = r.ReadFrame()
	fmt.Println("then:", err == io.EOF)
	// Output:
	// wire: 12 10 01 18 03 7a 0c
	// DATA stream=1 flags=SYN|FIN len=12
	// payload: hello, braid
	// then: true
}
