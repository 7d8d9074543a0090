package devipmi_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"hpiagent/shelf/devipmi"
	"hpiagent/shelf/ipmi"
)

// Reading the local controller's device ID and a bridged IPMC's hot-swap
// sensor, and consuming events.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := devipmi.Open(ctx, devipmi.DefaultPath, devipmi.Options{})
	if err != nil {
		fmt.Println(err) // e.g. "open /dev/ipmi0: no such file — is ipmi_devintf loaded? (...)"
		return
	}
	defer conn.Close()

	go func() {
		for ev := range conn.Events() {
			if rec, err := ev.SEL(); err == nil {
				fmt.Printf("event % x (lost before it: %d)\n", rec, ev.Lost)
			}
		}
	}()

	id, err := ipmi.Do(ctx, conn, ipmi.Addr{}, ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: 0x01, ReadOnly: true})
	fmt.Printf("device ID % x, %v\n", id, err)

	// Sensor 0 of the IPMC at 0x84 (addresses differ from shelf to shelf).
	_, err = ipmi.Do(ctx, conn, ipmi.Addr{Slave: 0x84}, ipmi.Request{NetFn: ipmi.NetFnSensor, Cmd: 0x2d, Data: []byte{0}, ReadOnly: true})
	if errors.Is(err, devipmi.ErrNoResponse) {
		fmt.Println("IPMC 0x84 does not answer:", err)
	}
}
