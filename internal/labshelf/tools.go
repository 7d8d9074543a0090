package labshelf

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Ipmitool runs "ipmitool -I lanplus -H host -p port -U admin -C 3 -E args..."
// against the shelf and returns its standard output. The password goes
// through the environment (-E), not the command line. Options such as
// "-t 0x84 -b 0" (bridging) may lead args.
func (s *Shelf) Ipmitool(ctx context.Context, args ...string) (string, error) {
	base := []string{"-I", "lanplus", "-H", s.Host, "-p", strconv.Itoa(s.Port), "-U", s.User, "-C", "3", "-E"}
	return s.run(ctx, "ipmitool", append(base, args...), "IPMI_PASSWORD="+s.Password)
}

// IpmiSensors runs FreeIPMI's ipmi-sensors against the shelf over RMCP+
// (-D LAN_2_0, cipher suite 3, ADMIN privilege, -W opensesspriv, which
// ipmi_sim needs) with a private SDR cache directory, and returns its
// standard output. The credentials come from a mode 0600 configuration file
// in the runtime directory. Add "--bridge-sensors" to read IPMC-owned sensors.
// Start and Restart begin with an empty cache.
func (s *Shelf) IpmiSensors(ctx context.Context, args ...string) (string, error) {
	run := filepath.Join(s.Dir, "run")
	base := []string{
		"--config-file=" + filepath.Join(run, "freeipmi.conf"),
		"-h", s.Addr(), "-D", "LAN_2_0", "-I", "3", "-l", "ADMIN", "-W", "opensesspriv",
		"--sdr-cache-directory=" + filepath.Join(run, "freeipmi-cache"),
	}
	return s.run(ctx, "ipmi-sensors", append(base, args...))
}

// run runs a client tool and returns its standard output; the error carries
// the arguments and standard error (never a password: none is on the
// command line).
func (s *Shelf) run(ctx context.Context, tool string, args []string, env ...string) (string, error) {
	if _, err := exec.LookPath(tool); err != nil {
		return "", fmt.Errorf("run %s: %w", tool, err)
	}
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s against shelf %s: %w: %s", tool, strings.Join(args, " "), s.Addr(), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
