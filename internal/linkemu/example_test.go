package linkemu_test

import (
	"fmt"
	"io"
	"log"
	"time"

	"github.com/braidmux/braid/internal/linkemu"
)

// A pair of TCP connections across a 50 ms, 1 Gbit/s link.
func ExamplePipe() {
	client, server, cleanup, err := linkemu.Pipe(linkemu.Config{
		RTT:  50 * time.Millisecond,
		Rate: 1e9 / 8, // bytes per second
	})
	if err != nil {
		log.Fatal(err)
	}
	defer cleanup()

	start := time.Now()
	go func() {
		// Echo one message back.
		buf := make([]byte, 5)
		io.ReadFull(server, buf)
		server.Write(buf)
	}()
	client.Write([]byte("hello"))
	reply := make([]byte, 5)
	if _, err := io.ReadFull(client, reply); err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(reply), time.Since(start) >= 50*time.Millisecond)
	// Output: hello true
}
