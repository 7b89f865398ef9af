package flowcontrol_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/braidmux/braid/flowcontrol"
)

// Example follows one stream: the sender spends its credit, the receiver
// accepts and consumes the data, and the WINDOW_UPDATE it returns refills
// the sender. The reader drained the window well within 4 RTTs, so the
// window doubled, paid for from the session's budget.
func Example() {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const rtt = 50 * time.Millisecond

	// Receiver: a session-wide budget and one stream's window.
	budget := flowcontrol.NewBudget(64 << 20)
	recv := flowcontrol.NewRecvWindow(256<<10, 16<<20, start)
	// Sender: the credit announced by the receiver.
	send := flowcontrol.NewSendWindow(256 << 10)

	// The sender sends its whole credit; it arrives 25 ms later.
	n := int(send.Available())
	send.Take(n)
	if err := recv.Receive(n); err != nil {
		panic(err)
	}
	// The application reads it all at once.
	delta := recv.Consume(n, start.Add(25*time.Millisecond), rtt, &budget)
	fmt.Println("window update:", delta, "window:", recv.Window(), "budget used:", budget.Used())

	// The update reaches the sender.
	if err := send.Add(delta); err != nil {
		panic(err)
	}
	fmt.Println("sender credit:", send.Available(), "sent:", send.Sent())

	// A peer ignoring its credit is a protocol error.
	err := recv.Receive(int(recv.Credit()) + 1)
	fmt.Println(errors.Is(err, flowcontrol.ErrFlowControl))

	// Closing the stream returns the growth to the budget.
	recv.Close(&budget)
	fmt.Println("budget used after close:", budget.Used())
	// Output:
	// window update: 524288 window: 524288 budget used: 262144
	// sender credit: 524288 sent: 262144
	// true
	// budget used after close: 0
}
