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
	// ParentName is the name of its parent process: a payload script's
	// short-lived subshells have the script's name too.
	ParentName string
}

// Processes lists the live processes of s.
func Processes(s *Shelf) []Proc {
	var out []Proc
	for _, pid := range s.processes() {
		out = append(out, Proc{pid, procName(pid), procName(ppid(pid))})
	}
	return out
}

func procName(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// ppid reads the parent of pid from /proc/<pid>/stat ("pid (comm) state
// ppid ..."; comm may hold spaces and parentheses, so read after the last
// ')').
func ppid(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	var state string
	var pp int
	fmt.Sscanf(s[i+1:], " %s %d", &state, &pp)
	return pp
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil && !zombie(pid)
}
