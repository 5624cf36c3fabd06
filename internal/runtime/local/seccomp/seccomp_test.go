//go:build amd64

package seccomp

import (
	"encoding/binary"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// data lays out a struct seccomp_data for the VM. The VM loads words
// big-endian (it was made for packets) where the kernel loads them in the
// host's order; laying each 32-bit word out big-endian gives the program
// the values the kernel would: args[0]'s low word at its offset (16), its
// high word at 20, as on x86-64.
func data(arch, nr uint32, arg0 uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], nr)
	binary.BigEndian.PutUint32(b[4:], arch)
	binary.BigEndian.PutUint32(b[16:], uint32(arg0))
	binary.BigEndian.PutUint32(b[20:], uint32(arg0>>32))
	return b
}

const (
	allow  = unix.SECCOMP_RET_ALLOW
	kill   = unix.SECCOMP_RET_KILL_PROCESS
	eperm  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	enosys = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
)

// TestFilter runs the filter in a BPF interpreter over calls a desktop
// makes and calls an exploit would.
func TestFilter(t *testing.T) {
	vm, err := bpf.NewVM(Program())
	if err != nil {
		t.Fatal(err)
	}
	const x86 = unix.AUDIT_ARCH_X86_64
	// What fork, pthread_create's fallback and a Go thread pass to clone.
	const fork = uint64(unix.SIGCHLD) | unix.CLONE_CHILD_SETTID | unix.CLONE_CHILD_CLEARTID
	const thread = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD |
		unix.CLONE_SYSVSEM | unix.CLONE_SETTLS | unix.CLONE_PARENT_SETTID | unix.CLONE_CHILD_CLEARTID
	for _, c := range []struct {
		name string
		arch uint32
		nr   uint32
		arg0 uint64
		want uint32
	}{
		{"read", x86, unix.SYS_READ, 0, allow},
		{"openat", x86, unix.SYS_OPENAT, 0, allow},
		{"mmap", x86, unix.SYS_MMAP, 0, allow},
		{"seccomp (a browser's own sandbox)", x86, unix.SYS_SECCOMP, 1, allow},
		{"prctl", x86, unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, allow},
		{"vmsplice", x86, unix.SYS_VMSPLICE, 0, allow},
		{"clone for fork", x86, unix.SYS_CLONE, fork, allow},
		{"clone for a thread", x86, unix.SYS_CLONE, thread, allow},
		{"clone with a pidfd", x86, unix.SYS_CLONE, fork | unix.CLONE_PIDFD, allow},
		{"unshare of the fs context", x86, unix.SYS_UNSHARE, unix.CLONE_FS | unix.CLONE_FILES, allow},
		{"personality query", x86, unix.SYS_PERSONALITY, 0xffffffff, allow},
		{"personality linux", x86, unix.SYS_PERSONALITY, 0, allow},
		{"personality linux32", x86, unix.SYS_PERSONALITY, 8, allow},

		{"keyctl", x86, unix.SYS_KEYCTL, 0, eperm},
		{"add_key", x86, unix.SYS_ADD_KEY, 0, eperm},
		{"request_key", x86, unix.SYS_REQUEST_KEY, 0, eperm},
		{"bpf", x86, unix.SYS_BPF, 0, eperm},
		{"perf_event_open", x86, unix.SYS_PERF_EVENT_OPEN, 0, eperm},
		{"userfaultfd", x86, unix.SYS_USERFAULTFD, 0, eperm},
		{"io_uring_setup", x86, unix.SYS_IO_URING_SETUP, 0, eperm},
		{"mount", x86, unix.SYS_MOUNT, 0, eperm},
		{"umount2", x86, unix.SYS_UMOUNT2, 0, eperm},
		{"pivot_root", x86, unix.SYS_PIVOT_ROOT, 0, eperm},
		{"move_mount", x86, unix.SYS_MOVE_MOUNT, 0, eperm},
		{"open_tree", x86, unix.SYS_OPEN_TREE, 0, eperm},
		{"fsopen", x86, unix.SYS_FSOPEN, 0, eperm},
		{"fsmount", x86, unix.SYS_FSMOUNT, 0, eperm},
		{"fsconfig", x86, unix.SYS_FSCONFIG, 0, eperm},
		{"fspick", x86, unix.SYS_FSPICK, 0, eperm},
		{"mount_setattr", x86, unix.SYS_MOUNT_SETATTR, 0, eperm},
		{"kexec_load", x86, unix.SYS_KEXEC_LOAD, 0, eperm},
		{"kexec_file_load", x86, unix.SYS_KEXEC_FILE_LOAD, 0, eperm},
		{"init_module", x86, unix.SYS_INIT_MODULE, 0, eperm},
		{"finit_module", x86, unix.SYS_FINIT_MODULE, 0, eperm},
		{"delete_module", x86, unix.SYS_DELETE_MODULE, 0, eperm},
		{"ptrace", x86, unix.SYS_PTRACE, unix.PTRACE_ATTACH, eperm},
		{"process_vm_readv", x86, unix.SYS_PROCESS_VM_READV, 0, eperm},
		{"process_vm_writev", x86, unix.SYS_PROCESS_VM_WRITEV, 0, eperm},
		{"setns", x86, unix.SYS_SETNS, 0, eperm},
		{"swapon", x86, unix.SYS_SWAPON, 0, eperm},
		{"reboot", x86, unix.SYS_REBOOT, 0, eperm},
		{"acct", x86, unix.SYS_ACCT, 0, eperm},
		{"quotactl", x86, unix.SYS_QUOTACTL, 0, eperm},
		{"open_by_handle_at", x86, unix.SYS_OPEN_BY_HANDLE_AT, 0, eperm},
		{"name_to_handle_at", x86, unix.SYS_NAME_TO_HANDLE_AT, 0, eperm},
		{"iopl", x86, unix.SYS_IOPL, 3, eperm},
		{"ioperm", x86, unix.SYS_IOPERM, 0, eperm},
		{"syslog", x86, unix.SYS_SYSLOG, 0, eperm},
		{"lookup_dcookie", x86, unix.SYS_LOOKUP_DCOOKIE, 0, eperm},
		{"personality without randomization", x86, unix.SYS_PERSONALITY, 0x0040000, eperm},
		{"personality read-implies-exec", x86, unix.SYS_PERSONALITY, 0x0400000, eperm},
		{"clone with a user namespace", x86, unix.SYS_CLONE, fork | unix.CLONE_NEWUSER, eperm},
		{"clone with a mount namespace", x86, unix.SYS_CLONE, fork | unix.CLONE_NEWNS, eperm},
		{"clone with a pid and net namespace", x86, unix.SYS_CLONE, unix.CLONE_NEWPID | unix.CLONE_NEWNET, eperm},
		{"unshare -r", x86, unix.SYS_UNSHARE, unix.CLONE_NEWUSER | unix.CLONE_NEWNS, eperm},
		{"unshare of the time namespace", x86, unix.SYS_UNSHARE, unix.CLONE_NEWTIME, eperm},
		{"unshare of the cgroup namespace", x86, unix.SYS_UNSHARE, unix.CLONE_NEWCGROUP, eperm},
		{"clone3, any flags", x86, unix.SYS_CLONE3, 0, enosys},
		{"x32 read", x86, x32Bit | unix.SYS_READ, 0, eperm},
		{"x32 mount", x86, x32Bit | unix.SYS_MOUNT, 0, eperm},

		{"i386 call (int 0x80)", unix.AUDIT_ARCH_I386, 1, 0, kill},
		{"aarch64 arch", unix.AUDIT_ARCH_AARCH64, unix.SYS_READ, 0, kill},
	} {
		got, err := vm.Run(data(c.arch, c.nr, c.arg0))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if uint32(got) != c.want {
			t.Errorf("%s (nr %d, arg0 %#x): %#x, want %#x", c.name, c.nr, c.arg0, uint32(got), c.want)
		}
	}
}

// TestFilterBytes: what bwrap is given is the program, 8 bytes per
// instruction in the host's (little-endian) order, within the kernel's
// limit of 4096 instructions.
func TestFilterBytes(t *testing.T) {
	b, err := Filter()
	if err != nil {
		t.Fatal(err)
	}
	want, err := bpf.Assemble(Program())
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 8*len(want) || len(want) > 4096 {
		t.Fatalf("%d bytes for %d instructions", len(b), len(want))
	}
	for i, w := range want {
		got := bpf.RawInstruction{Op: binary.LittleEndian.Uint16(b[8*i:]), Jt: b[8*i+2], Jf: b[8*i+3], K: binary.LittleEndian.Uint32(b[8*i+4:])}
		if got != w {
			t.Fatalf("instruction %d: %+v, want %+v", i, got, w)
		}
	}
	t.Logf("%d instructions", len(want))
}
