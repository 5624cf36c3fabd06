// Package version holds the build's version, set at link time by the Makefile.
package version

// Version is the build's version ("dev" for a plain go build).
var Version = "dev"
