package labshelf

import (
	"fmt"
	"os"
	"strings"
)

// Proc is a process of a shelf, for tests.
type Proc struct {
	PID  int
	Name string
}

// Processes lists the live processes of s.
func Processes(s *Shelf) []Proc {
	var out []Proc
	for _, pid := range s.processes() {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		out = append(out, Proc{pid, strings.TrimSpace(string(b))})
	}
	return out
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil && !zombie(pid)
}
