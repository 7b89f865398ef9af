package yamux_test

import (
	"fmt"
	"io"
	"log"
	"net"

	"github.com/braidmux/braid/yamux"
)

// Example is a yamux program, unchanged but for its import path: an
// accept loop that starts one Server per connection (Server returns at
// once, so a silent client cannot hold the loop up) and a client that
// writes, half-closes its stream with Close, and reads the reply.
func Example() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			sess, err := yamux.Server(conn, nil) // braid and yamux clients alike
			if err != nil {
				conn.Close()
				continue
			}
			go func() {
				defer sess.Close()
				for {
					stream, err := sess.Accept()
					if err != nil {
						return
					}
					go func() {
						io.Copy(stream, stream) // echo until the client's Close
						stream.Close()
					}()
				}
			}()
		}
	}()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	sess, err := yamux.Client(conn, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer sess.Close()
	stream, err := sess.Open()
	if err != nil {
		log.Fatal(err)
	}
	stream.Write([]byte("hello over braid"))
	stream.Close() // yamux's half-close: the reply can still be read
	reply, err := io.ReadAll(stream)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s (session speaks %v)\n", reply, sess.Protocol())
	// Output: hello over braid (session speaks braid)
}

// Example_yamuxServer shows a Client talking to a server that speaks
// yamux's wire protocol (here this package's Server with ProtocolYamux;
// a hashicorp/yamux server is the same on the wire).
func Example_yamuxServer() {
	c1, c2 := net.Pipe()
	cfg := yamux.DefaultConfig()
	cfg.Protocol = yamux.ProtocolYamux
	server, _ := yamux.Server(c2, cfg)
	defer server.Close()
	client, _ := yamux.Client(c1, cfg)
	defer client.Close()
	go func() {
		st, err := server.Accept()
		if err == nil {
			st.Write([]byte("hi from yamux"))
			st.Close()
		}
	}()
	st, err := client.Open()
	if err != nil {
		log.Fatal(err)
	}
	reply, _ := io.ReadAll(st)
	fmt.Println(string(reply))
	// Output: hi from yamux
}
