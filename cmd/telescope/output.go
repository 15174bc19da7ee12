package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// An output is one file a command writes at its end (--report, --metrics-out, --html),
// resolved and checked before any input is read, so a mistyped directory fails at once
// instead of after an hour of replay.
//
// A regular file (or a path that does not exist yet) is written atomically: a temporary
// file in the same directory, fsync, rename over the target, keeping an existing file's
// permission bits (new files get 0644 minus the umask). Anything else (a character
// device such as /dev/null, a FIFO, /dev/stdout, /proc/self/fd/N from a shell's process
// substitution) is opened and written in place, never replaced.
type output struct {
	flag   string // "--report"
	path   string // as given
	stdout bool   // "-"
	// inPlace: write through the existing node (device, FIFO, terminal, /dev/fd/N).
	inPlace bool
	// target is the file the rename replaces (symlinks resolved) for atomic writes.
	target string
	mode   os.FileMode
	info   os.FileInfo // the existing node, for the distinctness check
}

// outputSpec names a flag and its value; an empty path means the flag was not given.
type outputSpec struct{ flag, path string }

// checkOutputs resolves and checks every output path given: each must be creatable or
// writable, and no two may name the same file (that would silently keep only the last).
func checkOutputs(stdout io.Writer, specs ...outputSpec) ([]*output, error) {
	var outs []*output
	for _, s := range specs {
		if s.path == "" {
			outs = append(outs, nil)
			continue
		}
		o, err := resolveOutput(s.flag, s.path, stdout)
		if err != nil {
			return nil, err
		}
		for _, prev := range outs {
			if prev != nil && sameOutput(prev, o) {
				return nil, fmt.Errorf("%w: %s %s and %s %s are the same file; give each its own", errUsage, prev.flag, prev.path, o.flag, o.path)
			}
		}
		outs = append(outs, o)
	}
	return outs, nil
}

func resolveOutput(flag, path string, stdout io.Writer) (*output, error) {
	o := &output{flag: flag, path: path}
	if path == "-" {
		o.stdout = true
		if f, ok := stdout.(*os.File); ok {
			o.info, _ = f.Stat()
		}
		return o, nil
	}
	st, err := os.Stat(path)
	switch {
	case err == nil && st.IsDir():
		return nil, fmt.Errorf("%s %s: is a directory", flag, path)
	case err == nil && (!st.Mode().IsRegular() || isKernelPath(path)):
		// A device, FIFO, socket or a /dev/fd, /proc/self/fd link: write through it.
		// Not opened now: opening a FIFO waits for its reader, and a device may act on open.
		o.inPlace, o.info = true, st
		if err := unix.Access(path, unix.W_OK); err != nil {
			return nil, fmt.Errorf("%s %s: not writable: %w", flag, path, err)
		}
		return o, nil
	case err == nil:
		target, err := filepath.EvalSymlinks(path)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", flag, path, unwrapPath(err))
		}
		o.target, o.mode, o.info = target, st.Mode().Perm(), st
	case errors.Is(err, os.ErrNotExist):
		dir := filepath.Dir(path)
		if rd, err := filepath.EvalSymlinks(dir); err == nil {
			dir = rd
		}
		o.target, o.mode = filepath.Join(dir, filepath.Base(path)), 0o644&^umask()
	default:
		return nil, fmt.Errorf("%s %s: %w", flag, path, unwrapPath(err))
	}
	// The temporary file is made in the target's directory: prove now that it can be.
	tmp, err := os.CreateTemp(filepath.Dir(o.target), ".telescope-check-*")
	if err != nil {
		return nil, fmt.Errorf("%s %s: cannot create files in %s: %w", flag, path, filepath.Dir(o.target), unwrapPath(err))
	}
	tmp.Close()
	os.Remove(tmp.Name())
	return o, nil
}

// isKernelPath reports whether path names a node the kernel made (/dev/stdout, /dev/fd/N,
// /proc/self/fd/N): even when it resolves to a regular file it must be written through,
// never renamed over.
func isKernelPath(path string) bool {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	return strings.HasPrefix(abs, "/dev/") || strings.HasPrefix(abs, "/proc/")
}

func sameOutput(a, b *output) bool {
	if a.stdout && b.stdout {
		return true
	}
	if a.info != nil && b.info != nil && os.SameFile(a.info, b.info) {
		return true
	}
	return a.target != "" && a.target == b.target
}

// write writes the output: to stdout, in place, or atomically.
func (o *output) write(stdout io.Writer, write func(io.Writer) error) error {
	switch {
	case o.stdout:
		return write(stdout)
	case o.inPlace:
		f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		bw := bufio.NewWriterSize(f, 64<<10)
		if err := write(bw); err != nil {
			f.Close()
			return err
		}
		if err := bw.Flush(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	tmp, err := os.CreateTemp(filepath.Dir(o.target), ".telescope-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	bw := bufio.NewWriterSize(tmp, 64<<10)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Chmod(o.mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), o.target); err != nil {
		return err
	}
	// Make the rename itself durable.
	if d, err := os.Open(filepath.Dir(o.target)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// umask returns the process umask from /proc/self/status (Linux ≥ 4.7), else 022.
func umask() os.FileMode {
	b, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				if n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					return os.FileMode(n) & 0o777
				}
			}
		}
	}
	return 0o022
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
