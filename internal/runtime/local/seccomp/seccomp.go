// Package seccomp builds the seccomp filter of a local-runtime desktop: a
// classic BPF program, generated here, that bwrap installs (--seccomp) on
// the desktop's first process, so every program of the desktop runs under
// it. It denies the kernel interfaces a desktop has no use for and an
// exploit from a hostile web page would: the list, with the reasons, is
// Rules. Everything else is allowed; the sandbox's namespaces, its
// unprivileged user and no_new_privs do the rest.
package seccomp

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/net/bpf"
)

// Filter returns the program as bwrap's --seccomp reads it: an array of
// struct sock_filter in the host's byte order. The filter is written for
// x86-64; elsewhere it is an error, not a desktop without a filter.
func Filter() ([]byte, error) {
	p, err := program()
	if err != nil {
		return nil, err
	}
	raw, err := bpf.Assemble(p)
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	out := make([]byte, 0, 8*len(raw))
	for _, in := range raw {
		out = binary.LittleEndian.AppendUint16(out, in.Op)
		out = append(out, in.Jt, in.Jf)
		out = binary.LittleEndian.AppendUint32(out, in.K)
	}
	return out, nil
}
