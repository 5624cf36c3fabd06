package local

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseStat(t *testing.T) {
	self, err := readStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if self.state != 'R' && self.state != 'S' || self.ppid != os.Getppid() || self.ticks == 0 {
		t.Errorf("own stat: %+v (ppid %d)", self, os.Getppid())
	}
	fields := " S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10"
	st, err := parseStat("42 (a) b (c)) d)" + fields)
	if err != nil || st.state != 'S' || st.ppid != 1 || st.ticks != 98765 {
		t.Errorf("command name with ')' and spaces: %+v %v", st, err)
	}
	for _, bad := range []string{"", "42 (x", "42 (x) S 1", "42 (x) SS 1" + fields[2:], "42 (x) S -1" + fields[4:], "42 (x)" + strings.Replace(fields, "98765", "-3", 1)} {
		if st, err := parseStat(bad); err == nil {
			t.Errorf("parseStat(%q) = %+v, want an error", bad, st)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add("42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10")
	f.Add("1 (sh) R 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0")
	f.Fuzz(func(t *testing.T, s string) {
		st, err := parseStat(s)
		if err != nil {
			return
		}
		if !strings.Contains(s, ")") || st.ppid < 0 {
			t.Errorf("parseStat(%q) accepted: %+v", s, st)
		}
	})
}

func TestCheckID(t *testing.T) {
	for _, ok := range []string{"a", "sess_abc234", "x-y_z", strings.Repeat("a", 64)} {
		if err := checkID(ok); err != nil {
			t.Errorf("checkID(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "../x", "a/b", "A", "-a", "_a", "a b", strings.Repeat("a", 65), "a\x00"} {
		if checkID(bad) == nil {
			t.Errorf("checkID(%q) accepted", bad)
		}
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	// A link planted under the target name is replaced, not followed.
	outside := filepath.Join(t.TempDir(), "outside")
	os.WriteFile(outside, []byte("keep"), 0o600)
	os.Symlink(outside, filepath.Join(dir, "budget"))
	if err := writeFileAtomic(dir, "budget", []byte("new"), os.Getuid(), os.Getgid(), 0o640); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(dir, "budget"))
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o640 {
		t.Fatalf("budget: %v %v, want a regular file with mode 0640", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep" {
		t.Errorf("the link's target was written: %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}
