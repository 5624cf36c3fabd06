package audit_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"atelier/internal/audit"
)

// helperDirEnv tells the test binary, re-run as a child, to be the writer
// of TestKill9KeepsEveryAcknowledgedEntry.
const helperDirEnv = "ATELIER_AUDIT_HELPER_DIR"

// TestHelperWriter is the child process: 4 writers append 1000 entries to
// one session in total and print each acknowledged seq.
func TestHelperWriter(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("helper process of TestKill9KeepsEveryAcknowledgedEntry; runs only as its child")
	}
	l, err := audit.Open(dir, audit.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 250 {
				e, err := l.Append(t.Context(), actionEntry(sess, w*1000+i))
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintln(os.Stdout, e.Seq) // os.Stdout is unbuffered: printed means acknowledged
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	os.Exit(0)
}

func TestKill9KeepsEveryAcknowledgedEntry(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[int64]bool{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		seq, err := strconv.ParseInt(sc.Text(), 10, 64)
		if err != nil {
			continue // the test framework's own output
		}
		acked[seq] = true
		if len(acked) == 300 {
			cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed mid-burst: %v (acknowledged %d of 1000)", err, len(acked))
	}
	if len(acked) >= 1000 {
		t.Fatalf("the child acknowledged all 1000 entries before the kill: the test proves nothing")
	}

	l := openLog(t, dir, audit.Options{})
	after := mustAppend(t, l, actionEntry(sess, -1)) // opens the file: repairs a torn tail if any
	present := map[int64]bool{}
	for _, e := range readAll(t, l, sess, audit.Filter{}) {
		present[e.Seq] = true
	}
	for seq := range acked {
		if !present[seq] {
			t.Errorf("acknowledged seq %d is missing after kill -9", seq)
		}
	}
	rep := mustVerify(t, l.Path(sess))
	if rep.LastSeq != after.Seq {
		t.Errorf("chain ends at %d, want %d", rep.LastSeq, after.Seq)
	}
	t.Logf("killed after %d acknowledged entries; %d lines on disk; %d repairs", len(acked), rep.Entries, rep.Repairs)
}
