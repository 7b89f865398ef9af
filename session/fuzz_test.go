package session

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/braidmux/braid/frame"
)

// FuzzSession feeds arbitrary bytes, after a valid HELLO, to a server
// session with compression on, while the session's application side
// accepts and reads every stream. The session must never panic or hang:
// it ends (with an error or cleanly) once its connection is closed, and
// every call on it returns.
func FuzzSession(f *testing.F) {
	enc, _ := zstd.NewWriter(nil)
	seed := func(fs ...frame.Frame) []byte {
		var b []byte
		for i := range fs {
			b = fs[i].Append(b)
		}
		return b
	}
	f.Add(seed(syn(1, []byte("hello"), frame.FlagFIN)))
	f.Add(seed(syn(1, nil, 0), data(1, make([]byte, 3000), 0), frame.Frame{Type: frame.WindowUpdate, StreamID: 1, WindowDelta: 100}, data(1, nil, frame.FlagFIN)))
	f.Add(seed(syn(1, enc.EncodeAll([]byte("compressible compressible compressible"), nil), frame.FlagCompressed), frame.Frame{Type: frame.Reset, StreamID: 1, ErrorCode: 7}))
	f.Add(seed(frame.Frame{Type: frame.Ping, Opaque: 9}, frame.Frame{Type: frame.GoAway, Debug: []byte("bye")}))
	f.Add(seed(syn(1, nil, 0), syn(3, nil, frame.FlagFIN), data(1, []byte("x"), frame.FlagACK)))
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, input []byte) {
		c1, c2 := net.Pipe()
		hello := fakeHello()
		hello.Compression = []frame.Compression{frame.CompressionZstd}
		go func() {
			// The fake client: HELLO, the input, then hang up; and
			// drain whatever the server sends meanwhile.
			go io.Copy(io.Discard, c1)
			c1.Write(helloBytes(hello))
			c1.Write(input)
			c1.Close()
		}()
		s, err := Server(c2, &Config{Compression: CompressionZstd, HandshakeTimeout: time.Second, MaxIncomingStreams: 16, AcceptBacklog: 4})
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				st, err := s.AcceptStream(context.Background())
				if err != nil {
					return
				}
				go func() { io.Copy(io.Discard, st); st.Close() }()
			}
		}()
		select {
		case <-s.CloseChan():
		case <-time.After(5 * time.Second):
			t.Fatal("session still open 5 s after its connection closed")
		}
		s.Close()
		<-done
	})
}

// FuzzHandshake feeds arbitrary first bytes to a server session, as a peer
// that is not braid (or a broken one) would send them, then hangs up. The
// handshake must end with an error or a session, never a panic or a hang,
// and a failed one must match ErrHandshake.
func FuzzHandshake(f *testing.F) {
	f.Add(helloBytes(fakeHello()))
	f.Add([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
	f.Add([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
	f.Add([]byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32})
	f.Add([]byte{0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0}) // a yamux SYN
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, input []byte) {
		c1, c2 := net.Pipe()
		go func() {
			go io.Copy(io.Discard, c1)
			c1.Write(input)
			c1.Close()
		}()
		s, err := Server(c2, &Config{HandshakeTimeout: 2 * time.Second})
		if err != nil {
			if !errors.Is(err, ErrHandshake) {
				t.Fatalf("failed handshake with an error that is not ErrHandshake: %v", err)
			}
			return
		}
		s.Close()
	})
}
