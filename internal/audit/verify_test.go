package audit_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"atelier/internal/audit"
)

// writeChain writes n entries to a fresh log and returns the file's lines,
// newlines included.
func writeChain(t *testing.T, n int) (path string, lines [][]byte) {
	t.Helper()
	l := openLog(t, t.TempDir(), audit.Options{Sync: audit.SyncNever})
	for i := range n {
		mustAppend(t, l, actionEntry(sess, i))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(l.Path(sess))
	if err != nil {
		t.Fatal(err)
	}
	return l.Path(sess), bytes.SplitAfter(raw, []byte("\n"))[:n]
}

func hashOf(line []byte) string {
	sum := sha256.Sum256(bytes.TrimSuffix(line, []byte("\n")))
	return hex.EncodeToString(sum[:])
}

func prevIn(line []byte) string {
	_, p, _ := bytes.Cut(line, []byte(`"prev":"`))
	return string(p[:min(64, len(p))])
}

func TestVerifyNamesTheFirstBrokenLink(t *testing.T) {
	type tamper func(t *testing.T, lines [][]byte) [][]byte
	cases := []struct {
		name   string
		tamper tamper
		// want is the break; Want/Found "" are filled from the lines.
		want func(lines [][]byte) audit.Break
	}{{
		name: "edit a byte keeping the JSON valid",
		tamper: func(t *testing.T, lines [][]byte) [][]byte {
			lines[4] = bytes.Replace(lines[4], []byte("token:ops"), []byte("token:opz"), 1)
			return lines
		},
		want: func(lines [][]byte) audit.Break {
			return audit.Break{Line: 6, Problem: audit.ProblemPrev, Want: hashOf(lines[4]), Found: prevIn(lines[5])}
		},
	}, {
		name: "edit a byte breaking the JSON",
		tamper: func(t *testing.T, lines [][]byte) [][]byte {
			lines[2] = bytes.Replace(lines[2], []byte(`"kind":`), []byte(`"kind";`), 1)
			return lines
		},
		want: func([][]byte) audit.Break {
			return audit.Break{Line: 3, Problem: audit.ProblemEntry, Want: "a valid entry"}
		},
	}, {
		name: "edit a seq",
		tamper: func(t *testing.T, lines [][]byte) [][]byte {
			lines[6] = bytes.Replace(lines[6], []byte(`"seq":7,`), []byte(`"seq":8,`), 1)
			return lines
		},
		want: func([][]byte) audit.Break {
			return audit.Break{Line: 7, Problem: audit.ProblemSeq, Want: "7", Found: "8"}
		},
	}, {
		name: "edit the first line",
		tamper: func(t *testing.T, lines [][]byte) [][]byte {
			lines[0] = bytes.Replace(lines[0], []byte(`"prev":"0`), []byte(`"prev":"1`), 1)
			return lines
		},
		want: func(lines [][]byte) audit.Break {
			return audit.Break{Line: 1, Problem: audit.ProblemPrev, Want: audit.Genesis, Found: prevIn(lines[0])}
		},
	}, {
		name:   "delete a line",
		tamper: func(t *testing.T, lines [][]byte) [][]byte { return append(lines[:3], lines[4:]...) },
		want: func([][]byte) audit.Break {
			return audit.Break{Line: 4, Problem: audit.ProblemSeq, Want: "4", Found: "5"}
		},
	}, {
		name: "swap two lines",
		tamper: func(t *testing.T, lines [][]byte) [][]byte {
			lines[5], lines[6] = lines[6], lines[5]
			return lines
		},
		want: func([][]byte) audit.Break {
			return audit.Break{Line: 6, Problem: audit.ProblemSeq, Want: "6", Found: "7"}
		},
	}, {
		name: "truncate mid-line",
		tamper: func(t *testing.T, lines [][]byte) [][]byte {
			lines[9] = lines[9][:40]
			return lines
		},
		want: func([][]byte) audit.Break {
			return audit.Break{Line: 10, Problem: audit.ProblemTorn, Want: "a line ending in a newline", Found: "40 bytes and the end of the file"}
		},
	}, {
		name:   "append junk",
		tamper: func(t *testing.T, lines [][]byte) [][]byte { return append(lines, []byte("junk\n")) },
		want: func([][]byte) audit.Break {
			return audit.Break{Line: 11, Problem: audit.ProblemEntry, Want: "a valid entry"}
		},
	}, {
		name: "append a valid-looking entry of another session",
		tamper: func(t *testing.T, lines [][]byte) [][]byte {
			forged := bytes.Replace(lines[9], []byte(sess), []byte("sess_other"), 1)
			return append(lines, forged)
		},
		want: func([][]byte) audit.Break {
			return audit.Break{Line: 11, Problem: audit.ProblemSession, Want: `"` + sess + `"`, Found: `"sess_other"`}
		},
	}, {
		name: "append a copy of the last line",
		tamper: func(t *testing.T, lines [][]byte) [][]byte {
			return append(lines, lines[9])
		},
		want: func([][]byte) audit.Break {
			return audit.Break{Line: 11, Problem: audit.ProblemSeq, Want: "11", Found: "10"}
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path, lines := writeChain(t, 10)
			if rep := mustVerify(t, path); rep.Entries != 10 {
				t.Fatalf("untampered file: %+v", rep)
			}
			lines = c.tamper(t, lines)
			if err := os.WriteFile(path, bytes.Join(lines, nil), 0o600); err != nil {
				t.Fatal(err)
			}
			rep, err := audit.Verify(path)
			var got *audit.Break
			if !errors.As(err, &got) {
				t.Fatalf("Verify = %v, want a *Break", err)
			}
			want := c.want(lines)
			want.File = path
			want.Offset = int64(len(bytes.Join(lines[:want.Line-1], nil)))
			if want.Problem == audit.ProblemEntry && want.Want == "a valid entry" {
				want.Found = got.Found // the decoder's message
			}
			if diff := cmp.Diff(want, *got); diff != "" {
				t.Errorf("break (-want +got):\n%s\nerror: %v", diff, err)
			}
			if rep.Entries != want.Line-1 {
				t.Errorf("report counts %d verified entries, want %d", rep.Entries, want.Line-1)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), want.Want) {
				t.Errorf("message %q does not name the file and what was expected", err)
			}
		})
	}
}

func TestVerifyEmptyAndMissing(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "s.jsonl")
	os.WriteFile(empty, nil, 0o600)
	if rep := mustVerify(t, empty); rep.Entries != 0 || rep.LastHash != audit.Genesis {
		t.Errorf("empty file: %+v", rep)
	}
	var brk *audit.Break
	if _, err := audit.Verify(filepath.Join(dir, "none.jsonl")); err == nil || errors.As(err, &brk) {
		t.Errorf("missing file: err = %v, want an I/O error", err)
	}
}

func TestVerifyChecksTheFileName(t *testing.T) {
	path, _ := writeChain(t, 2)
	renamed := filepath.Join(filepath.Dir(path), "sess_other.jsonl")
	os.Rename(path, renamed)
	_, err := audit.Verify(renamed)
	var brk *audit.Break
	if !errors.As(err, &brk) || brk.Line != 1 || brk.Problem != audit.ProblemSession {
		t.Errorf("renamed file: err = %v, want a session break at line 1", err)
	}
}

func TestTornTailIsKeptAsideAndRecorded(t *testing.T) {
	cases := map[string]struct {
		torn string
		why  string
	}{
		"no newline":       {`{"time":"2026-08-01T10:00:00Z","seq":4,"sess`, "no newline at the end"},
		"zeros":            {"\x00\x00\x00\x00\x00\x00", "no newline at the end"},
		"invalid the line": {"{\"seq\":4}\n", "last line is not a valid entry"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, audit.Options{})
			for i := range 3 {
				mustAppend(t, l, actionEntry(sess, i))
			}
			l.Close()
			path := l.Path(sess)
			good, _ := os.ReadFile(path)
			f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString(c.torn)
			f.Close()

			var brk *audit.Break
			if _, err := audit.Verify(path); !errors.As(err, &brk) || brk.Line != 4 {
				t.Fatalf("Verify of the torn file = %v, want a break at line 4", err)
			}
			l = openLog(t, dir, audit.Options{}) // the next start repairs, before any append
			if n := len(readAll(t, l, sess, audit.Filter{})); n != 4 {
				t.Fatalf("after reopening, %d entries, want 3 and the repair", n)
			}
			e := mustAppend(t, l, actionEntry(sess, 9))
			if e.Seq != 5 {
				t.Errorf("the entry after the repair has seq %d, want 5 (3 good, 1 repair)", e.Seq)
			}
			all := readAll(t, l, sess, audit.Filter{})
			if len(all) != 5 {
				t.Fatalf("read %d entries, want 5", len(all))
			}
			rep := all[3]
			if rep.Kind != audit.KindAudit || rep.Actor != audit.ActorFleet || rep.Detail["event"] != "repair" ||
				!strings.HasPrefix(rep.Detail["reason"].(string), c.why) ||
				rep.Detail["torn_bytes"] != float64(len(c.torn)) || rep.Detail["offset"] != float64(len(good)) {
				t.Errorf("repair entry = %+v", rep)
			}
			kept, err := os.ReadFile(filepath.Join(dir, rep.Detail["torn_file"].(string)))
			if err != nil || string(kept) != c.torn {
				t.Errorf("torn bytes kept aside = %q, %v; want %q", kept, err, c.torn)
			}
			sum := sha256.Sum256([]byte(c.torn))
			if rep.Detail["torn_sha256"] != hex.EncodeToString(sum[:]) {
				t.Errorf("torn_sha256 = %v", rep.Detail["torn_sha256"])
			}
			if r := mustVerify(t, path); r.Entries != 5 || r.Repairs != 1 {
				t.Errorf("Verify after repair = %+v, want 5 entries and 1 repair", r)
			}
			now, _ := os.ReadFile(path)
			if !bytes.HasPrefix(now, good) {
				t.Error("the good lines were rewritten")
			}
		})
	}
}

func TestDamageBeyondTheTailIsRefused(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, audit.Options{})
	mustAppend(t, l, actionEntry(sess, 1))
	l.Close()
	path := l.Path(sess)
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("junk\ntorn")
	f.Close()
	before, _ := os.ReadFile(path)
	l = openLog(t, dir, audit.Options{}) // logs the damage, and opens anyway
	mustAppend(t, l, actionEntry("sess_other", 1))
	if _, err := l.Append(t.Context(), actionEntry(sess, 2)); err == nil || !strings.Contains(err.Error(), "audit verify") {
		t.Errorf("Append on a file damaged beyond its last line = %v, want an error sending to audit verify", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("a damaged file was changed")
	}
	if ents, _ := filepath.Glob(filepath.Join(dir, "*"+audit.TornSuffix+"*")); len(ents) != 0 {
		t.Errorf("torn files written for damage the log does not repair: %v", ents)
	}
}
