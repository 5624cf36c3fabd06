//go:build !amd64

package seccomp

import (
	"fmt"
	"runtime"

	"golang.org/x/net/bpf"
)

func program() ([]bpf.Instruction, error) {
	return nil, fmt.Errorf("seccomp: the desktop filter is written for amd64, not %s", runtime.GOARCH)
}
