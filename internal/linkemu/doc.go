// Package linkemu emulates a slow network link on loopback, for tests and
// benchmarks that need to show how a protocol behaves over, say, a 50 ms
// round trip at 1 Gbit/s without leaving the machine or needing root
// (no netem, no tc).
//
// A [Link] is a userspace TCP relay: it listens on 127.0.0.1, and every
// connection it accepts is relayed to a new TCP connection to a target
// address. Each direction of a relayed connection behaves like one direction
// of a link with a propagation delay of RTT/2, a serialization rate of
// [Config.Rate] bytes per second and a bounded buffer:
//
//   - Bytes read from the source at time t are written to the destination
//     no earlier than t + RTT/2 plus their serialization time: a chunk of n
//     bytes occupies the link for n/Rate, after any chunk still ahead of it.
//   - At most C = Rate×RTT/2 + [Config.Queue] bytes are in the link per
//     direction (read and not yet due). When it is full the relay stops
//     reading from the source, so TCP backpressure reaches the sender, as
//     a full router queue would (except that nothing is dropped). Bytes
//     past their departure time that the destination has not accepted yet
//     are held too, up to C more: so a destination that stops reading
//     backs the sender up after 2C bytes plus kernel buffers, and a writer
//     goroutine woken late on a loaded machine does not idle the link.
//   - A FIN (the source's io.EOF) travels the link like data: once the bytes
//     queued before it are delivered, the relay half-closes the destination
//     with CloseWrite. A reset (any other read error) also travels in order
//     and then resets the destination and ends the relayed connection. A
//     failed write ends that direction; the other direction runs on until
//     its own source ends.
//
// [Pipe] and [PipeLink] build the common case: a connected pair of real TCP
// connections whose bytes cross an emulated link.
//
// # Faults
//
// [Config.Faults] injects faults into every relayed connection, each in
// one direction or both, at fixed byte offsets, so a test meets the same
// fault at the same byte every run ([Config.Seed] fixes the rest):
//
//   - [Cut]: deliver the first N bytes, then reset both ends.
//   - [BlackHole]: deliver the first N bytes, then drop everything while
//     the connection stays open (a peer gone silent).
//   - [Stall]: pause the direction for a while at byte N, or every P bytes.
//   - [Corrupt]: invert bits of the byte at offset N.
//   - [Rechunk]: deliver the same bytes in writes of other sizes: one
//     byte at a time, or random sizes.
//
// [Stats.Faults] counts the faults that have acted.
//
// # What is and is not emulated
//
// The relay terminates TCP on both sides, so the kernel's TCP on the
// endpoints never sees the delay: its acknowledgements come from the relay
// after microseconds. The emulation therefore models a link (delay, rate,
// bounded queue, backpressure), not end-to-end TCP congestion control or
// receive-window limits, and no packet is lost. One plain TCP connection
// through a Link reaches the link's Rate, which makes it the reference that
// an application-level protocol with its own flow control (such as braid's
// per-stream windows, whose updates do cross the delayed link) is compared
// against.
//
// The relay's own sockets get small kernel buffers
// ([Config.SocketBuffer], 128 KiB by default; Linux doubles the value) so
// the kernel does not hide megabytes of extra, undelayed queue inside the
// link. The endpoints' sockets (including those returned by [Pipe]) keep
// the kernel's defaults, as real endpoints would.
//
// # Accuracy
//
// Departures are scheduled with one timer per direction; Go timers wake up
// to about a millisecond late when the process is idle, and all chunks due
// by then leave in one write, so rate is kept on average while individual
// departures jitter by about 1 ms. Chunks are at most 64 KiB and at most
// about 1 ms of Rate (but at least 4 KiB), so store-and-forward adds little
// latency to bulk transfers.
package linkemu
