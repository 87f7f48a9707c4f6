package app

import (
	"bytes"
	"strings"
	"testing"
)

func TestHashKeyShouldPrintTheSHA256OfTheFirstLine(t *testing.T) {
	t.Parallel()
	const fooSHA = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
	tests := []struct {
		name    string
		stdin   string
		args    []string
		want    string
		wantErr string
	}{
		{name: "no newline", stdin: "foo", want: fooSHA + "\n"},
		{name: "newline", stdin: "foo\n", want: fooSHA + "\n"},
		{name: "crlf", stdin: "foo\r\nbar\n", want: fooSHA + "\n"},
		{name: "empty", stdin: "", wantErr: "no key on stdin"},
		{name: "blank", stdin: "  \n", wantErr: "no key on stdin"},
		{name: "padded", stdin: " foo\n", wantErr: "white space"},
		{name: "argument", args: []string{"foo"}, wantErr: "takes no arguments"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		err := HashKey(tt.args, strings.NewReader(tt.stdin), &out)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: err = %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || out.String() != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.name, out.String(), err, tt.want)
		}
	}
}
