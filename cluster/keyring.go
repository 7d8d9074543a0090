package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// Keyring rotation, cluster-wide: InstallKey on every member, then UseKey
// (every member encrypts with the new key while all still decrypt the old
// one), then RemoveKey of the old key. Each call applies the operation here
// and, over mutual TLS RPC, on every other listed node that gossip sees
// alive; it returns the nodes where it failed (joined errors). A node that
// was down misses the operation and must get its keys from its own secret
// store before it can rejoin.

type keyringReq struct {
	Op  string `json:"op"`
	Key []byte `json:"key"`
}

// keyID names a key in logs without revealing it.
func keyID(k []byte) string {
	s := sha256.Sum256(append([]byte("hpiagent gossip key id:"), k...))
	return hex.EncodeToString(s[:6])
}

func (c *Cluster) applyKeyOp(op string, key []byte) error {
	if c.keyring == nil {
		return ErrClosed
	}
	var err error
	switch op {
	case "install":
		if err = memberlist.ValidateKey(key); err == nil {
			err = c.keyring.AddKey(key)
		}
	case "use":
		err = c.keyring.UseKey(key)
	case "remove":
		err = c.keyring.RemoveKey(key)
	default:
		return fmt.Errorf("unknown keyring operation %q", op)
	}
	if err != nil {
		return fmt.Errorf("gossip keyring %s of key %s: %w", op, keyID(key), err)
	}
	c.log.Info("cluster: gossip keyring changed", "audit", true, "op", op, "key_id", keyID(key))
	return nil
}

func (c *Cluster) handleKeyring(ctx context.Context, from string, raw json.RawMessage) (any, error) {
	var req keyringReq
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, fmt.Errorf("decoding keyring request: %w", err)
	}
	c.log.Info("cluster: keyring request", "audit", true, "from", from, "op", req.Op, "key_id", keyID(req.Key))
	if err := c.applyKeyOp(req.Op, req.Key); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (c *Cluster) keyOpEverywhere(ctx context.Context, op string, key []byte) error {
	if err := c.applyKeyOp(op, key); err != nil {
		return err
	}
	var errs []error
	alive := map[string]bool{}
	if c.ml != nil {
		for _, m := range c.ml.Members() {
			alive[m.Name] = true
		}
	}
	for _, n := range c.cfg.Nodes {
		if n.Name == c.cfg.NodeName {
			continue
		}
		if !alive[n.Name] {
			errs = append(errs, fmt.Errorf("gossip keyring %s on %q: not alive, skipped", op, n.Name))
			continue
		}
		if err := c.Call(ctx, n.Name, methodKeyring, keyringReq{Op: op, Key: key}, nil); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// InstallKey adds key to the gossip keyring of every member (it decrypts
// with it; the primary key still encrypts).
func (c *Cluster) InstallKey(ctx context.Context, key []byte) error {
	return c.keyOpEverywhere(ctx, "install", key)
}

// UseKey makes an installed key the primary (encrypting) key everywhere.
func (c *Cluster) UseKey(ctx context.Context, key []byte) error {
	return c.keyOpEverywhere(ctx, "use", key)
}

// RemoveKey removes a key that is not primary from every member's keyring.
func (c *Cluster) RemoveKey(ctx context.Context, key []byte) error {
	return c.keyOpEverywhere(ctx, "remove", key)
}

// KeyIDs returns the IDs (not the keys) of this node's gossip keys, primary
// first.
func (c *Cluster) KeyIDs() []string {
	if c.keyring == nil {
		return nil
	}
	prim := c.keyring.GetPrimaryKey()
	ids := []string{keyID(prim)}
	for _, k := range c.keyring.GetKeys() {
		if string(k) != string(prim) {
			ids = append(ids, keyID(k))
		}
	}
	return ids
}
