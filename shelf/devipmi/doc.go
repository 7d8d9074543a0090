// Package devipmi is the local IPMI transport of hpiagent: it talks to the
// blade's own controller (the IPMC or BMC) through the Linux OpenIPMI driver
// character device (/dev/ipmi0, provided by the ipmi_devintf module on top
// of ipmi_si or another system interface driver), and through that
// controller to other controllers on IPMB.
//
// A *Conn implements ipmi.Conn. The zero ipmi.Addr is the local controller
// (system interface address, channel IPMI_BMC_CHANNEL); an Addr with a
// non-zero Slave is sent as an IPMB address and the driver does the bridging
// (Send Message / Get Message) itself.
//
// One owner goroutine per device does every ioctl. Callers from any
// goroutine hand it requests; each request carries a unique msgid that the
// driver echoes in its response, so several requests may be in flight at
// once and responses are matched whatever their order. Asynchronous events
// (the 16-byte SEL-format records the driver reads from the controller's
// event message buffer) and incoming commands are delivered on a bounded
// channel (Conn.Events); when the consumer falls behind, events are counted
// as dropped (Conn.Dropped, Event.Lost) and logged, and the owner goroutine
// never blocks. Commands are delivered only if registered with
// Options.Commands; answer each with Conn.Respond.
//
// Bridged requests that change state are sent with the driver's own retries
// switched off (IPMICTL_SEND_COMMAND_SETTIME with retries 0), so that the
// driver never sends a power or activation command twice; only requests
// marked ipmi.Request.ReadOnly are retried, by this package, with a fresh
// msgid.
//
// Status: the byte layout of the kernel structures, the ioctl numbers and
// the owner-goroutine logic are tested against an in-process stand-in for
// the driver and against the kernel header linux/ipmi.h (compiled with gcc
// when present). This package has NOT been run against a real OpenIPMI
// kernel driver: the machine it was developed on has no /dev/ipmi0 and
// cannot load ipmi_si/ipmi_devintf. Treat its first use on a real blade as a
// test.
package devipmi
