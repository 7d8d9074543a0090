package main

import (
	"fmt"
	"path/filepath"
	"time"

	"hpiagent/internal/pki"
	secureerase "hpiagent/secure-erase"
)

// HotSwapConfig is the hotswap section: the cluster-synchronized hot-swap
// workflows of the shelf's FRUs (insertion, extraction, forced extraction)
// with this node's policy hooks and the secure erase of the FRUs it owns.
// It needs the cluster section: every workflow step goes through the
// cluster's log. Without it the agent runs no workflows and the API's
// workflow and erase-certificate routes answer not_configured.
type HotSwapConfig struct {
	// StateDir holds this member's record of the workflow steps it
	// applied (what makes a retried step a no-op). Default:
	// <cluster.data_dir>/hotswap, which already survives restarts, as the
	// record must.
	StateDir string `yaml:"state_dir"`

	// DeviceClasses maps a device class name to the policy hooks this
	// node runs, in order on apply and in reverse order on revoke, for
	// FRUs of that class. The class "*" serves FRUs whose class has no
	// entry (and FRUs not listed in frus). Default: none, the node acks
	// every step without running anything (it has no policy to apply).
	DeviceClasses map[string][]HotSwapHookConfig `yaml:"device_classes"`

	// FRUs is the cluster-wide list of FRUs the workflows know by
	// configuration: their device class, the node owning their sensitive
	// state and its wipe plan. Every node must have the same list. A FRU
	// not listed still gets workflows (class "*", owner the leader, no
	// wipe plan: its extraction stays held until an operator overrides).
	FRUs []HotSwapFRUConfig `yaml:"frus"`

	// SigningKey is the node's private key (PEM; ed25519 or ECDSA P-256,
	// PKCS#8 or SEC 1) that signs the certificates of its wipes, read as a
	// secret. Default: the key of cluster.tls (the node's peer key), so
	// that a certificate verifies against the node's peer certificate
	// issued by the cluster CA and no second key has to be distributed.
	SigningKey SecretRef `yaml:"signing_key"`

	// CertificatesDir holds the signed certificates of this node's wipes,
	// served at /v1/erase-certificates. Default:
	// <cluster.data_dir>/erase-certificates: they are the proof a FRU
	// left wiped and must survive restarts.
	CertificatesDir string `yaml:"certificates_dir"`

	// RetryDelay is the wait before a refused step (a member down or a
	// hook that failed) is tried again. Default 10s: a restarting member
	// is back by then and an operator sees the alarm first.
	RetryDelay Duration `yaml:"retry_delay"`

	// MaxAttempts is how often a refused step is tried before the workflow
	// is aborted (the FRU stays held). Default 3.
	MaxAttempts int `yaml:"max_attempts"`

	// LeaveActiveUnlocked leaves an activated FRU without the
	// Deactivation-Locked bit. Default false: an activated FRU cannot be
	// deactivated by its handle before the cluster revoked its policies
	// and wiped it; extraction is then started by an operator. Set it on
	// shelves whose shelf manager waits in M5 for the agent.
	LeaveActiveUnlocked bool `yaml:"leave_active_unlocked"`
}

// HotSwapHookConfig is one policy hook of a device class.
type HotSwapHookConfig struct {
	// Type is exec (run a command with the step as JSON on stdin and
	// HPIAGENT_OP=apply|revoke) or rule-file (drop a rule file into dir
	// and run reload). Required.
	Type string `yaml:"type"`
	// Name names the hook in digests, logs and errors. Default:
	// "<class>-<index>".
	Name string `yaml:"name"`
	// Command is the executable (absolute path) and its arguments (exec
	// only). No shell is involved. Required for exec.
	Command []string `yaml:"command"`
	// Timeout bounds one run of the command (exec) or of reload
	// (rule-file). Default 30s: long enough for a firewall or
	// cluster-manager reload, short enough that a stuck hook shows as a
	// refusal within a workflow attempt.
	Timeout Duration `yaml:"timeout"`
	// Dir is the directory the rule files go to (rule-file only; it must
	// exist). Required for rule-file.
	Dir string `yaml:"dir"`
	// File is a template (Go text/template, given the step: .FRU.Shelf,
	// .FRU.IPMB, .FRU.ID, .FRU.Entity, .Workflow, .Kind, .DeviceClass) of
	// the rule file's content (rule-file only), read at start. Required
	// for rule-file.
	File string `yaml:"file"`
	// Reload is the command (absolute path and arguments) run after every
	// change of a rule file (rule-file only). Required for rule-file: a
	// rule file nobody reloads is not applied.
	Reload []string `yaml:"reload"`
}

// HotSwapFRUConfig is one FRU of the hotswap.frus list.
type HotSwapFRUConfig struct {
	// Shelf is the name of the shelf (shelves[].name) the FRU sits
	// behind. Required.
	Shelf string `yaml:"shelf"`
	// IPMB is the 8-bit IPMB address of the FRU's IPMC. Required.
	IPMB uint8 `yaml:"ipmb"`
	// FRU is the FRU device ID on that IPMC. Default 0, the board itself.
	FRU uint8 `yaml:"fru"`
	// DeviceClass selects the hooks (a key of device_classes). Default
	// "*".
	DeviceClass string `yaml:"device_class"`
	// Owner is the cluster node that wipes the FRU's sensitive state when
	// it is extracted. Default: the leader at the time.
	Owner string `yaml:"owner"`
	// Wipe is the FRU's wipe plan, run by Owner. Default none: the
	// owner's wipe fails and the extraction stays held until an operator
	// overrides it, so nothing leaves unwiped by omission.
	Wipe *HotSwapWipeConfig `yaml:"wipe"`
}

// HotSwapWipeConfig is a FRU's wipe plan.
type HotSwapWipeConfig struct {
	// Targets are sanitized in order. Required, at least one.
	Targets []HotSwapWipeTarget `yaml:"targets"`
	// Destination is the NIST SP 800-88 media destination recorded in
	// certificates ("internal reuse", ...). Default none.
	Destination string `yaml:"destination"`
}

// HotSwapWipeTarget is one target of a wipe plan.
type HotSwapWipeTarget struct {
	// Path names the target (absolute). Required.
	Path string `yaml:"path"`
	// Kind is block-device, file or directory. Required.
	Kind string `yaml:"kind"`
	// Serial, when set, must equal the block device's serial number.
	Serial string `yaml:"serial"`
	// Methods are tried in order: crypto-erase, blksecdiscard,
	// blkdiscard, overwrite. Default: all of them for block devices,
	// overwrite for files and directories.
	Methods []string `yaml:"methods"`
}

// Defaults of the hotswap section.
const (
	DefaultHotSwapRetryDelay  = 10 * time.Second
	DefaultHotSwapMaxAttempts = 3
	DefaultHookTimeout        = 30 * time.Second
)

// validateHotSwap checks the hotswap section and applies its defaults. It
// needs the cluster section (validated before).
func (c *Config) validateHotSwap() error {
	h := c.HotSwap
	if h == nil {
		return nil
	}
	if c.Cluster == nil {
		return c.errAt("hotswap", "needs a cluster section: hot-swap workflows run through the cluster's log")
	}
	if h.StateDir == "" {
		h.StateDir = filepath.Join(c.Cluster.DataDir, "hotswap")
	} else if !filepath.IsAbs(h.StateDir) {
		return c.errAt("hotswap.state_dir", "%q is not an absolute path", h.StateDir)
	}
	if h.CertificatesDir == "" {
		h.CertificatesDir = filepath.Join(c.Cluster.DataDir, "erase-certificates")
	} else if !filepath.IsAbs(h.CertificatesDir) {
		return c.errAt("hotswap.certificates_dir", "%q is not an absolute path", h.CertificatesDir)
	}
	if err := c.checkRef("hotswap.signing_key", h.SigningKey, false); err != nil {
		return err
	}
	if h.RetryDelay == 0 {
		h.RetryDelay = Duration(DefaultHotSwapRetryDelay)
	} else if time.Duration(h.RetryDelay) < 100*time.Millisecond {
		return c.errAt("hotswap.retry_delay", "%s is below the minimum of 100ms", time.Duration(h.RetryDelay))
	}
	if h.MaxAttempts == 0 {
		h.MaxAttempts = DefaultHotSwapMaxAttempts
	} else if h.MaxAttempts < 1 || h.MaxAttempts > 100 {
		return c.errAt("hotswap.max_attempts", "%d is outside 1..100", h.MaxAttempts)
	}
	for class, hooks := range h.DeviceClasses {
		ck := fmt.Sprintf("hotswap.device_classes[%q]", class)
		if class != "*" && !nameRE.MatchString(class) {
			return c.errAt(ck, "%q is not a device class name (letters, digits, . _ -, or \"*\")", class)
		}
		names := map[string]bool{}
		for i := range hooks {
			hk := &hooks[i]
			k := fmt.Sprintf("%s[%d]", ck, i)
			if hk.Name == "" {
				hk.Name = fmt.Sprintf("%s-%d", class, i)
			}
			if names[hk.Name] {
				return c.errAt(k+".name", "%q is used twice in this class", hk.Name)
			}
			names[hk.Name] = true
			if hk.Timeout == 0 {
				hk.Timeout = Duration(DefaultHookTimeout)
			} else if hk.Timeout < 0 {
				return c.errAt(k+".timeout", "%s is negative", time.Duration(hk.Timeout))
			}
			switch hk.Type {
			case "exec":
				if err := c.checkCommand(k+".command", hk.Command); err != nil {
					return err
				}
				for _, f := range []struct {
					key string
					set bool
				}{{"dir", hk.Dir != ""}, {"file", hk.File != ""}, {"reload", len(hk.Reload) > 0}} {
					if f.set {
						return c.errAt(k+"."+f.key, "applies to type rule-file only")
					}
				}
			case "rule-file":
				if len(hk.Command) > 0 {
					return c.errAt(k+".command", "applies to type exec only")
				}
				if hk.Dir == "" || !filepath.IsAbs(hk.Dir) {
					return c.errAt(k+".dir", "required: the absolute path of the rule directory")
				}
				if hk.File == "" || !filepath.IsAbs(hk.File) {
					return c.errAt(k+".file", "required: the absolute path of the rule template")
				}
				if err := c.checkCommand(k+".reload", hk.Reload); err != nil {
					return err
				}
			default:
				return c.errAt(k+".type", "%q is not one of exec, rule-file", hk.Type)
			}
		}
	}
	shelves := map[string]bool{}
	for _, s := range c.Shelves {
		shelves[s.Name] = true
	}
	nodes := map[string]bool{}
	for _, n := range c.Cluster.Nodes {
		nodes[n.Name] = true
	}
	seen := map[string]int{}
	for i := range h.FRUs {
		f := &h.FRUs[i]
		k := fmt.Sprintf("hotswap.frus[%d]", i)
		if !shelves[f.Shelf] {
			return c.errAt(k+".shelf", "%q is not the name of a shelf in shelves", f.Shelf)
		}
		if f.IPMB == 0 || f.IPMB&1 != 0 {
			return c.errAt(k+".ipmb", "%#x is not an IPMB slave address (even, not 0)", f.IPMB)
		}
		key := fmt.Sprintf("%s/%#x/%d", f.Shelf, f.IPMB, f.FRU)
		if j, dup := seen[key]; dup {
			return c.errAt(k, "FRU %s is also hotswap.frus[%d]", key, j)
		}
		seen[key] = i
		if f.DeviceClass == "" {
			f.DeviceClass = "*"
		} else if f.DeviceClass != "*" && !nameRE.MatchString(f.DeviceClass) {
			return c.errAt(k+".device_class", "%q is not a device class name", f.DeviceClass)
		}
		if f.Owner != "" {
			if err := pki.ValidName(f.Owner); err != nil || !nodes[f.Owner] {
				return c.errAt(k+".owner", "%q is not one of cluster.nodes", f.Owner)
			}
		}
		if f.Wipe != nil {
			if f.Owner == "" {
				return c.errAt(k+".owner", "required with a wipe plan: the node that runs it")
			}
			if len(f.Wipe.Targets) == 0 {
				return c.errAt(k+".wipe.targets", "required: at least one target")
			}
			for j, t := range f.Wipe.Targets {
				tk := fmt.Sprintf("%s.wipe.targets[%d]", k, j)
				if t.Path == "" || !filepath.IsAbs(t.Path) {
					return c.errAt(tk+".path", "required: an absolute path")
				}
				switch secureerase.Kind(t.Kind) {
				case secureerase.KindBlockDevice, secureerase.KindFile, secureerase.KindDirectory:
				default:
					return c.errAt(tk+".kind", "%q is not one of block-device, file, directory", t.Kind)
				}
				if t.Serial != "" && secureerase.Kind(t.Kind) != secureerase.KindBlockDevice {
					return c.errAt(tk+".serial", "applies to block devices only")
				}
			}
		}
	}
	return nil
}

// checkCommand checks a command line of the configuration: an absolute
// executable path and its arguments.
func (c *Config) checkCommand(key string, argv []string) error {
	if len(argv) == 0 {
		return c.errAt(key, "required: the absolute path of the executable and its arguments")
	}
	if !filepath.IsAbs(argv[0]) {
		return c.errAt(key, "%q is not an absolute path (no shell or PATH lookup is involved)", argv[0])
	}
	return nil
}

// wipePlan returns the secure-erase plan of f (nil without one).
func (f HotSwapFRUConfig) wipePlan(entity string) *secureerase.WipePlan {
	if f.Wipe == nil {
		return nil
	}
	p := &secureerase.WipePlan{FRU: entity, Destination: f.Wipe.Destination}
	for _, t := range f.Wipe.Targets {
		p.Targets = append(p.Targets, secureerase.PlanTarget{Path: t.Path, Kind: secureerase.Kind(t.Kind), Serial: t.Serial, Methods: t.Methods})
	}
	return p
}
