package yamux_test

import (
	"context"
	"io"
	"net"
	"time"

	"github.com/braidmux/braid/yamux"
)

// The exported API of hashicorp/yamux v0.1.2, with its signatures: this
// file compiles only if this package has every name with the same type.
var (
	_ func(io.ReadWriteCloser, *yamux.Config) (*yamux.Session, error) = yamux.Server
	_ func(io.ReadWriteCloser, *yamux.Config) (*yamux.Session, error) = yamux.Client
	_ func() *yamux.Config                                            = yamux.DefaultConfig
	_ func(*yamux.Config) error                                       = yamux.VerifyConfig
	_ func() *yamux.Config                                            = (&yamux.Config{}).Clone

	_ = yamux.Config{
		AcceptBacklog:          1,
		EnableKeepAlive:        true,
		KeepAliveInterval:      time.Second,
		ConnectionWriteTimeout: time.Second,
		MaxStreamWindowSize:    1,
		StreamOpenTimeout:      time.Second,
		StreamCloseTimeout:     time.Second,
		LogOutput:              io.Discard,
		Logger:                 yamux.Logger(nil),
	}

	_ func() (net.Conn, error)                     = (*yamux.Session)(nil).Open
	_ func() (*yamux.Stream, error)                = (*yamux.Session)(nil).OpenStream
	_ func() (net.Conn, error)                     = (*yamux.Session)(nil).Accept
	_ func() (*yamux.Stream, error)                = (*yamux.Session)(nil).AcceptStream
	_ func(context.Context) (*yamux.Stream, error) = (*yamux.Session)(nil).AcceptStreamWithContext
	_ func() error                                 = (*yamux.Session)(nil).Close
	_ func() error                                 = (*yamux.Session)(nil).GoAway
	_ func() (time.Duration, error)                = (*yamux.Session)(nil).Ping
	_ func() int                                   = (*yamux.Session)(nil).NumStreams
	_ func() bool                                  = (*yamux.Session)(nil).IsClosed
	_ func() <-chan struct{}                       = (*yamux.Session)(nil).CloseChan
	_ func() net.Addr                              = (*yamux.Session)(nil).Addr
	_ func() net.Addr                              = (*yamux.Session)(nil).LocalAddr
	_ func() net.Addr                              = (*yamux.Session)(nil).RemoteAddr
	_ net.Listener                                 = (*yamux.Session)(nil)
	_ net.Conn                                     = (*yamux.Stream)(nil)
	_ func() *yamux.Session                        = (*yamux.Stream)(nil).Session
	_ func() uint32                                = (*yamux.Stream)(nil).StreamID
	_ func()                                       = (*yamux.Stream)(nil).Shrink
	_ net.Error                                    = (*yamux.NetError)(nil)
	_ *yamux.NetError                              = yamux.ErrTimeout
	_ func() bool                                  = yamux.ErrTimeout.Timeout
	_ func() bool                                  = yamux.ErrTimeout.Temporary
	_ func(yamux.Logger, ...interface{})           = yamux.Logger.Print
	_ func(yamux.Logger, string, ...interface{})   = yamux.Logger.Printf
	_ func(yamux.Logger, ...interface{})           = yamux.Logger.Println
	_                                              = []error{
		yamux.ErrInvalidVersion, yamux.ErrInvalidMsgType, yamux.ErrSessionShutdown,
		yamux.ErrStreamsExhausted, yamux.ErrDuplicateStream, yamux.ErrRecvWindowExceeded,
		yamux.ErrTimeout, yamux.ErrStreamClosed, yamux.ErrUnexpectedFlag, yamux.ErrRemoteGoAway,
		yamux.ErrConnectionReset, yamux.ErrConnectionWriteTimeout, yamux.ErrKeepAliveTimeout,
	}
)
