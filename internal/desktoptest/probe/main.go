// Command probe runs in a terminal inside a test desktop and records what
// the terminal sends it. It puts its tty in raw mode, turns on xterm mouse
// reporting (presses, drags, any motion, SGR encoding), logs a "ready" event
// with the terminal's size, then logs every input it receives, decoded by
// package ttyinput, as one JSON line per event in the file named by its
// argument. Desktop tests read that file.
//
//	probe LOGFILE
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"atelier/internal/desktoptest/ttyinput"
)

// Terminal modes: xterm mouse reporting of presses (1000), drags (1002) and
// any motion (1003), in SGR form (1006).
const mouseOn = "\x1b[?1000h\x1b[?1002h\x1b[?1003h\x1b[?1006h"

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: probe LOGFILE")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		// Keep the message on screen for a person looking at the desktop.
		time.Sleep(time.Minute)
		os.Exit(1)
	}
}

func run(logPath string) error {
	out, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	// One write per event: a reader never sees half a line of a complete event.
	logEvent := func(e ttyinput.Event) error {
		e.Time = time.Now()
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		_, err = out.Write(append(b, '\n'))
		return err
	}

	if err := makeRaw(0); err != nil {
		return fmt.Errorf("raw mode: %w", err)
	}
	os.Stdout.WriteString(mouseOn + "\x1b[2J\x1b[Hprobe: recording input\r\n")

	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	size, err := termSize()
	if err != nil {
		return err
	}
	if err := logEvent(ttyinput.Event{Kind: ttyinput.KindReady, Size: size}); err != nil {
		return err
	}
	go func() {
		for range winch {
			if s, err := termSize(); err == nil {
				logEvent(ttyinput.Event{Kind: ttyinput.KindResize, Size: s})
			}
		}
	}()

	buf := make([]byte, 4096)
	var pending []byte
	for {
		n, err := os.Stdin.Read(buf)
		if n > 0 {
			var evs []ttyinput.Event
			evs, pending = ttyinput.Decode(append(pending, buf[:n]...))
			for _, e := range evs {
				if err := logEvent(e); err != nil {
					return err
				}
			}
		}
		if err != nil {
			return nil // the terminal closed
		}
	}
}

// makeRaw puts the terminal on fd in raw mode: every byte as it comes, no
// echo, no signals from ctrl+c, no CR/NL translation.
func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

func termSize() (*ttyinput.Size, error) {
	ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ)
	if err != nil {
		return nil, fmt.Errorf("terminal size: %w", err)
	}
	return &ttyinput.Size{Rows: int(ws.Row), Cols: int(ws.Col), Width: int(ws.Xpixel), Height: int(ws.Ypixel)}, nil
}
