package app

import (
	"testing"

	"github.com/nexus/nexus/config"
)

// An absent sources section equals an empty one; any change to a source's
// settings is a change (the reload then asks for a restart).
func TestSourcesEqualShouldSeeEveryChange(t *testing.T) {
	t.Parallel()
	base := config.Source{Kind: "postgres", DSNEnv: "A", Schemas: []string{"public"}, Tables: []string{"t"}, MaxRows: 5}
	cases := []struct {
		name string
		a, b config.Sources
		want bool
	}{
		{"absent and empty", nil, config.Sources{}, true},
		{"the same", config.Sources{"s": base}, config.Sources{"s": base}, true},
		{"one more", config.Sources{"s": base}, config.Sources{"s": base, "t": base}, false},
		{"renamed", config.Sources{"s": base}, config.Sources{"t": base}, false},
		{"another variable", config.Sources{"s": base}, config.Sources{"s": func() config.Source { c := base; c.DSNEnv = "B"; return c }()}, false},
		{"another table", config.Sources{"s": base}, config.Sources{"s": func() config.Source { c := base; c.Tables = []string{"u"}; return c }()}, false},
		{"another limit", config.Sources{"s": base}, config.Sources{"s": func() config.Source { c := base; c.MaxRows = 6; return c }()}, false},
	}
	for _, tc := range cases {
		if got := sourcesEqual(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: sourcesEqual = %v, want %v", tc.name, got, tc.want)
		}
	}
}
