// Command probe runs in a terminal inside a test desktop: it puts the tty in
// raw mode, turns on xterm SGR mouse reporting, writes the terminal size to
// OUT.size and then every byte it receives to OUT, unbuffered.
package main

import (
	"fmt"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: probe OUT")
		os.Exit(2)
	}
	out, err := os.OpenFile(os.Args[1], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fail(err)
	}
	t, err := unix.IoctlGetTermios(0, unix.TCGETS)
	if err != nil {
		fail(err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(0, unix.TCSETS, t); err != nil {
		fail(err)
	}
	// Mouse: report presses, releases and motion with a button held, in SGR form.
	os.Stdout.WriteString("\x1b[?1000h\x1b[?1002h\x1b[?1006h")
	// The terminal may be resized after it starts (tiling): keep the size file current.
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, unix.SIGWINCH)
	writeSize(os.Args[1] + ".size")
	go func() {
		for range winch {
			writeSize(os.Args[1] + ".size")
		}
	}()
	buf := make([]byte, 4096)
	for {
		n, err := os.Stdin.Read(buf)
		if n > 0 {
			out.Write(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// writeSize writes "rows cols xpixels ypixels" of the terminal to path.
func writeSize(path string) {
	ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ)
	if err != nil {
		fail(err)
	}
	size := fmt.Sprintf("%d %d %d %d\n", ws.Row, ws.Col, ws.Xpixel, ws.Ypixel)
	if err := os.WriteFile(path+".tmp", []byte(size), 0o644); err != nil {
		fail(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "probe:", err)
	os.Exit(1)
}
