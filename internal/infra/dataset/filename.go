package dataset

import (
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	maxFilenameRunes = 128
	maxNameRunes     = 200
)

// cleanFilename reduces a client-supplied file name to a safe base name:
// the last element under either separator ("../../etc/passwd" -> "passwd",
// `C:\x\y.csv` -> "y.csv"), control and invalid characters dropped, other
// unusual characters replaced by '_', no leading dots. The result is only
// ever used for display and for its extension, never as a path.
func cleanFilename(fn string) string {
	if i := strings.LastIndexAny(fn, `/\`); i >= 0 {
		fn = fn[i+1:]
	}
	var b strings.Builder
	n := 0
	for _, r := range fn {
		if n == maxFilenameRunes {
			break
		}
		switch {
		case r == utf8.RuneError || !unicode.IsPrint(r):
			continue
		case unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("._-+() ", r):
			b.WriteRune(r)
		default:
			b.WriteRune('_')
		}
		n++
	}
	return b.String()
}

// displayName is the dataset's Name: the given name with control
// characters removed, else the cleaned file name without its extension.
func displayName(given, cleanFile string) string {
	var b strings.Builder
	n := 0
	for _, r := range strings.TrimSpace(given) {
		if n == maxNameRunes {
			break
		}
		if r == utf8.RuneError || unicode.IsControl(r) {
			continue
		}
		b.WriteRune(r)
		n++
	}
	if name := strings.TrimSpace(b.String()); name != "" {
		return name
	}
	if name := strings.Trim(strings.TrimSuffix(cleanFile, filepath.Ext(cleanFile)), " ."); name != "" {
		return name
	}
	return "dataset"
}
