//go:build amd64

package seccomp

import (
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Offsets in struct seccomp_data: nr (int), arch (u32), instruction
// pointer (u64), args (6 × u64). Arguments are native-endian 64-bit words;
// on x86-64 (little-endian) the low 32 bits of args[0] come first.
const (
	offNR      = 0
	offArch    = 4
	offArg0Low = 16
)

// x32Bit marks the syscall numbers of the x32 ABI: the same kernel entry
// under other numbers, which a filter listing x86-64 numbers would miss.
const x32Bit = 0x40000000

// nsFlags are the clone and unshare flags that make namespaces. With them a
// process could build a user namespace in which it is root and reach
// kernel code that is otherwise for root only.
const nsFlags = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET

// Personalities (linux/personality.h), which x/sys does not name.
const (
	perLinux   = 0x0000000
	perLinux32 = 0x0000008
	uname26    = 0x0020000
)

// Rule denies syscalls. A rule with AnyBits denies only calls whose first
// argument has one of those bits; one with Unless denies every call but
// those whose first argument is one of its values.
type Rule struct {
	Why      string
	Syscalls []uint32
	Errno    unix.Errno // what the call fails with: EPERM unless set
	AnyBits  uint32
	Unless   []uint32
}

// Rules is what the filter denies, and why.
var Rules = []Rule{
	{Why: "kernel keyrings: a long record of exploits, and keys shared beyond the desktop",
		Syscalls: []uint32{unix.SYS_ADD_KEY, unix.SYS_KEYCTL, unix.SYS_REQUEST_KEY}},
	{Why: "eBPF programs and perf events: large kernel surfaces with a record of exploits, and side channels",
		Syscalls: []uint32{unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN}},
	{Why: "userfaultfd: lets an exploit pause the kernel mid-copy to win a race",
		Syscalls: []uint32{unix.SYS_USERFAULTFD}},
	{Why: "io_uring: a second path into the kernel, with a record of exploits, that no program here needs",
		Syscalls: []uint32{unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER}},
	{Why: "mounts: the desktop's file system is fixed when it starts",
		Syscalls: []uint32{unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT, unix.SYS_MOVE_MOUNT, unix.SYS_OPEN_TREE,
			unix.SYS_OPEN_TREE_ATTR, unix.SYS_FSOPEN, unix.SYS_FSMOUNT, unix.SYS_FSCONFIG, unix.SYS_FSPICK, unix.SYS_MOUNT_SETATTR}},
	{Why: "other kernels and kernel modules",
		Syscalls: []uint32{unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD, unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE}},
	{Why: "reading and writing other processes' memory and descriptors",
		Syscalls: []uint32{unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV, unix.SYS_PIDFD_GETFD}},
	{Why: "namespaces: joining one, or making one (see nsFlags)",
		Syscalls: []uint32{unix.SYS_SETNS}},
	{Why: "new namespaces through clone", Syscalls: []uint32{unix.SYS_CLONE}, AnyBits: nsFlags},
	{Why: "new namespaces through unshare", Syscalls: []uint32{unix.SYS_UNSHARE}, AnyBits: nsFlags | unix.CLONE_NEWTIME},
	// clone3 passes its flags in memory, which a filter cannot read: it
	// fails as if the kernel were too old, and glibc falls back to clone,
	// whose flags the rule above checks.
	{Why: "clone3: flags out of the filter's sight", Syscalls: []uint32{unix.SYS_CLONE3}, Errno: unix.ENOSYS},
	{Why: "the host's administration: swap, reboot, process accounting, quotas, the clock, the kernel log, I/O ports, terminals",
		Syscalls: []uint32{unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_REBOOT, unix.SYS_ACCT, unix.SYS_QUOTACTL, unix.SYS_QUOTACTL_FD,
			unix.SYS_SETTIMEOFDAY, unix.SYS_CLOCK_SETTIME, unix.SYS_CLOCK_ADJTIME, unix.SYS_ADJTIMEX, unix.SYS_SYSLOG,
			unix.SYS_IOPL, unix.SYS_IOPERM, unix.SYS_VHANGUP}},
	{Why: "file handles: open any file of a file system by its handle, around the mount namespace",
		Syscalls: []uint32{unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_NAME_TO_HANDLE_AT}},
	{Why: "file-system-wide monitoring", Syscalls: []uint32{unix.SYS_FANOTIFY_INIT}},
	{Why: "obsolete interfaces, only attack surface now",
		Syscalls: []uint32{unix.SYS_LOOKUP_DCOOKIE, unix.SYS_USELIB, unix.SYS__SYSCTL, unix.SYS_NFSSERVCTL}},
	// Personalities that turn address randomization off or make data
	// executable help exploits; the plain ones, the 32-bit one, the old
	// uname and the query (0xffffffff) stay allowed.
	{Why: "personality flags that weaken exploit mitigations", Syscalls: []uint32{unix.SYS_PERSONALITY},
		Unless: []uint32{perLinux, perLinux32, uname26, uname26 | perLinux32, 0xffffffff}},
	// Not denied: vmsplice (its old exploits are long fixed, and pipes
	// use it), and ptrace-free process inspection through /proc, which the
	// pid namespace already limits to the desktop's own processes.
}

// Program returns the filter: a call of another architecture kills the
// process (its numbers mean other syscalls); x32 calls and the calls of
// Rules fail with their errno; everything else is allowed.
func Program() []bpf.Instruction {
	p := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.AUDIT_ARCH_X86_64, SkipTrue: 1},
		bpf.RetConstant{Val: unix.SECCOMP_RET_KILL_PROCESS},
		bpf.LoadAbsolute{Off: offNR, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: x32Bit, SkipFalse: 1},
		bpf.RetConstant{Val: fail(unix.EPERM)},
	}
	for _, r := range Rules {
		body := r.body()
		for _, nr := range r.Syscalls {
			// On entry the accumulator holds the syscall number.
			p = append(p, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: uint8(len(body))})
			p = append(p, body...)
		}
	}
	return append(p, bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW})
}

// body is what runs once a rule's syscall matched; it always returns.
func (r Rule) body() []bpf.Instruction {
	errno := r.Errno
	if errno == 0 {
		errno = unix.EPERM
	}
	deny := bpf.RetConstant{Val: fail(errno)}
	allow := bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW}
	load := bpf.LoadAbsolute{Off: offArg0Low, Size: 4}
	switch {
	case r.AnyBits != 0:
		return []bpf.Instruction{load, bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: r.AnyBits, SkipFalse: 1}, deny, allow}
	case r.Unless != nil:
		b := []bpf.Instruction{load}
		for i, v := range r.Unless {
			b = append(b, bpf.JumpIf{Cond: bpf.JumpEqual, Val: v, SkipTrue: uint8(len(r.Unless) - i)})
		}
		return append(b, deny, allow)
	}
	return []bpf.Instruction{deny}
}

func fail(errno unix.Errno) uint32 { return unix.SECCOMP_RET_ERRNO | uint32(errno) }

func program() ([]bpf.Instruction, error) { return Program(), nil }
