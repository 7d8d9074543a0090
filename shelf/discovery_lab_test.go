package shelf_test

import (
	"context"
	"testing"
	"time"

	"hpiagent/internal/labshelf"
	"hpiagent/shelf"
	"hpiagent/shelf/rmcpp"
)

func TestDiscoverLabExplore(t *testing.T) {
	sh := labshelf.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sess, err := rmcpp.Dial(ctx, rmcpp.Config{Addr: sh.Addr(), Username: sh.User, Password: []byte(sh.Password), CipherSuites: []int{3}})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	snap, err := shelf.Discover(ctx, sess, shelf.DiscoverOptions{Readings: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("local 0x%02x known %v repo %+v records %d", snap.LocalAddr, snap.LocalAddrKnown, snap.Repository, len(snap.Records))
	for _, m := range snap.MCs {
		t.Logf("%s addr %v picmg %+v lost %v err %v sensors %d", m, m.Addr, m.PICMG, m.Lost, m.Err, len(m.Sensors))
		t.Logf("  unsupported %q", m.Unsupported)
		for _, p := range m.Problems {
			t.Logf("  problem %v", p)
		}
		for _, f := range m.FRUs {
			t.Logf("  FRU %d site %+v leds %d ctrl %+v policy %v power %v ms %d/%v", f.ID, f.Site, len(f.LEDs), f.Control, f.Policy, f.Power, f.MState, f.HasMState)
			if f.Inventory != nil && f.Inventory.Board != nil {
				t.Logf("    board %q %q", f.Inventory.Board.Product.Text(), f.Inventory.Board.Serial.Text())
			}
		}
	}
	res, err := shelf.Model(snap, shelf.ModelOptions{})
	if err != nil {
		t.Error(err)
	}
	for _, r := range res {
		t.Logf("%s %q caps %s rdrs %d", r.Entry.EntityPath, r.Entry.Tag, r.Entry.Capabilities, len(r.RDRs))
	}
	out, _ := sh.Ipmitool(ctx, "sdr", "elist", "all")
	t.Logf("%s", out)
	out, _ = sh.Ipmitool(ctx, "fru", "print")
	t.Logf("%s", out)
	out, _ = sh.Ipmitool(ctx, "-t", "0x82", "-b", "0", "picmg", "addrinfo")
	t.Logf("%s", out)
}
