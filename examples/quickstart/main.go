// Command quickstart runs a braid server and client in one process on
// loopback: the server answers every stream with what it read, upper-
// cased; the client opens three streams at once over one connection.
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"

	"github.com/braidmux/braid/session"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go serve(ln)

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	sess, err := session.Client(conn, nil) // nil config: session.DefaultConfig()
	if err != nil {
		log.Fatal(err)
	}
	defer sess.Close()

	done := make(chan string)
	for _, msg := range []string{"hello", "many streams", "one connection"} {
		go func() {
			st, err := sess.OpenStream(context.Background())
			if err != nil {
				log.Fatal(err)
			}
			defer st.Close()
			st.Write([]byte(msg))
			st.CloseWrite() // half-close: the server reads io.EOF and still answers
			reply, err := io.ReadAll(st)
			if err != nil {
				log.Fatal(err)
			}
			done <- fmt.Sprintf("%s -> %s", msg, reply)
		}()
	}
	for range 3 {
		fmt.Println(<-done)
	}
}

// serve runs one session per accepted connection. session.Server waits
// for the client's handshake, so it runs in the connection's goroutine,
// not in the accept loop.
func serve(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			sess, err := session.Server(conn, nil)
			if err != nil {
				log.Print(err)
				return
			}
			defer sess.Close()
			for {
				st, err := sess.AcceptStream(context.Background()) // or sess.Accept(): a Session is a net.Listener
				if err != nil {
					return
				}
				go func() {
					defer st.Close() // st is a net.Conn
					msg, _ := io.ReadAll(st)
					st.Write(bytes.ToUpper(msg))
				}()
			}
		}()
	}
}
