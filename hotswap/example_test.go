package hotswap_test

import (
	"context"
	"log/slog"
	"time"

	"hpiagent/cluster"
	"hpiagent/hotswap"
	"hpiagent/hpi"
)

// Example shows how the daemon wires the hot-swap workflows to the cluster
// and the shelf: the Machine is registered with the log before Start, the
// Member's handlers serve peer RPC, and the Coordinator runs on every node
// (it acts only while its node leads).
func Example() {
	var (
		c      *cluster.Cluster // cluster.New(cfg), not started yet
		hw     hotswap.Hardware // the shelf (shelf.Monitor)
		domain *hpi.Domain      // the HPI model the Monitor feeds
		nodes  = []string{"blade-1", "blade-2", "blade-3"}
		log    = slog.Default()
		ctx    = context.Background()
	)
	if c == nil {
		return // the wiring below needs a configured cluster
	}
	m := hotswap.NewMachine()
	_ = c.RegisterFSM(hotswap.LogKind, m)

	member, _ := hotswap.NewMember(hotswap.MemberConfig{
		Name: "blade-1", StateDir: "/var/lib/hpiagent/hotswap",
		Hooks: map[string][]hotswap.Hook{"*": {
			&hotswap.ExecHook{HookName: "cluster-manager", Command: hotswap.CommandConfig{
				Path: "/usr/libexec/hpiagent/hooks/cluster-manager", Timeout: 20 * time.Second}},
			&hotswap.RuleFileHook{HookName: "firewall", Dir: "/etc/nftables.d",
				Render: func(s hotswap.Step) ([]byte, error) { return []byte("# rules for " + s.FRU.Key() + "\n"), nil },
				Reload: hotswap.CommandConfig{Path: "/usr/sbin/nft", Args: []string{"-f", "/etc/nftables.conf"}}},
		}},
		Logger: log,
	})
	for method, h := range member.Handlers() {
		_ = c.Handle(method, h)
	}
	_ = c.Start(ctx)

	coord, _ := hotswap.NewCoordinator(hotswap.CoordinatorConfig{
		Node: "blade-1", Log: c, Peers: c, Machine: m, Hardware: hw, Member: member,
		Members: func() []string { return nodes },
		Alarm:   func(a hotswap.AlarmInfo) { log.Warn("hot-swap alarm", "fru", a.FRU.Key(), "alarm", a.Text) },
		Logger:  log,
	})
	sub, _ := domain.Subscribe(256)
	go coord.RunEvents(ctx, sub, func(ev hpi.Event) (hotswap.FRU, bool) {
		// Map the event's resource to its shelf manager, IPMC and FRU ID.
		return hotswap.FRU{}, false
	})
	go coord.Run(ctx)
}
