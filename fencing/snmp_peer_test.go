package fencing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"hpiagent/internal/labswitch"
)

func TestFabricOnNetSNMP(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sw := labswitch.Start(t, 3)
	cfg := FabricConfig{Address: sw.Addr, User: labswitch.User, AuthPassphrase: labswitch.AuthPass, PrivPassphrase: labswitch.PrivPass,
		Ports: map[string][]int{"node-a": sw.Ports[:2], "node-b": sw.Ports[2:]}, Timeout: 500 * time.Millisecond}
	f, err := NewFabric(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Wait for snmpd to answer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := f.Status(ctx, "node-a")
		if err == nil && st == PowerOn {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("snmpd not answering: %v %v", st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	confirm := ConfirmConfig{Timeout: 10 * time.Second, Interval: 100 * time.Millisecond}
	if st, err := SetAndConfirm(ctx, f, "node-a", PowerOff, confirm); err != nil || st != PowerOff {
		t.Fatalf("off: %v %v", st, err)
	}
	for _, n := range sw.Names[:2] {
		if !labswitch.OperDown(n) {
			t.Errorf("interface %s still up after fabric fence", n)
		}
	}
	if labswitch.OperDown(sw.Names[2]) {
		t.Errorf("node-b's port %s went down", sw.Names[2])
	}
	if st, err := f.Status(ctx, "node-b"); err != nil || st != PowerOn {
		t.Errorf("node-b: %v %v", st, err)
	}
	if st, err := SetAndConfirm(ctx, f, "node-a", PowerOn, confirm); err != nil || st != PowerOn {
		t.Fatalf("on: %v %v", st, err)
	}

	t.Run("refusals", func(t *testing.T) {
		tests := []struct {
			name string
			mod  func(*FabricConfig)
			want string
		}{
			{"wrong auth passphrase", func(c *FabricConfig) { c.AuthPassphrase = "not-the-one" }, ""},
			{"unknown user", func(c *FabricConfig) { c.User = "nobody" }, ""},
		}
		for _, tc := range tests {
			c := cfg
			c.Timeout, c.Retries = 300*time.Millisecond, 1
			tc.mod(&c)
			f2, err := NewFabric(c)
			if err != nil {
				t.Fatal(err)
			}
			if err := f2.Off(ctx, "node-a"); err == nil {
				t.Errorf("%s: SET accepted", tc.name)
			} else if strings.Contains(err.Error(), c.AuthPassphrase) || strings.Contains(err.Error(), c.PrivPassphrase) {
				t.Errorf("%s: error leaks a passphrase: %v", tc.name, err)
			}
			if labswitch.OperDown(sw.Names[0]) {
				t.Fatalf("%s: port went down", tc.name)
			}
		}
		if _, err := f.Status(ctx, "node-z"); !errors.Is(err, ErrUnknownTarget) {
			t.Errorf("unknown node: %v", err)
		}
	})
}

func TestNewFabricRefusesWeakConfig(t *testing.T) {
	base := FabricConfig{Address: "127.0.0.1:1161", User: "u", AuthPassphrase: "12345678", PrivPassphrase: "12345678"}
	tests := []struct {
		name string
		mod  func(*FabricConfig)
	}{
		{"no port", func(c *FabricConfig) { c.Address = "127.0.0.1" }},
		{"no user", func(c *FabricConfig) { c.User = "" }},
		{"short passphrase", func(c *FabricConfig) { c.PrivPassphrase = "short" }},
		{"MD5", func(c *FabricConfig) { c.AuthProtocol = "MD5" }},
		{"DES", func(c *FabricConfig) { c.PrivProtocol = "DES" }},
	}
	for _, tc := range tests {
		c := base
		tc.mod(&c)
		if _, err := NewFabric(c); err == nil {
			t.Errorf("%s: accepted", tc.name)
		} else if strings.Contains(err.Error(), "12345678") {
			t.Errorf("%s: error leaks a passphrase: %v", tc.name, err)
		}
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(verb, base); strings.Contains(s, "12345678") {
			t.Errorf("config prints its passphrase with %s: %s", verb, s)
		}
	}
}
