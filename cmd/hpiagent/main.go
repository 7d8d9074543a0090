// Command hpiagent is the per-blade hardware platform agent.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "hpiagent: not yet")
	os.Exit(2)
}
