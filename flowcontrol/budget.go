package flowcontrol

import "fmt"

// Budget is a session-wide pool of bytes that pays for receive windows
// growing beyond their initial size, so the memory all receive buffers may
// hold is bounded however many streams exist. The zero value has a limit
// of 0: no window can grow.
//
// A Budget is not safe for concurrent use: the caller serializes all
// method calls, including those made through RecvWindow.Consume and
// RecvWindow.Close (the session holds one lock around them).
//
// Invariant: 0 <= Used() <= Limit().
type Budget struct {
	limit int64
	used  int64
}

// NewBudget returns a Budget of limit bytes. It panics if limit is
// negative.
func NewBudget(limit int64) Budget {
	if limit < 0 {
		panic(fmt.Sprintf("flowcontrol: negative budget %d", limit))
	}
	return Budget{limit: limit}
}

// Reserve takes n bytes from the budget if all n are available and reports
// whether it did; it takes nothing otherwise. It panics if n is negative.
func (b *Budget) Reserve(n int64) bool {
	if n < 0 {
		panic(fmt.Sprintf("flowcontrol: Reserve(%d)", n))
	}
	if n > b.limit-b.used {
		return false
	}
	b.used += n
	return true
}

// Release returns n reserved bytes to the budget. It panics if n is
// negative or more than is reserved: each byte must be released exactly
// once.
func (b *Budget) Release(n int64) {
	if n < 0 || n > b.used {
		panic(fmt.Sprintf("flowcontrol: Release(%d) with %d reserved", n, b.used))
	}
	b.used -= n
}

// Used returns the bytes currently reserved.
func (b *Budget) Used() int64 { return b.used }

// Limit returns the size of the budget.
func (b *Budget) Limit() int64 { return b.limit }

// Available returns the bytes that can still be reserved: Limit() - Used().
func (b *Budget) Available() int64 { return b.limit - b.used }
