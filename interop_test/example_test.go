package interop_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"

	"github.com/braidmux/braid/session"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// connect dials addr and starts the client side of a braid session.
func connect(addr string) *session.Session {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	sess, err := session.Client(conn, nil)
	if err != nil {
		log.Fatal(err)
	}
	return sess
}

// acceptSession accepts one TCP connection and starts the server side of
// a braid session on it.
func acceptSession(ln net.Listener) (*session.Session, error) {
	conn, err := ln.Accept()
	if err != nil {
		return nil, err
	}
	return session.Server(conn, nil)
}

// An http.Server serves every stream of a braid session (a Session is a
// net.Listener); an http.Transport dials by opening a stream. Each HTTP/1.1
// connection is one stream, kept alive and reused like a TCP connection.
func Example_netHTTP() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()

	// Server.
	go func() {
		sess, err := acceptSession(ln)
		if err != nil {
			return
		}
		http.Serve(sess, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello from %s over braid", r.Proto)
		}))
	}()

	// Client.
	sess := connect(ln.Addr().String())
	defer sess.Close()
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			st, err := sess.OpenStream(ctx)
			if err != nil {
				return nil, err
			}
			return st, nil
		},
	}}
	resp, err := client.Get("http://braid/") // the host name is not used
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(string(body))
	// Output: hello from HTTP/1.1 over braid
}

// A grpc.Server serves on a braid session; a client connection dials by
// opening a braid stream, which then carries gRPC's HTTP/2 connection.
func Example_grpc() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()

	// Server.
	srv := grpc.NewServer()
	defer srv.Stop()
	hs := health.NewServer()
	hs.SetServingStatus("braid.example", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go func() {
		sess, err := acceptSession(ln)
		if err != nil {
			return
		}
		srv.Serve(sess)
	}()

	// Client.
	sess := connect(ln.Addr().String())
	defer sess.Close()
	conn, err := grpc.NewClient("passthrough:///braid",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			st, err := sess.OpenStream(ctx)
			if err != nil {
				return nil, err
			}
			return st, nil
		}))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(),
		&healthpb.HealthCheckRequest{Service: "braid.example"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.GetStatus())
	// Output: SERVING
}
