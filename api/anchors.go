package api

import "time"

// AuditAnchor is one member's audit log head as the cluster log holds it:
// pass Seq and Hash to hpictl audit verify --anchor <seq>:<hash> to check
// that member's audit log was not cut short or rewritten.
type AuditAnchor struct {
	Node  string    `json:"node"`
	Seq   uint64    `json:"seq"`
	Hash  string    `json:"hash"`
	Time  time.Time `json:"time"`
	Index uint64    `json:"index"`
}

// AuditAnchorConflict is an anchor that contradicts an earlier one of the
// same member: evidence that its audit log was cut or rewritten.
type AuditAnchorConflict struct {
	Node    string      `json:"node"`
	Reason  string      `json:"reason"`
	Earlier AuditAnchor `json:"earlier"`
	Later   AuditAnchor `json:"later"`
}

// AuditAnchorsView is the answer of GET /v1/audit/anchors: the newest
// anchor of every member, or with ?node= every anchor kept for that
// member, and the conflicts (of that member).
type AuditAnchorsView struct {
	Anchors   []AuditAnchor         `json:"anchors"`
	Conflicts []AuditAnchorConflict `json:"conflicts"`
}

func (s *Server) getAuditAnchors(c *call) (any, error) {
	node := c.r.URL.Query().Get("node")
	if node != "" && !nodeNamePattern.MatchString(node) {
		return nil, newErr(CodeBadRequest, "node: not a node name")
	}
	if s.anchors == nil {
		return nil, notConfigured("the cluster (audit anchors)")
	}
	v := AuditAnchorsView{Anchors: []AuditAnchor{}, Conflicts: []AuditAnchorConflict{}}
	if node == "" {
		v.Anchors = append(v.Anchors, s.anchors.LatestAnchors()...)
	} else {
		v.Anchors = append(v.Anchors, s.anchors.NodeAnchors(node)...)
	}
	for _, cf := range s.anchors.AnchorConflicts() {
		if node == "" || cf.Node == node {
			v.Conflicts = append(v.Conflicts, cf)
		}
	}
	return v, nil
}
