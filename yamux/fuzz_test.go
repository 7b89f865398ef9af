package yamux_test

import (
	"net"
	"testing"
	"time"

	"github.com/braidmux/braid/yamux"
)

// FuzzServerFirstBytes feeds arbitrary bytes to a Server (protocol
// detection, then braid's or yamux's frame parser) and checks that it
// neither panics nor hangs: Accept returns within the handshake timeout
// plus a margin once the peer goes quiet, and Close cleans up.
func FuzzServerFirstBytes(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0})                           // yamux PING
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 3, 'a', 'b', 'c'})            // yamux SYN with data
	f.Add([]byte{0x0a, 0x08, 0x01, 0x42, 0x06, 0x0a, 0x04, 'b', 'r', 'a', 'd'}) // braid-like HELLO
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		c1, c2 := net.Pipe()
		cfg := yamux.DefaultConfig()
		cfg.LogOutput = discard{}
		cfg.HandshakeTimeout = 100 * time.Millisecond
		cfg.EnableKeepAlive = false
		s, err := yamux.Server(c2, cfg)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			// Drain what the server writes so it never blocks on the pipe.
			buf := make([]byte, 4096)
			for {
				if _, err := c1.Read(buf); err != nil {
					return
				}
			}
		}()
		c1.SetWriteDeadline(time.Now().Add(time.Second))
		c1.Write(data)
		acc := make(chan struct{})
		go func() {
			defer close(acc)
			for {
				st, err := s.Accept()
				if err != nil {
					return
				}
				st.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
				st.Read(make([]byte, 64))
				st.Close()
			}
		}()
		c1.Close()
		select {
		case <-acc:
		case <-time.After(5 * time.Second):
			t.Fatal("Accept still blocked 5 s after the peer closed the connection")
		}
		s.Close()
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
