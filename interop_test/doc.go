// Package interop holds braid's tests against code nobody on the braid
// project wrote: a behavioural suite run against braid, yamux and smux;
// gRPC, net/http and net/rpc running over braid sessions; and benchmarks
// that put raw TCP, braid, yamux, smux and go-yamux side by side.
//
// The package has no non-test code: everything lives in _test.go files so
// that the heavy test-only dependencies (gRPC, yamux, smux, go-yamux) are never
// compiled into programs that import braid. See README.md for the
// results table and the benchmark command.
package interop
