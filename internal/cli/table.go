package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// printTable writes a header and one aligned line per row to stdout; with
// no rows it tells people, on stderr, what empty means and what to do.
func printTable(env *Env, empty, header string, rows [][]string) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(env.Stderr, empty)
		return err
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// printFields writes name/value pairs aligned, leaving out empty values.
func printFields(w io.Writer, fields [][2]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range fields {
		if f[1] != "" {
			fmt.Fprintf(tw, "%s\t%s\n", f[0], f[1])
		}
	}
	return tw.Flush()
}
