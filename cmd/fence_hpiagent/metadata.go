package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

func getoptMixed(p param) string {
	var s string
	if p.short != "" {
		s = p.short + ", "
	}
	s += p.long
	if p.value != "" {
		s += "=[" + p.value + "]"
	}
	return s
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), `"`, "&#34;")
}

// writeMetadata prints the agent's metadata in the form fencing.py prints
// it; it validates against fence-agents' metadata.rng.
func writeMetadata(w io.Writer) {
	fmt.Fprintln(w, `<?xml version="1.0" ?>`)
	fmt.Fprintln(w, `<resource-agent name="fence_hpiagent" shortdesc="Fence agent for AdvancedTCA blades through hpiagent" >`)
	fmt.Fprintln(w, "<longdesc>"+esc("fence_hpiagent fences cluster nodes that are AdvancedTCA blades through the local hpiagent daemon. "+
		"hpiagent's cluster leader, holding quorum, logs the decision, powers the blade off through the shelf manager "+
		"(PICMG power level or FRU deactivation), IPMI chassis power or the fabric switch ports, in the configured order, "+
		"and reports success only once the off state has been read back from the hardware. "+
		"The agent talks to hpiagent over HTTPS with mutual TLS 1.3; its client certificate must carry the fencer role.")+"</longdesc>")
	fmt.Fprintln(w, "<vendor-url></vendor-url>")
	fmt.Fprintln(w, "<parameters>")
	emit := func(p param, name, extra string) {
		req := "0"
		if p.required {
			req = "1"
		}
		fmt.Fprintf(w, "\t<parameter name=\"%s\" unique=\"0\" required=\"%s\"%s>\n", name, req, extra)
		fmt.Fprintf(w, "\t\t<getopt mixed=\"%s\" />\n", esc(getoptMixed(p)))
		def := ""
		if p.def != "" {
			def = fmt.Sprintf(" default=\"%s\"", esc(p.def))
		}
		switch {
		case len(p.choices) > 0:
			fmt.Fprintf(w, "\t\t<content type=\"select\"%s >\n", def)
			for _, c := range p.choices {
				fmt.Fprintf(w, "\t\t\t<option value=\"%s\" />\n", esc(c))
			}
			fmt.Fprintln(w, "\t\t</content>")
		default:
			fmt.Fprintf(w, "\t\t<content type=\"%s\"%s />\n", p.typ, def)
		}
		fmt.Fprintf(w, "\t\t<shortdesc lang=\"en\">%s</shortdesc>\n", esc(p.shortdesc))
		fmt.Fprintln(w, "\t</parameter>")
	}
	for _, p := range sortedParams() {
		if p.obsoletes != "" {
			emit(p, p.name, fmt.Sprintf(" obsoletes=\"%s\"", p.obsoletes))
			q := p
			q.required = false
			emit(q, p.obsoletes, ` deprecated="1"`)
			continue
		}
		emit(p, p.name, "")
	}
	fmt.Fprintln(w, "</parameters>")
	fmt.Fprintln(w, "<actions>")
	fmt.Fprintln(w, "\t<action name=\"on\" automatic=\"0\"/>")
	for _, a := range actions[1:] {
		fmt.Fprintf(w, "\t<action name=\"%s\" />\n", a)
	}
	fmt.Fprintln(w, "</actions>")
	fmt.Fprintln(w, "</resource-agent>")
}
