// Command yamuxprog is a small echo server and client written against
// github.com/hashicorp/yamux, used by braid's yamux package tests to show
// that a yamux program switches to braid by changing its import line.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strings"

	"github.com/hashicorp/yamux"
)

// Serve accepts connections on ln and echoes every stream of every
// session back, upper-cased, until ln is closed.
func Serve(ln net.Listener) error {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return err
		}
		sess, err := yamux.Server(conn, nil)
		if err != nil {
			conn.Close()
			return err
		}
		go serveSession(sess)
	}
}

func serveSession(sess *yamux.Session) {
	defer sess.Close()
	for {
		stream, err := sess.AcceptStream()
		if err != nil {
			return
		}
		go func(s *yamux.Stream) {
			defer s.Close()
			msg, err := io.ReadAll(s) // until the client's Close
			if err != nil {
				return
			}
			s.Write([]byte(strings.ToUpper(string(msg))))
		}(stream)
	}
}

// Shout sends msg on a new stream of a session to addr and returns the
// reply: it writes, closes its side (yamux's half-close), and reads the
// answer to the end.
func Shout(addr, msg string) (string, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	cfg := yamux.DefaultConfig()
	cfg.EnableKeepAlive = false
	cfg.LogOutput = io.Discard
	sess, err := yamux.Client(conn, cfg)
	if err != nil {
		return "", err
	}
	defer sess.Close()
	stream, err := sess.OpenStream()
	if err != nil {
		return "", err
	}
	if _, err := stream.Write([]byte(msg)); err != nil {
		return "", err
	}
	if err := stream.Close(); err != nil {
		return "", err
	}
	reply, err := io.ReadAll(stream)
	if err != nil {
		return "", err
	}
	if stream.StreamID() == 0 {
		return "", fmt.Errorf("stream has ID 0")
	}
	return string(reply), nil
}

func main() {
	listen := flag.String("listen", "", "serve on this address")
	connect := flag.String("connect", "", "send the arguments to this server")
	flag.Parse()
	switch {
	case *listen != "":
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			log.Fatal(err)
		}
		log.Fatal(Serve(ln))
	case *connect != "":
		reply, err := Shout(*connect, strings.Join(flag.Args(), " "))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(reply)
	default:
		flag.Usage()
		os.Exit(2)
	}
}
