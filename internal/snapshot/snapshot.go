// Package snapshot keeps snapshots of desktops: the home as a checksummed
// tar.gz in the data dir (<data>/snapshots/<id>.tar.gz), its metadata in
// the store, and on runtimes with images (docker) an image of the desktop's
// filesystem changes. A session created from a snapshot reads its archive
// through OpenSnapshot, which verifies the checksum and holds a lease that
// keeps the snapshot from being deleted meanwhile.
package snapshot

import (
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"atelier/internal/runtime"
	"atelier/internal/snapshot/archive"
	"atelier/internal/store"
)

// Errors of the store.
var (
	// ErrNotFound is returned for a snapshot id with no snapshot.
	ErrNotFound = store.ErrSnapshotNotFound
	// ErrInUse refuses to delete a snapshot a session is being created from.
	// It is the runtime's own refusal, so a runtime's answer and this
	// package's are one error to callers.
	ErrInUse = runtime.ErrInUse
	// ErrBadID refuses an id that is not shaped like one NewID gives.
	ErrBadID = errors.New("bad snapshot id")
	// ErrCorrupt is returned when a home archive no longer matches its checksum.
	ErrCorrupt = errors.New("snapshot archive corrupt")
)

// Desktops is what Take needs of a runtime.
type Desktops interface {
	Name() string
	ExportHome(ctx context.Context, id string, w io.Writer) error
}

// Images commits and removes desktop images, on runtimes that have them.
type Images interface {
	// CommitImage records the filesystem changes of desktop id as an image
	// for snapshot snapshotID and returns the image's reference.
	CommitImage(ctx context.Context, id, snapshotID string) (string, error)
	// RemoveImage removes an image CommitImage made.
	RemoveImage(ctx context.Context, image string) error
}

// Options configure a Store.
type Options struct {
	DB  *store.Store // required
	Dir string       // required: where archives are kept, <data>/snapshots
	// Images, if set, also snapshots each desktop's filesystem changes.
	Images Images
	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
}

// Store takes, keeps, opens and deletes snapshots. It is safe for
// concurrent use.
type Store struct {
	opts     Options
	mu       sync.Mutex
	leases   map[string]int  // open archives per snapshot id
	deleting map[string]bool // snapshots being deleted
}

// New returns a Store keeping archives in opts.Dir, which it makes.
func New(opts Options) (*Store, error) {
	if opts.DB == nil || opts.Dir == "" {
		return nil, errors.New("snapshot store: DB and Dir are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	return &Store{opts: opts, leases: map[string]int{}, deleting: map[string]bool{}}, nil
}

const idPrefix = "snap_"

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a new snapshot id: "snap_" and 128 random bits.
func NewID() string {
	var b [16]byte
	rand.Read(b[:]) // never returns an error (Go 1.24+)
	return idPrefix + idEncoding.EncodeToString(b[:])
}

// CheckID reports ErrBadID unless id has the shape NewID gives, so that an
// id is safe in a path and an image reference.
func CheckID(id string) error {
	rest, ok := strings.CutPrefix(id, idPrefix)
	if !ok || len(rest) != 26 || strings.Trim(rest, "abcdefghijklmnopqrstuvwxyz234567") != "" {
		return fmt.Errorf("%w: %q: snapshot ids look like snap_ and 26 letters and digits", ErrBadID, id)
	}
	return nil
}

func (s *Store) path(id string) string { return filepath.Join(s.opts.Dir, id+".tar.gz") }

// Take snapshots desktop sessionID of rt: its home, and its image if the
// store has Images.
func (s *Store) Take(ctx context.Context, rt Desktops, sessionID string) (store.Snapshot, error) {
	id := NewID()
	sn, err := s.take(ctx, rt, sessionID, id)
	if err != nil {
		return store.Snapshot{}, fmt.Errorf("snapshot %s: %w", sessionID, err)
	}
	s.opts.Logger.Info("snapshot taken", "snapshot", id, "session", sessionID, "bytes", sn.Size, "files", sn.Files, "image", sn.Image)
	return sn, nil
}

func (s *Store) take(ctx context.Context, rt Desktops, sessionID, id string) (sn store.Snapshot, err error) {
	// The image is committed while the home is archived: on some storage
	// drivers a commit takes seconds whatever the size of the changes.
	var image string
	var commitErr error
	var committing sync.WaitGroup
	if s.opts.Images != nil {
		committing.Go(func() { image, commitErr = s.opts.Images.CommitImage(ctx, sessionID, id) })
	}
	defer func() {
		committing.Wait()
		if err == nil {
			err = commitErr
		}
		if err != nil && image != "" {
			s.opts.Images.RemoveImage(context.WithoutCancel(ctx), image)
		}
	}()
	info, err := s.writeArchive(ctx, rt, sessionID, id)
	if err != nil {
		return store.Snapshot{}, err
	}
	committing.Wait()
	if commitErr != nil {
		os.Remove(s.path(id))
		return store.Snapshot{}, commitErr
	}
	sn = store.Snapshot{ID: id, SessionID: sessionID, Runtime: rt.Name(), CreatedAt: s.opts.Now(),
		Size: info.Size, SHA256: info.SHA256, Files: info.Files, Image: image}
	if err := s.opts.DB.InsertSnapshot(ctx, sn); err != nil {
		os.Remove(s.path(id))
		return store.Snapshot{}, err
	}
	return sn, nil
}

// writeArchive writes the home of desktop sessionID as the archive of
// snapshot id, whole or not at all.
func (s *Store) writeArchive(ctx context.Context, rt Desktops, sessionID, id string) (archive.Info, error) {
	final := s.path(id)
	tmp := final + ".part"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return archive.Info{}, err
	}
	defer os.Remove(tmp) // after the rename, a no-op
	defer f.Close()
	pr, pw := io.Pipe()
	exported := make(chan error, 1)
	go func() {
		err := rt.ExportHome(ctx, sessionID, pw)
		pw.CloseWithError(err) // nil: EOF
		exported <- err
	}()
	info, err := archive.Pack(ctx, f, pr)
	pr.CloseWithError(errors.New("snapshot abandoned")) // unblocks the exporter if Pack stopped early
	if exportErr := <-exported; exportErr != nil {
		return archive.Info{}, exportErr
	}
	if err != nil {
		return archive.Info{}, err
	}
	if err := f.Sync(); err != nil {
		return archive.Info{}, err
	}
	if err := f.Close(); err != nil {
		return archive.Info{}, err
	}
	return info, os.Rename(tmp, final)
}

// Get returns one snapshot.
func (s *Store) Get(ctx context.Context, id string) (store.Snapshot, error) {
	if err := CheckID(id); err != nil {
		return store.Snapshot{}, err
	}
	return s.opts.DB.GetSnapshot(ctx, id)
}

// List returns every snapshot, oldest first.
func (s *Store) List(ctx context.Context) ([]store.Snapshot, error) {
	return s.opts.DB.ListSnapshots(ctx)
}

// OpenSnapshot returns snapshot id's home archive as a plain tar stream and
// its image ("" if none). The stream ends with ErrCorrupt instead of io.EOF
// if the archive does not match its checksum, so an extraction that reads
// it to the end (archive.ExtractTar) refuses it whole. Until the stream is
// closed the snapshot cannot be deleted.
func (s *Store) OpenSnapshot(ctx context.Context, id string) (io.ReadCloser, string, error) {
	if err := CheckID(id); err != nil {
		return nil, "", err
	}
	s.mu.Lock()
	if s.deleting[id] {
		s.mu.Unlock()
		return nil, "", fmt.Errorf("%w: %s is being deleted", ErrInUse, id)
	}
	sn, err := s.opts.DB.GetSnapshot(ctx, id)
	if err != nil {
		s.mu.Unlock()
		return nil, "", err
	}
	s.leases[id]++
	s.mu.Unlock()

	f, err := os.Open(s.path(id))
	if err != nil {
		s.release(id)
		return nil, "", fmt.Errorf("open snapshot %s: %w", id, err)
	}
	v := &verifier{f: f, counted: hashCounter{hash: sha256.New()}, want: sn, release: func() { s.release(id) }}
	v.zr, err = gzip.NewReader(io.TeeReader(f, &v.counted))
	if err != nil {
		v.Close()
		return nil, "", fmt.Errorf("open snapshot %s: %w: %v", id, ErrCorrupt, err)
	}
	return v, sn.Image, nil
}

func (s *Store) release(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leases[id]--; s.leases[id] <= 0 {
		delete(s.leases, id)
	}
}

// Delete removes a snapshot: its image, its archive and its row. It is
// refused with ErrInUse while a session is being created from it.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := CheckID(id); err != nil {
		return err
	}
	s.mu.Lock()
	if s.leases[id] > 0 || s.deleting[id] {
		s.mu.Unlock()
		return fmt.Errorf("%w: a session is being created from %s", ErrInUse, id)
	}
	s.deleting[id] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.deleting, id)
		s.mu.Unlock()
	}()
	sn, err := s.opts.DB.GetSnapshot(ctx, id)
	if err != nil {
		return err
	}
	if sn.Image != "" && s.opts.Images != nil {
		if err := s.opts.Images.RemoveImage(ctx, sn.Image); err != nil {
			return fmt.Errorf("delete snapshot %s: %w", id, err)
		}
	}
	if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete snapshot %s: %w", id, err)
	}
	if err := s.opts.DB.DeleteSnapshot(ctx, id); err != nil {
		return err
	}
	s.opts.Logger.Info("snapshot deleted", "snapshot", id)
	return nil
}

// verifier is an open home archive: it gunzips, hashes what it reads, and
// checks size and checksum when the archive ends.
type verifier struct {
	f       *os.File
	zr      *gzip.Reader
	counted hashCounter // every byte read from f
	want    store.Snapshot
	release func()
	once    sync.Once
	done    error // the verdict, once the end was reached
}

func (v *verifier) Read(b []byte) (int, error) {
	if v.done != nil {
		return 0, v.done
	}
	n, err := v.zr.Read(b)
	if errors.Is(err, io.EOF) {
		v.done = v.verify()
		return n, v.done
	}
	return n, err
}

// verify reads what gzip left of the file and compares it with the row.
func (v *verifier) verify() error {
	if _, err := io.Copy(&v.counted, v.f); err != nil {
		return err
	}
	got := hex.EncodeToString(v.counted.hash.Sum(nil))
	if v.counted.n != v.want.Size || got != v.want.SHA256 {
		return fmt.Errorf("%w: %s: %d bytes with sha256 %s, recorded %d bytes with sha256 %s",
			ErrCorrupt, v.want.ID, v.counted.n, got, v.want.Size, v.want.SHA256)
	}
	return io.EOF
}

// Close closes the archive and releases the snapshot's lease.
func (v *verifier) Close() error {
	err := v.f.Close()
	v.once.Do(v.release)
	return err
}

// hashCounter hashes and counts the bytes written to it.
type hashCounter struct {
	hash hash.Hash
	n    int64
}

func (c *hashCounter) Write(b []byte) (int, error) {
	c.n += int64(len(b))
	return c.hash.Write(b)
}
