package interop_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// rawCodec carries []byte messages as they are, so the test service
// needs no generated code. Clients select it per call with
// grpc.CallContentSubtype(rawCodec{}.Name()); the server picks it from
// the request's content type. The health service keeps using protobuf.
type rawCodec struct{}

func (rawCodec) Name() string { return "braid-raw" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case *[]byte:
		return *m, nil
	case []byte:
		return m, nil
	}
	return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*p = append((*p)[:0], data...)
	return nil
}

func init() { encoding.RegisterCodec(rawCodec{}) }

var rawCall = grpc.CallContentSubtype(rawCodec{}.Name())

// echoService implements braid.interop.Echo, a service written by hand:
//
//	Unary(bytes) → the same bytes
//	Wait(bytes)  → blocks until the call's context ends, reports why on seen
//	Bidi(stream bytes) → each message echoed
type echoService struct {
	started chan time.Time // Wait reports here that it runs, with its ctx's deadline (zero if none)
	seen    chan error     // Wait and Bidi report ctx.Err() here when their context ends
}

var echoDesc = grpc.ServiceDesc{
	ServiceName: "braid.interop.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Unary", Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			return &in, nil
		}},
		{MethodName: "Wait", Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			deadline, _ := ctx.Deadline()
			srv.(*echoService).started <- deadline
			<-ctx.Done()
			srv.(*echoService).seen <- ctx.Err()
			return nil, status.FromContextError(ctx.Err()).Err()
		}},
	},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Bidi",
		ServerStreams: true,
		ClientStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			for {
				var m []byte
				if err := stream.RecvMsg(&m); err != nil {
					if err == io.EOF {
						return nil
					}
					if ctxErr := stream.Context().Err(); ctxErr != nil {
						srv.(*echoService).seen <- ctxErr
					}
					return err
				}
				if err := stream.SendMsg(&m); err != nil {
					return err
				}
			}
		},
	}},
}

// grpcOverBraid serves the echo and health services on a braid session
// and returns a client connection whose transport is one braid stream.
func grpcOverBraid(t *testing.T) (*grpc.ClientConn, *echoService, *health.Server) {
	t.Helper()
	cs, ss := braidSessions(t)
	srv := grpc.NewServer()
	echo := &echoService{started: make(chan time.Time, 16), seen: make(chan error, 16)}
	srv.RegisterService(&echoDesc, echo)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ss) }()
	conn, err := grpc.NewClient("passthrough:///braid",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(streamDialer(cs)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Logf("Serve: %v", err)
		}
	})
	return conn, echo, hs
}

func TestGRPCHealthUnary(t *testing.T) {
	conn, _, hs := grpcOverBraid(t)
	client := healthpb.NewHealthClient(conn)
	ctx := timeoutCtx(t, 10*time.Second)
	hs.SetServingStatus("braid", healthpb.HealthCheckResponse_SERVING)
	resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "braid"})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check = %v, %v; want SERVING", resp.GetStatus(), err)
	}
	hs.SetServingStatus("braid", healthpb.HealthCheckResponse_NOT_SERVING)
	resp, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: "braid"})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Check = %v, %v; want NOT_SERVING", resp.GetStatus(), err)
	}
	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: "unknown"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Check(unknown) = %v; want NotFound", err)
	}
}

func TestGRPCConcurrentUnary(t *testing.T) {
	conn, _, _ := grpcOverBraid(t)
	ctx := timeoutCtx(t, 60*time.Second)
	const calls = 1000
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := range calls {
		wg.Go(func() {
			in := patternBlock[i : i+100+i%4000]
			var out []byte
			if err := conn.Invoke(ctx, "/braid.interop.Echo/Unary", &in, &out, rawCall); err != nil {
				errs <- fmt.Errorf("call %d: %w", i, err)
				return
			}
			if !bytes.Equal(in, out) {
				errs <- fmt.Errorf("call %d: wrong echo", i)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestGRPCBidiStreaming(t *testing.T) {
	conn, _, _ := grpcOverBraid(t)
	ctx := timeoutCtx(t, 60*time.Second)
	const streams = 8
	var wg sync.WaitGroup
	for k := range streams {
		wg.Go(func() {
			st, err := conn.NewStream(ctx, &echoDesc.Streams[0], "/braid.interop.Echo/Bidi", rawCall)
			if err != nil {
				t.Errorf("stream %d: NewStream: %v", k, err)
				return
			}
			sizes := []int{0, 1, 100, 16 << 10, 64<<10 + 1, 1 << 20}
			go func() { // send all while receiving
				for _, n := range sizes {
					m := patternBlock[k : k+n]
					if err := st.SendMsg(&m); err != nil {
						return
					}
				}
				st.CloseSend()
			}()
			for _, n := range sizes {
				var got []byte
				if err := st.RecvMsg(&got); err != nil {
					t.Errorf("stream %d: RecvMsg (%d bytes): %v", k, n, err)
					return
				}
				if !bytes.Equal(got, patternBlock[k:k+n]) {
					t.Errorf("stream %d: message of %d bytes came back as %d different bytes", k, n, len(got))
				}
			}
			var extra []byte
			if err := st.RecvMsg(&extra); err != io.EOF {
				t.Errorf("stream %d: after the last echo RecvMsg = %v; want io.EOF", k, err)
			}
		})
	}
	wg.Wait()
}

func TestGRPCCancellation(t *testing.T) {
	conn, echo, _ := grpcOverBraid(t)

	// Unary: the server handler sees the client's cancel.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		in := []byte("wait")
		var out []byte
		done <- conn.Invoke(ctx, "/braid.interop.Echo/Wait", &in, &out, rawCall)
	}()
	<-echo.started
	cancel()
	if err := <-done; status.Code(err) != codes.Canceled {
		t.Errorf("cancelled call = %v; want codes.Canceled", err)
	}
	select {
	case err := <-echo.seen:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("server handler's ctx ended with %v; want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("server handler's ctx not done 5 s after the client cancelled")
	}

	// Bidi: the server's stream context ends too.
	ctx, cancel = context.WithCancel(context.Background())
	st, err := conn.NewStream(ctx, &echoDesc.Streams[0], "/braid.interop.Echo/Bidi", rawCall)
	if err != nil {
		t.Fatal(err)
	}
	m := []byte("ping")
	if err := st.SendMsg(&m); err != nil {
		t.Fatal(err)
	}
	if err := st.RecvMsg(&m); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := st.RecvMsg(&m); status.Code(err) != codes.Canceled {
		t.Errorf("RecvMsg after cancel = %v; want codes.Canceled", err)
	}
	select {
	case err := <-echo.seen:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("server stream's ctx ended with %v; want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("server stream's ctx not done 5 s after the client cancelled")
	}
}

// connected makes one call so that conn's transport is up.
func connected(t *testing.T, conn *grpc.ClientConn) {
	t.Helper()
	in := []byte("sync")
	var out []byte
	if err := conn.Invoke(timeoutCtx(t, 10*time.Second), "/braid.interop.Echo/Unary", &in, &out, rawCall); err != nil {
		t.Fatal(err)
	}
}

func TestGRPCDeadline(t *testing.T) {
	conn, echo, _ := grpcOverBraid(t)
	connected(t, conn) // so the deadline is spent on the call, not on connecting
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	in := []byte("wait")
	var out []byte
	start := time.Now()
	err := conn.Invoke(ctx, "/braid.interop.Echo/Wait", &in, &out, rawCall)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("call with a 100 ms deadline = %v; want codes.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("call with a 100 ms deadline returned after %v", took)
	}
	// The server's context carries the client's deadline; it ends with
	// DeadlineExceeded or, if the client's RST_STREAM arrives first,
	// Canceled.
	select {
	case deadline := <-echo.started:
		if deadline.IsZero() || deadline.After(start.Add(time.Second)) {
			t.Errorf("server handler's ctx deadline = %v; want ≈ 100 ms after %v", deadline, start)
		}
	default:
		t.Error("server handler never ran")
	}
	select {
	case err := <-echo.seen:
		if err == nil {
			t.Error("server handler's ctx ended without an error")
		}
	case <-time.After(5 * time.Second):
		t.Error("server handler's ctx not done 5 s after the client's deadline")
	}
}
