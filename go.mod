module hpiagent

go 1.26.0

require (
	github.com/bougou/go-ipmi v0.9.1 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
