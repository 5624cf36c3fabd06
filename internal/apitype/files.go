package apitype

import "time"

// Error codes of the file routes.
const (
	CodeBadPath  = "bad_path"        // malformed, or it leaves the home (absolute, "..", a symbolic link on the way)
	CodeNotFile  = "not_a_file"      // a download or upload at something other than a regular file of the home
	CodeNotDir   = "not_a_directory" // a listing of something other than a directory
	CodeNotEmpty = "not_empty"       // a delete of a directory that holds something
	CodeHomeFull = "home_full"       // the home's quota is used up; nothing was written
)

// FileWritten is the answer of PUT /sessions/{id}/files/{path}.
type FileWritten struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// File types of a FileEntry.
const (
	FileRegular = "file"
	FileDir     = "dir"
	FileSymlink = "symlink"
	FileOther   = "other"
)

// FileEntry is one entry of a directory listing.
type FileEntry struct {
	Name string `json:"name"`
	// Type is file, dir, symlink or other; a link is never followed.
	Type     string    `json:"type"`
	Size     int64     `json:"size"`
	Mode     string    `json:"mode"` // permission bits in octal, such as 0644
	Modified time.Time `json:"modified"`
}

// FileList is the answer of GET /sessions/{id}/dir/{path}.
type FileList struct {
	Path    string      `json:"path"`
	Entries []FileEntry `json:"entries"`
}

// Clipboard MIME types.
const (
	MimeText = "text/plain;charset=utf-8"
	MimePNG  = "image/png"
)

// Clipboard is a desktop's clipboard: the body of PUT and the answer of
// GET /sessions/{id}/clipboard. Data is the text itself, or for image/png
// the PNG in standard base64; Mime defaults to text. Size is the
// content's bytes (in answers).
type Clipboard struct {
	Mime string `json:"mime,omitempty"`
	Data string `json:"data"`
	Size int    `json:"size,omitempty"`
}
