//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package yamux

import (
	"net"
	"syscall"
)

// peekable reports whether peek works on c. Peeking keeps a TCP or Unix
// connection unwrapped, so braid still writes to it with writev and
// tunes the socket.
func peekable(c net.Conn) bool {
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn:
		return true
	}
	return false
}

// peek reads into b without consuming: the bytes stay in the socket's
// receive queue. It waits (honouring c's read deadline) until at least
// one byte or the end of the stream arrives.
func peek(c net.Conn, b []byte) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, syscall.EINVAL
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var rerr error
	err = raw.Read(func(fd uintptr) bool {
		for {
			n, _, rerr = syscall.Recvfrom(int(fd), b, syscall.MSG_PEEK)
			if rerr != syscall.EINTR {
				break
			}
		}
		return rerr != syscall.EAGAIN && rerr != syscall.EWOULDBLOCK
	})
	if err != nil {
		return 0, err
	}
	if rerr != nil {
		return 0, rerr
	}
	return max(n, 0), nil
}
