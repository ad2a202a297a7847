// Package policy holds no code: its tests check rules about the repository
// itself (every package documented, what each binary may import).
package policy
