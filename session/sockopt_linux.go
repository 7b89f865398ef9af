//go:build linux

package session

import (
	"net"
	"syscall"
)

// tcpNotSentLowat is TCP_NOTSENT_LOWAT (linux/tcp.h).
const tcpNotSentLowat = 25

// tuneConn limits how much unsent data the kernel queues for c, so a
// frame the scheduler puts first (a control frame, a small message on an
// interactive stream) is not stuck behind megabytes of bulk data that
// were handed to the kernel earlier. Throughput is unaffected: the limit
// is on data not yet sent, not on data in flight. A connection layered
// on TCP (a *tls.Conn) is tuned through its NetConn method.
func tuneConn(c net.Conn, lowat int) {
	for {
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	tc, ok := c.(*net.TCPConn)
	if !ok || lowat <= 0 {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	raw.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpNotSentLowat, lowat)
	})
}
