package api

import "time"

// WriteFileRequest is the body of POST /v1/sandboxes/{id}/files/write.
type WriteFileRequest struct {
	Path      string `json:"path"`
	Content   string `json:"content"`
	Encoding  string `json:"encoding,omitempty"` // "utf-8" (default) or "base64"
	Mode      string `json:"mode,omitempty"`     // octal, like "0644"; default 0644, or the existing file's
	SessionID string `json:"sessionId,omitempty"`
}

// WriteFileResult answers a write.
type WriteFileResult struct {
	Path string `json:"path"` // absolute
	Size int64  `json:"size"`
}

// ReadFileRequest is the body of POST /v1/sandboxes/{id}/files/read.
type ReadFileRequest struct {
	Path      string `json:"path"`
	Encoding  string `json:"encoding,omitempty"` // "utf-8" or "base64"; default: by content
	SessionID string `json:"sessionId,omitempty"`
}

// ReadFileResult answers a read.
type ReadFileResult struct {
	Path     string `json:"path"`
	Content  string `json:"content"`
	Encoding string `json:"encoding"`
	IsBinary bool   `json:"isBinary"`
	MimeType string `json:"mimeType"`
	Size     int64  `json:"size"`
}

// PathRequest is the body of mkdir, delete, exists and list.
type PathRequest struct {
	Path          string `json:"path"`
	Recursive     bool   `json:"recursive,omitempty"`
	IncludeHidden bool   `json:"includeHidden,omitempty"`
	SessionID     string `json:"sessionId,omitempty"`
}

// RenameRequest is the body of POST /v1/sandboxes/{id}/files/rename.
type RenameRequest struct {
	OldPath   string `json:"oldPath"`
	NewPath   string `json:"newPath"`
	SessionID string `json:"sessionId,omitempty"`
}

// MoveRequest is the body of POST /v1/sandboxes/{id}/files/move.
type MoveRequest struct {
	SourcePath      string `json:"sourcePath"`
	DestinationPath string `json:"destinationPath"`
	SessionID       string `json:"sessionId,omitempty"`
}

// FileInfo describes one file of a listing.
type FileInfo struct {
	Name         string      `json:"name"`
	AbsolutePath string      `json:"absolutePath"`
	RelativePath string      `json:"relativePath"`
	Type         string      `json:"type"` // "file", "directory", "symlink" or "other"
	Size         int64       `json:"size"`
	ModifiedAt   time.Time   `json:"modifiedAt"`
	Mode         string      `json:"mode"` // octal permission bits, like "0644"
	Permissions  Permissions `json:"permissions"`
}

// Permissions are what the sandbox's user may do with a file.
type Permissions struct {
	Readable   bool `json:"readable"`
	Writable   bool `json:"writable"`
	Executable bool `json:"executable"`
}

// FileList answers a listing.
type FileList struct {
	Files []FileInfo `json:"files"`
	Count int        `json:"count"`
}

// ExistsResult answers exists.
type ExistsResult struct {
	Exists bool `json:"exists"`
}

// PathResult answers mkdir, delete, rename and move: the absolute path
// acted on (for rename and move, the new one).
type PathResult struct {
	Path string `json:"path"`
}

// WatchEvent is the data of an "event" event of a file watch.
type WatchEvent struct {
	Type        string `json:"type"`      // "event" (or "watching", the first one)
	EventType   string `json:"eventType"` // "create", "modify", "delete" or "move"
	Path        string `json:"path"`
	OldPath     string `json:"oldPath,omitempty"` // for a move, where it came from
	IsDirectory bool   `json:"isDirectory"`
}

// GitCheckoutRequest is the body of POST /v1/sandboxes/{id}/git/checkout.
type GitCheckoutRequest struct {
	RepoURL   string `json:"repoUrl"`
	Branch    string `json:"branch,omitempty"`
	TargetDir string `json:"targetDir,omitempty"`
	Depth     int    `json:"depth,omitempty"`
	TimeoutMs int64  `json:"timeoutMs,omitempty"`
	SessionID string `json:"sessionId,omitempty"`
}

// GitCheckoutResult answers a checkout.
type GitCheckoutResult struct {
	RepoURL   string `json:"repoUrl"` // with any credentials removed
	Branch    string `json:"branch"`
	TargetDir string `json:"targetDir"`
	Commit    string `json:"commit"`
}
